"""Explain routes, included at /explain/ by config/urls.py."""

from django.urls import path

from annotate.explain import views

app_name = "explain"

urlpatterns = [
    path("", views.page, name="page"),
    path("images/<int:image_id>/", views.image_file, name="image-file"),
    path("runs/<int:run_id>/agreement/", views.agreement, name="agreement"),
]
