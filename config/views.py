from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.static import serve

from config.health import health_report


@never_cache
def healthz(request):
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@login_required
def home(request):
    return render(request, "home.html")


def media(request, path):
    """Media files on the embedded default (production serves them from shared storage)."""
    return serve(request, path, document_root=settings.MEDIA_ROOT)
