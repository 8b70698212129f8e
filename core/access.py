"""Who may do what, in every app: ONE roles x actions table, ``can(user, action)``, the
``requires(action)`` decorator for pages and the ``HasAction`` permission for the APIs. A test
walks every cell of the table through the pages and the APIs.

The table says which roles may attempt an action at all; object-level rules (an annotator
touches only their own assignments) live in the services, which check the assignment's worker.

Staff users without a role (``is_staff``, no group) count as researchers everywhere: the admin
site already lets them in, and hiding the research pages from them would only confuse.
Superusers are admins (core.roles.user_role).
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from core.roles import ADMIN, ANNOTATOR, RESEARCHER, user_role

_WORKERS = frozenset({ANNOTATOR, RESEARCHER, ADMIN})
_RESEARCH = frozenset({RESEARCHER, ADMIN})
_ADMIN = frozenset({ADMIN})

# action -> roles allowed. The single source of truth; tests walk every cell.
PERMISSIONS: dict[str, frozenset[str]] = {
    # dissect: networks, image sets, runs, layers, units and their media
    "run.view": _RESEARCH,
    "run.create": _RESEARCH,
    "run.control": _RESEARCH,  # start, cancel, resume
    # annotate.crowd
    "task.work": _WORKERS,  # preview, accept, submit, return, skip
    "campaign.view": _RESEARCH,  # progress, answers, gold, worker quality
    "campaign.create": _RESEARCH,
    "campaign.status": _RESEARCH,  # draft -> live -> paused -> finished
    "assignment.review": _RESEARCH,  # approve / reject, bulk
    "answer.view_all": _RESEARCH,
    "worker.block": _RESEARCH,
    # annotate.labels
    "report.view": _RESEARCH,
    "labels.recompute": _RESEARCH,
    "concept.merge": _RESEARCH,
    "export.create": _ADMIN,
    "export.download": _ADMIN,
    # annotate.explain
    "explain.use": _RESEARCH,
}
ACTIONS: tuple[str, ...] = tuple(PERMISSIONS)

# What a refusal says, per action (default: the action in words).
_REFUSALS = {
    "run.view": "Dissection runs are for researchers and admins.",
    "run.create": "Dissection runs are for researchers and admins.",
    "run.control": "Dissection runs are for researchers and admins.",
    "report.view": "Reports are for researchers and admins.",
    "export.create": "Exports are for admins.",
    "export.download": "Exports are for admins.",
    "explain.use": "Explanations are for researchers and admins.",
}


def role_of(user: AbstractBaseUser) -> str | None:
    """The role the table uses for ``user``: their highest role, staff without one as researcher."""
    role = user_role(user)
    if role is None and getattr(user, "is_staff", False) and getattr(user, "is_active", False):
        return RESEARCHER
    return role


def can(user: AbstractBaseUser, action: str) -> bool:
    """True when ``user``'s role may perform ``action`` (an unknown action is a programming error)."""
    return role_of(user) in PERMISSIONS[action]


def refusal(action: str) -> str:
    return _REFUSALS.get(action, f"Your role may not {action.replace('.', ' ')}.")


def requires(action: str):
    """Page decorator: anonymous users go to the login page, users whose role may not do
    ``action`` get 403."""
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}; add it to core.access.PERMISSIONS")

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not can(request.user, action):
                raise PermissionDenied(refusal(action))
            return view(request, *args, **kwargs)

        wrapped.required_action = action
        return wrapped

    return decorator


class HasAction(BasePermission):
    """DRF permission: the view names its action in ``required_action``, or per viewset action
    in ``action_permissions`` (which wins); a view naming none refuses everyone."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        needed = required_action(view)
        if needed is None:
            return False
        self.message = refusal(needed)
        return can(request.user, needed)


def required_action(view) -> str | None:
    """The table action a DRF view (or viewset action) needs."""
    mapping = getattr(view, "action_permissions", {})
    return mapping.get(getattr(view, "action", None)) or getattr(view, "required_action", None)
