from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
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

# Media (tiles, montages, overlays) on local storage are served by the app itself, so the embedded
# default and the compose deployment need no extra web server; put a CDN or proxy cache in front
# for heavy traffic. Annotators' tiles go through the task views, never through these paths.
urlpatterns.append(path("media/<path:path>", views.media, name="media"))
