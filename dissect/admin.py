from django.contrib import admin

from dissect import models


@admin.register(models.Network)
class NetworkAdmin(admin.ModelAdmin):
    list_display = ["name", "arch", "source", "training_data", "short_sha256", "created_at"]
    list_filter = ["source", "arch"]
    search_fields = ["name", "arch", "weights_sha256", "description"]

    @admin.display(description="weights sha256")
    def short_sha256(self, obj):
        return obj.weights_sha256[:12]


@admin.register(models.ImageSet)
class ImageSetAdmin(admin.ModelAdmin):
    list_display = ["name", "root", "image_count", "bad_count", "created_at"]
    search_fields = ["name", "root", "manifest_sha256"]


@admin.register(models.Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["path", "image_set", "status", "reason", "width", "height", "scene_label"]
    list_filter = ["status", "image_set", "split"]
    search_fields = ["path", "sha1", "reason", "scene_label"]
    list_select_related = ["image_set"]


class LayerInline(admin.TabularInline):
    model = models.Layer
    extra = 0
    fields = ["name", "module_path", "unit_count", "theoretical_rf_px", "empirical_rf_mean_px"]
    show_change_link = True


@admin.register(models.DissectionRun)
class DissectionRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "network",
        "image_set",
        "status",
        "stage",
        "device",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "network", "device"]
    search_fields = ["network__name", "image_set__name", "error"]
    list_select_related = ["network", "image_set"]
    inlines = [LayerInline]


@admin.register(models.Shard)
class ShardAdmin(admin.ModelAdmin):
    list_display = ["run", "index", "image_count", "status", "worker", "seconds"]
    list_filter = ["status"]
    search_fields = ["worker", "run__network__name"]


@admin.register(models.Layer)
class LayerAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "run",
        "module_path",
        "unit_count",
        "theoretical_rf_px",
        "empirical_rf_mean_px",
    ]
    list_filter = ["run__network"]
    search_fields = ["name", "module_path"]


@admin.register(models.Unit)
class UnitAdmin(admin.ModelAdmin):
    list_display = ["__str__", "layer", "index", "threshold", "top_score", "rf_size_px"]
    list_filter = ["layer__run__network", "layer__name"]
    search_fields = ["layer__name"]
    list_select_related = ["layer"]


@admin.register(models.UnitImage)
class UnitImageAdmin(admin.ModelAdmin):
    list_display = ["unit", "kind", "rank", "score", "image", "argmax_y", "argmax_x"]
    list_filter = ["kind"]
    search_fields = ["image__path"]
    list_select_related = ["unit__layer", "image"]
    raw_id_fields = ["unit", "image"]


@admin.register(models.AutoLabel)
class AutoLabelAdmin(admin.ModelAdmin):
    list_display = ["unit", "category", "label", "iou"]
    list_filter = ["category"]
    search_fields = ["label"]
    raw_id_fields = ["unit"]
