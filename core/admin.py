from django.contrib import admin

from core import models


@admin.register(models.Concept)
class ConceptAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "source", "merged_into"]
    list_filter = ["category", "source"]
    search_fields = ["name", "synonyms"]


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
