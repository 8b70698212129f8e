from django.contrib import admin

from annotate.crowd import models


@admin.register(models.Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["pseudonym", "user", "source", "external_id", "blocked", "created_at"]
    list_filter = ["source", "blocked"]
    search_fields = ["pseudonym", "external_id", "user__username"]


class TaskInline(admin.TabularInline):
    model = models.Task
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
        "verification_state",
        "created_at",
    ]
    list_filter = ["status", "verification_state"]
    search_fields = ["name", "instructions"]
    # Written by the verification build (annotate.crowd.tasks.build_verification) only.
    readonly_fields = [
        "verification_state",
        "verification_error",
        "verification_done",
        "verification_total",
        "verification_options",
    ]


@admin.register(models.Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "unit", "is_gold", "created_at"]
    list_filter = ["campaign", "is_gold"]
    search_fields = ["gold_concept", "unit__layer__name"]
    raw_id_fields = ["unit"]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "task",
        "worker",
        "status",
        "accepted_at",
        "submitted_at",
        "active_seconds",
    ]
    list_filter = ["status", "task__campaign"]
    search_fields = ["worker__pseudonym", "external_assignment_id", "completion_code"]
    raw_id_fields = ["task", "worker"]


@admin.register(models.Answer)
class AnswerAdmin(admin.ModelAdmin):
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


# --- verification tasks (issue 16) ---


@admin.register(models.VerificationTask)
class VerificationTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "unit", "concept", "label_source", "answers_wanted"]
    list_filter = ["campaign", "label_source"]
    search_fields = ["concept"]
    raw_id_fields = ["unit"]


@admin.register(models.VerificationItem)
class VerificationItemAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "position", "image", "activation", "inclusion_probability"]
    list_filter = ["planted", "silent"]
    raw_id_fields = ["task", "image"]


@admin.register(models.VerificationAssignment)
class VerificationAssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "worker", "status", "accepted_at", "submitted_at"]
    list_filter = ["status"]
    raw_id_fields = ["task", "worker"]


@admin.register(models.VerificationAnswer)
class VerificationAnswerAdmin(admin.ModelAdmin):
    list_display = ["id", "assignment", "item", "answer", "created_at"]
    list_filter = ["answer"]
    raw_id_fields = ["assignment", "item"]
