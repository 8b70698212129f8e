"""REST API (DRF): networks, image sets, runs (create, start, cancel, resume, status), layers,
and units with their tiles. Thin: serializers validate, services write, selectors read."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from core.access import HasAction
from core.errors import int_param
from core.schema import READ_ERRORS, WRITE_ERRORS
from dissect import selectors, services
from dissect.models import DissectionRun, ImageSet, Layer, Network, Unit, UnitImage
from dissect.parameters import RUN_OPTIONS, RUN_PARAMETERS
from dissect.storage import media_url


class NetworkSerializer(serializers.ModelSerializer):
    untrained = serializers.BooleanField(
        source="is_untrained", read_only=True,
        help_text="Registered with --random-init: random weights, no checkpoint.",
    )  # fmt: skip

    class Meta:
        model = Network
        fields = ["id", "name", "arch", "source", "untrained", "weights_sha256", "layer_aliases",
                  "preprocessing", "training_data", "description", "created_at"]  # fmt: skip


class ImageSetSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImageSet
        fields = ["id", "name", "root", "manifest_sha256", "image_count", "bad_count",
                  "labels_dir", "description", "created_at"]  # fmt: skip


class RunSerializer(serializers.ModelSerializer):
    network = serializers.SlugRelatedField(slug_field="name", read_only=True)
    image_set = serializers.SlugRelatedField(slug_field="name", read_only=True)
    notes = serializers.SerializerMethodField(
        help_text="What the run adapted or warns about, e.g. top-K lowered for a small image set."
    )

    class Meta:
        model = DissectionRun
        fields = ["id", "network", "image_set", "layers", "parameters", "notes", "seed", "status",
                  "stage", "progress", "timings", "error", "code_version", "device", "created_at",
                  "started_at", "finished_at"]  # fmt: skip

    def get_notes(self, run) -> list[str]:
        return list((run.parameters or {}).get("notes", []))


class StageProgressSerializer(serializers.Serializer):
    stage = serializers.CharField()
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    fraction = serializers.FloatField()
    counting = serializers.CharField(
        help_text="What the counter counts when not obvious, e.g. '2 shard(s) read + 2 layer(s) "
        "written' for the merge; empty otherwise."
    )
    seconds = serializers.FloatField(allow_null=True)


class ShardCountSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()


class RunStallSerializer(serializers.Serializer):
    """The watchdog's record of a stalled run (dissect.watchdog)."""

    since = serializers.DateTimeField(help_text="When its progress last changed.")
    detected_at = serializers.DateTimeField()
    stage = serializers.CharField()
    recoveries = serializers.IntegerField(help_text="Automatic resumes so far.")


class RunStatusSerializer(serializers.Serializer):
    """What ``runs/{id}/status/`` answers (dissect.selectors.run_status), not a full run."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=DissectionRun.Status.choices)
    stage = serializers.CharField()
    finished = serializers.BooleanField()
    stages = StageProgressSerializer(many=True)
    error = serializers.CharField()
    shards = ShardCountSerializer()
    device = serializers.CharField()
    code_version = serializers.CharField()
    stalled = RunStallSerializer(allow_null=True)


class RunOptionsSerializer(serializers.Serializer):
    """Advanced parameters (dissect.parameters.RUN_OPTIONS); any left out take their defaults."""

    def get_fields(self):
        return RUN_OPTIONS.serializer_fields(with_default=False)


class RunCreateSerializer(serializers.Serializer):
    """A new run: network, image set, layers, then dissect.parameters.RUN_PARAMETERS."""

    network = serializers.SlugRelatedField(slug_field="name", queryset=Network.objects.all())
    image_set = serializers.SlugRelatedField(slug_field="name", queryset=ImageSet.objects.all())
    layers = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1)
    options = RunOptionsSerializer(required=False)
    start = serializers.BooleanField(default=True, help_text="Start right away (else: pending).")

    def get_fields(self):
        fields = super().get_fields()
        # top_k left out: the default K, adapted to the image set's size (the run's notes say so).
        top_k = {"top_k": RUN_PARAMETERS["top_k"].serializer_field(with_default=False)}
        return {**fields, **RUN_PARAMETERS.serializer_fields(), **top_k}


class LayerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Layer
        fields = ["id", "run", "name", "module_path", "order", "unit_count", "output_shape",
                  "theoretical_rf_px", "empirical_rf_mean_px", "empirical_rf_std_px"]  # fmt: skip


class UnitImageSerializer(serializers.ModelSerializer):
    path = serializers.CharField(source="image.path")
    tile_url = serializers.SerializerMethodField()

    class Meta:
        model = UnitImage
        fields = ["kind", "rank", "image", "path", "score", "argmax_y", "argmax_x",
                  "tile_path", "tile_url"]  # fmt: skip

    def get_tile_url(self, obj) -> str:
        return media_url(obj.tile_path)


class UnitSerializer(serializers.ModelSerializer):
    layer = serializers.CharField(source="layer.name")
    run = serializers.IntegerField(source="layer.run_id")
    montage_url = serializers.SerializerMethodField()
    rf_map_url = serializers.SerializerMethodField()

    class Meta:
        model = Unit
        fields = ["id", "run", "layer", "index", "threshold", "top_score", "rf_size_px",
                  "rf_map_path", "rf_map_url", "montage_path", "montage_url"]  # fmt: skip

    def get_montage_url(self, obj) -> str:
        return media_url(obj.montage_path)

    def get_rf_map_url(self, obj) -> str:
        return media_url(obj.rf_map_path)


class UnitDetailSerializer(UnitSerializer):
    images = UnitImageSerializer(source="unit_images", many=True, read_only=True)

    class Meta(UnitSerializer.Meta):
        fields = [*UnitSerializer.Meta.fields, "images"]


class NetworkViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Network.objects.all()
    serializer_class = NetworkSerializer
    permission_classes = [HasAction]
    required_action = "run.view"


class ImageSetViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ImageSet.objects.all()
    serializer_class = ImageSetSerializer
    permission_classes = [HasAction]
    required_action = "run.view"


class AutoLabelCountSerializer(serializers.Serializer):
    """One unit x category of a run's automatic labels with the counts behind its IoU."""

    layer = serializers.CharField()
    unit = serializers.IntegerField()
    category = serializers.CharField(allow_blank=True, help_text="Empty = best over all.")
    label = serializers.CharField()
    label_number = serializers.IntegerField()
    iou = serializers.FloatField()
    intersection = serializers.IntegerField()
    unit_area = serializers.IntegerField()
    label_area = serializers.IntegerField()
    threshold = serializers.FloatField()
    exact = serializers.BooleanField()
    denominator = serializers.CharField()


class RunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Runs. POST creates (and by default starts) one; POST .../start|cancel|resume/ acts on it;
    GET .../status/ is what the run page polls."""

    queryset = DissectionRun.objects.select_related("network", "image_set")
    serializer_class = RunSerializer
    permission_classes = [HasAction]
    required_action = "run.view"
    action_permissions = {
        "create": "run.create",
        "start": "run.control",
        "cancel": "run.control",
        "resume": "run.control",
    }
    lookup_value_regex = r"\d+"

    def get_serializer_class(self):
        return RunCreateSerializer if self.action == "create" else RunSerializer

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer, **WRITE_ERRORS})
    def create(self, request, *args, **kwargs):
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        kwargs = dict(data.validated_data)
        start = kwargs.pop("start")
        # Errors (PipelineError 400, PipelineConflict 409) go through core.errors' handler.
        run = services.run_create(**kwargs, created_by=request.user)
        if start:
            run = services.run_start(run=run, background=True)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    def _act(self, service, **kwargs):
        run = service(run=self.get_object(), **kwargs)
        run.refresh_from_db()
        return Response(RunSerializer(run).data)

    @extend_schema(request=None, responses={200: RunSerializer, **WRITE_ERRORS})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._act(services.run_start, background=True)

    @extend_schema(request=None, responses={200: RunSerializer, **WRITE_ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._act(services.run_cancel, actor=request.user)

    @extend_schema(request=None, responses={200: RunSerializer, **WRITE_ERRORS})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._act(services.run_resume, background=True, actor=request.user)

    @extend_schema(responses={200: RunStatusSerializer, **READ_ERRORS})
    @action(detail=True, methods=["get"])
    def status(self, request, pk=None):
        return Response(selectors.run_status(run=self.get_object()))

    @extend_schema(responses={200: AutoLabelCountSerializer(many=True), **READ_ERRORS})
    @action(detail=True, methods=["get"], url_path="auto-label-counts")
    def auto_label_counts(self, request, pk=None):
        """The counts behind the run's automatic labels (``?layer=`` filters); [] when none."""
        from dissect.services.extraction import auto_label_counts

        rows = auto_label_counts(run=self.get_object(), layer=request.query_params.get("layer"))
        return Response(AutoLabelCountSerializer(rows, many=True).data)


class LayerViewSet(viewsets.ReadOnlyModelViewSet):
    """Layers; ``?run=ID`` filters."""

    serializer_class = LayerSerializer
    permission_classes = [HasAction]
    required_action = "run.view"

    def get_queryset(self):
        queryset = Layer.objects.all()
        if run := self.request.query_params.get("run"):
            queryset = queryset.filter(run_id=int_param(run, field="run"))
        return queryset


class UnitViewSet(viewsets.ReadOnlyModelViewSet):
    """Units; ``?run=ID`` and ``?layer=NAME`` filter; a unit's detail lists its tiles."""

    permission_classes = [HasAction]
    required_action = "run.view"

    def get_serializer_class(self):
        return UnitDetailSerializer if self.action == "retrieve" else UnitSerializer

    def get_queryset(self):
        queryset = Unit.objects.select_related("layer")
        if run := self.request.query_params.get("run"):
            queryset = queryset.filter(layer__run_id=int_param(run, field="run"))
        if layer := self.request.query_params.get("layer"):
            queryset = queryset.filter(layer__name=layer)
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("unit_images__image")
        return queryset.order_by("layer__run_id", "layer__order", "index")


router = SimpleRouter()
router.register("networks", NetworkViewSet, basename="api-network")
router.register("image-sets", ImageSetViewSet, basename="api-image-set")
router.register("runs", RunViewSet, basename="api-run")
router.register("layers", LayerViewSet, basename="api-layer")
router.register("units", UnitViewSet, basename="api-unit")

# Mounted at /api/dissect/ by config/urls.py (the one API mount).
app_name = "dissect-api"
urlpatterns = router.urls
