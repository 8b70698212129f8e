from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import views
from config.api_docs import RedocDocsView, SwaggerDocsView

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerDocsView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", RedocDocsView.as_view(url_name="schema"), name="api-redoc"),
]

# One API mount: /api/<app>/... for every app, each app's routes in its api.py (the schema at
# /api/schema/ lists them all; tests/config/test_api_mount.py checks it).
API_APPS = {
    "dissect": "dissect.api",
    "crowd": "annotate.crowd.api",
    "labels": "annotate.labels.api",
    "explain": "annotate.explain.api",
}
urlpatterns += [path(f"api/{app}/", include(module)) for app, module in API_APPS.items()]

urlpatterns += [
    path("", include("dissect.urls")),
    path("explain/", include("annotate.explain.urls")),
    path("", include("annotate.crowd.urls")),
    path("reports/", include("annotate.labels.urls")),
]

# Media is private: no /media/ folder is served. Researchers read tiles, montages, RF maps and
# overlays through dissect's role-checked /files/ view, annotators through the signed tile URLs
# of their tasks, admins exports through the audited download (docs/security.md).
