"""Who may see reports and make exports: role x action, in one table (tests walk it)."""

from django.contrib.auth.models import AbstractBaseUser

from core.roles import ADMIN, RESEARCHER, user_role

PERMISSIONS: dict[str, frozenset[str]] = {
    "report.view": frozenset({RESEARCHER, ADMIN}),
    "labels.recompute": frozenset({RESEARCHER, ADMIN}),
    "concept.merge": frozenset({RESEARCHER, ADMIN}),
    "export.create": frozenset({ADMIN}),
    "export.download": frozenset({ADMIN}),
}
ACTIONS: tuple[str, ...] = tuple(PERMISSIONS)


def can(user: AbstractBaseUser, action: str) -> bool:
    """True when `user` may perform `action`; staff without a role count as researchers."""
    role = user_role(user)
    if role is None and getattr(user, "is_staff", False) and getattr(user, "is_active", False):
        role = RESEARCHER
    return role in PERMISSIONS[action]
