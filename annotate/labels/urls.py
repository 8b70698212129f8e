from django.urls import path

from annotate.labels import views

app_name = "labels"

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
    path("network/<slug:network>/categories/", views.categories, name="categories"),
    path("network/<slug:network>/detectors/", views.detectors, name="detectors"),
    path("network/<slug:network>/concepts/", views.concepts, name="concept-detectors"),
    path("network/<slug:network>/precision/", views.precision, name="precision"),
]
