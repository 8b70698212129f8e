from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

# Each part adds its routes here as it lands (dissect, crowd tasks, reports).
_OPTIONAL = [
    ("", "dissect.urls"),
    ("explain/", "dissect.explain.urls"),
    ("", "annotate.crowd.urls"),
    ("reports/", "annotate.labels.urls"),
]
for prefix, module in _OPTIONAL:
    try:
        urlpatterns.append(path(prefix, include(module)))
    except ModuleNotFoundError as exc:
        if not (exc.name and module.startswith(exc.name)):
            raise

# Media (tiles, montages) are served by Django on the embedded default; production serves them
# from shared storage behind the web server.
if settings.DEBUG or settings.CELERY_TASK_ALWAYS_EAGER:
    urlpatterns.append(path("media/<path:path>", serve, {"document_root": settings.MEDIA_ROOT}))
