"""The three roles as Django groups, and the service that creates a user with a role.

annotator: labels units in the task pages; no admin access.
researcher: runs dissections, manages campaigns, reviews answers, reads reports; admin pages to view
  everything and change the crowd workflow, never delete.
admin: everything (superuser), including exports and user management.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction

ANNOTATOR, RESEARCHER, ADMIN = "annotator", "researcher", "admin"
ROLES: tuple[str, ...] = (ANNOTATOR, RESEARCHER, ADMIN)

# Models researchers may add and change in the admin (besides viewing everything).
_RESEARCHER_EDITS = {
    "dissect": ["network", "imageset", "dissectionrun"],
    "crowd": ["campaign", "task", "assignment", "worker"],
    "core": ["concept"],
}
# Apps whose rows researchers may view in the admin.
_RESEARCHER_VIEWS = ("core", "dissect", "crowd", "labels")


class RoleError(ValueError):
    pass


def ensure_roles() -> None:
    """Create the role groups and give them their permissions (idempotent)."""
    annotator, _ = Group.objects.get_or_create(name=ANNOTATOR)
    researcher, _ = Group.objects.get_or_create(name=RESEARCHER)
    admin, _ = Group.objects.get_or_create(name=ADMIN)
    annotator.permissions.clear()
    views = Permission.objects.filter(
        content_type__app_label__in=_RESEARCHER_VIEWS, codename__startswith="view_"
    )
    edits = [
        Permission.objects.filter(
            content_type__app_label=app, content_type__model__in=models
        ).filter(codename__regex=r"^(add|change)_")
        for app, models in _RESEARCHER_EDITS.items()
    ]
    researcher.permissions.set(list(views) + [p for qs in edits for p in qs])
    admin.permissions.set(Permission.objects.all())


def user_role(user: AbstractBaseUser) -> str | None:
    """The highest role a user has (superusers are admins), or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True))
    for role in (ADMIN, RESEARCHER, ANNOTATOR):
        if role in names:
            return role
    return None


def user_has_role(user: AbstractBaseUser, *roles: str) -> bool:
    return user_role(user) in roles


@transaction.atomic
def user_create(*, username: str, role: str, password: str, email: str = "") -> AbstractBaseUser:
    """Create (or update) a user with exactly one role; admins and researchers get admin-site access."""
    if role not in ROLES:
        raise RoleError(f"role: {role!r} is not one of {', '.join(ROLES)}.")
    ensure_roles()
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    user.email = email or user.email
    user.is_staff = role in (RESEARCHER, ADMIN)
    user.is_superuser = role == ADMIN
    user.set_password(password)
    user.save()
    user.groups.set([Group.objects.get(name=role)])
    return user
