from django.contrib import admin

from annotate.labels import models


@admin.register(models.UnitLabel)
class UnitLabelAdmin(admin.ModelAdmin):
    list_display = [
        "unit",
        "source",
        "concept_text",
        "category",
        "precision",
        "agreement",
        "is_detector",
        "answer_count",
    ]
    list_filter = ["source", "category", "is_detector"]
    search_fields = ["concept_text"]
    raw_id_fields = ["unit", "concept"]


@admin.register(models.Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "created_by", "created_at", "finished_at", "size_bytes"]
    list_filter = ["kind", "status"]
    search_fields = ["sha256", "file_path"]
