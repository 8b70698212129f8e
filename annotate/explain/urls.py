"""Explain routes, included at /explain/ by config/urls.py."""

from django.urls import path

import annotate.explain.paper_views as paper_views  # the paper reports (issue 17)
from annotate.explain import views

app_name = "explain"

urlpatterns = [
    path("", views.page, name="page"),
    path("images/<int:image_id>/", views.image_file, name="image-file"),
    path("runs/<int:run_id>/agreement/", views.agreement, name="agreement"),
    path("paper/", paper_views.index, name="paper"),
    path("paper/<str:network>/minimal/", paper_views.minimal, name="paper-minimal"),
    path("paper/<str:network>/why/", paper_views.why, name="paper-why"),
    path("paper/<str:network>/ablation/", paper_views.ablation, name="paper-ablation"),
]
