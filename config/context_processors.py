"""Template context every page needs."""

from django.http import HttpRequest


def role(request: HttpRequest) -> dict:
    """The user's role (annotator, researcher, admin or None), for navigation and page choices."""
    from core.roles import user_role

    return {"role": user_role(request.user) if hasattr(request, "user") else None}
