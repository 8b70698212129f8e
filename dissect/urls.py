"""Dissection routes; included at the site root, so every path carries its own prefix."""

from django.urls import path

from dissect import media, views

app_name = "dissect"

urlpatterns = [
    path("runs/", views.run_list, name="run-list"),
    path("runs/new/", views.run_create, name="run-create"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/status.json", views.run_status, name="run-status"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="run-resume"),
    path(
        "runs/<int:run_id>/auto-label-counts.csv",
        views.auto_label_counts,
        name="auto-label-counts",
    ),
    path("runs/<int:run_id>/layers/<str:layer_name>/", views.layer_detail, name="layer-detail"),
    path(
        "runs/<int:run_id>/layers/<str:layer_name>/units/<int:index>/",
        views.unit_detail,
        name="unit-detail",
    ),
    # Media (tiles, montages, RF maps, explain overlays): role-checked, never a public folder.
    path("files/<path:name>", media.media_file, name="media-file"),
]
