"""Who may do what in the crowd workflow: THE role x action table, used by views, the API and one test.

Annotators work on their own tasks. Researchers run campaigns and review. Admins can do everything.
Object-level rules (an annotator touches only their own assignments) live in the services, which check
the assignment's worker; this table only says which roles may attempt an action at all.
"""

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.permissions import BasePermission

from core.roles import ADMIN, ANNOTATOR, RESEARCHER, user_role

# action -> roles allowed. Keep it the single source of truth; tests walk every cell.
PERMISSIONS: dict[str, frozenset[str]] = {
    "task.work": frozenset({ANNOTATOR, RESEARCHER, ADMIN}),  # preview, accept, submit, return, skip
    "campaign.view": frozenset({RESEARCHER, ADMIN}),  # progress, answers, gold, worker quality
    "campaign.create": frozenset({RESEARCHER, ADMIN}),
    "campaign.status": frozenset({RESEARCHER, ADMIN}),  # draft -> live -> paused -> finished
    "assignment.review": frozenset({RESEARCHER, ADMIN}),  # approve / reject, bulk
    "answer.view_all": frozenset({RESEARCHER, ADMIN}),
    "worker.block": frozenset({RESEARCHER, ADMIN}),
}
ACTIONS: tuple[str, ...] = tuple(PERMISSIONS)


def can(user: AbstractBaseUser, action: str) -> bool:
    """True when `user`'s role may perform `action` (an unknown action is a programming error)."""
    allowed = PERMISSIONS[action]
    return user_role(user) in allowed


class HasAction(BasePermission):
    """DRF permission: the view names its action in `required_action` (or per-action `action_map`)."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        action = getattr(view, "action", None)
        mapping = getattr(view, "action_permissions", {})
        needed = mapping.get(action) or getattr(view, "required_action", None)
        if needed is None:
            return False
        return can(request.user, needed)
