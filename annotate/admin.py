from django.contrib import admin

from annotate import models


@admin.register(models.Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["pseudonym", "user", "source", "external_id", "blocked", "created_at"]
    list_filter = ["source", "blocked"]
    search_fields = ["pseudonym", "external_id", "user__username"]


@admin.register(models.Concept)
class ConceptAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "source", "merged_into"]
    list_filter = ["category", "source"]
    search_fields = ["name", "synonyms"]


class HitInline(admin.TabularInline):
    model = models.Hit
    extra = 0
    fields = ["unit", "is_gold", "gold_concept", "gold_category"]
    raw_id_fields = ["unit"]
    show_change_link = True


@admin.register(models.Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "run",
        "status",
        "redundancy",
        "tiles_per_task",
        "gold_rate",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["name", "instructions"]


@admin.register(models.Hit)
class HitAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "unit", "is_gold", "created_at"]
    list_filter = ["campaign", "is_gold"]
    search_fields = ["gold_concept", "unit__layer__name"]
    raw_id_fields = ["unit"]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "hit",
        "worker",
        "status",
        "accepted_at",
        "submitted_at",
        "active_seconds",
    ]
    list_filter = ["status", "hit__campaign"]
    search_fields = ["worker__pseudonym", "external_assignment_id", "completion_code"]
    raw_id_fields = ["hit", "worker"]


@admin.register(models.Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "assignment",
        "concept_text",
        "concept",
        "category",
        "precision",
        "control_failed",
    ]
    list_filter = ["category", "control_failed"]
    search_fields = ["concept_text", "concept__name"]
    raw_id_fields = ["assignment", "concept"]


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


@admin.register(models.AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "target_type", "target_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["action", "target_id", "actor__username"]

    # The audit trail is append-only, even for admins.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
