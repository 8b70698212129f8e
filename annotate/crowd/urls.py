"""Crowd routes; included at the site root, so every path carries its own prefix."""

from django.urls import path

from annotate.crowd import verification_views, views

app_name = "crowd"

urlpatterns = [
    path("tasks/", views.annotator_home, name="annotator-home"),
    path("tasks/campaigns/<int:pk>/preview/", views.campaign_preview, name="task-preview"),
    path("tasks/campaigns/<int:pk>/start/", views.task_start, name="task-start"),
    path("tasks/<int:pk>/accept/", views.task_accept, name="task-accept"),
    path("tasks/assignments/<int:pk>/", views.task_page, name="task"),
    path("tasks/assignments/<int:pk>/return/", views.task_return, name="task-return"),
    path("tasks/assignments/<int:pk>/skip/", views.task_skip, name="task-skip"),
    path("tasks/tile/<str:token>/", views.tile, name="tile"),
    path("tasks/link/<int:pk>/", views.link_entry, name="link-entry"),
    path("tasks/external/<str:token>/", views.external_task, name="external-task"),
    path("tasks/study/<str:token>/", views.study_next, name="study-next"),
    path("tasks/study/<str:token>/complete/", views.study_complete, name="study-complete"),
    path("mturk/campaigns/<int:pk>/", views.mturk_entry, name="mturk-entry"),
    path("tasks/campaigns/<int:pk>/verify/", verification_views.verify_start, name="verify-start"),
    path("tasks/verify/<int:pk>/", verification_views.verify_page, name="verify"),
    path("tasks/verify/tile/<str:token>/", verification_views.verify_tile, name="verify-tile"),
    path("campaigns/", views.campaign_list, name="campaign-list"),
    path("campaigns/new/", views.campaign_new, name="campaign-new"),
    path("campaigns/<int:pk>/", views.campaign_detail, name="campaign-detail"),
    path("campaigns/<int:pk>/status/", views.campaign_status, name="campaign-status"),
    path("campaigns/<int:pk>/review/", views.campaign_review, name="campaign-review"),
    path(
        "campaigns/<int:pk>/verification/rebuild/",
        views.campaign_verification_rebuild,
        name="campaign-verification-rebuild",
    ),
    path(
        "campaigns/<int:pk>/study-decisions.csv",
        views.study_decisions_csv,
        name="study-decisions",
    ),
    path("campaigns/workers/<int:pk>/block/", views.worker_block, name="worker-block"),
]
