"""The API docs pages (Swagger UI, Redoc), served from our own static files with a Content
Security Policy that lets them load nothing from another host: they work offline, and Redoc's
"powered by" logo (a CDN image the bundle asks for) is never fetched."""

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

# Inline scripts and styles: the two pages' own bootstrap code; blob: workers: Redoc's search.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'self'"
)


class _OfflineDocs:
    @extend_schema(exclude=True)  # the docs pages are not API endpoints
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CSP
        return response


class SwaggerDocsView(_OfflineDocs, SpectacularSwaggerView):
    """Swagger UI at /api/docs/."""


class RedocDocsView(_OfflineDocs, SpectacularRedocView):
    """Redoc at /api/redoc/ (our template: no Google Fonts)."""

    template_name = "api/redoc.html"
