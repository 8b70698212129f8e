"""The researchers' door to stored media: tiles, montages, receptive-field maps and explain
overlays (everything ``dissect.storage.save_content_addressed`` writes under ``dissect/``).

Nothing under ``MEDIA_ROOT`` is served as a folder. This view checks the role table
(``run.view``: researchers and admins) and serves the file from ``default_storage``, so private
objects on a shared volume or an object store are read the same way. Annotators see tiles only
through their tasks' signed, position-only URLs (``annotate.crowd.views.tile``); exports leave
only through their audited download (``annotate.labels.views.export_download``).
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.views.decorators.http import require_safe

from core.access import can, refusal
from dissect.storage import is_served_name, media_response

ACTION = "run.view"


def _api_token_user(request):
    """The user of an API token (``Authorization: Token ...``), so API clients can follow the
    media URLs the API hands out; None without a valid token."""
    if not request.META.get("HTTP_AUTHORIZATION", "").startswith("Token "):
        return None
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    try:
        found = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    return found[0] if found else None


@require_safe
def media_file(request, name: str):
    """A stored media file for researchers and admins; anonymous: the login page; other roles:
    403. Names outside ``dissect/`` (exports, anything else under MEDIA_ROOT): 404."""
    user = request.user
    if not getattr(user, "is_authenticated", False):
        user = _api_token_user(request)
        if user is None:
            return redirect_to_login(request.get_full_path())
    if not can(user, ACTION):
        raise PermissionDenied(refusal(ACTION))
    if not is_served_name(name):
        raise Http404("No such file.")
    # Content-addressed: a name never changes its bytes. Private: never kept in a shared cache.
    return media_response(name, cache_control="private, max-age=31536000, immutable")
