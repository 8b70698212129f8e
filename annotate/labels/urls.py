from django.urls import path

from annotate.labels import views, whole_range_views

app_name = "labels"

# Network names are slugs at every door (core.names); <path:network> still reaches a network
# registered before that check with a space, '=' or '/' in its name, so no report page 500s.
urlpatterns = [
    path("", views.index, name="index"),
    path("compare/", views.compare, name="compare"),
    path("agreement/", views.agreement, name="agreement"),
    path("units/", views.units, name="units"),
    path("units/<int:unit_id>/", views.unit_detail, name="unit"),
    path("recompute/", views.recompute, name="recompute"),
    path("concepts/", views.concept_list, name="concepts"),
    path("exports/", views.export_list, name="exports"),
    path("exports/<int:export_id>/download/", views.export_download, name="export-download"),
    path("network/<path:network>/categories/", views.categories, name="categories"),
    path("network/<path:network>/detectors/", views.detectors, name="detectors"),
    path("network/<path:network>/concepts/", views.concepts, name="concept-detectors"),
    path("network/<path:network>/precision/", views.precision, name="precision"),
    path(
        "network/<path:network>/whole-range/",
        whole_range_views.whole_range_report,
        name="whole-range",
    ),
]
