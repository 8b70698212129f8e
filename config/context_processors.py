"""Template context every page needs."""

from django.http import HttpRequest


def role(request: HttpRequest) -> dict:
    """The user's role (annotator, researcher, admin or None), for navigation and page choices:
    the role the access table uses (core.access.role_of: staff without a role are researchers)."""
    from core.access import role_of

    return {"role": role_of(request.user) if hasattr(request, "user") else None}
