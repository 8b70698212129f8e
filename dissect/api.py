"""REST API (DRF): networks, image sets, runs (create, start, cancel, resume, status), layers,
and units with their tiles. Thin: serializers validate, services write, selectors read."""

from __future__ import annotations

from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from dissect import selectors, services
from dissect.models import DissectionRun, ImageSet, Layer, Network, Unit, UnitImage
from dissect.storage import media_url
from dissect.views import is_researcher


class IsResearcher(permissions.BasePermission):
    message = "Dissection runs are for researchers and admins."

    def has_permission(self, request, view) -> bool:
        return is_researcher(request.user)


class NetworkSerializer(serializers.ModelSerializer):
    class Meta:
        model = Network
        fields = ["id", "name", "arch", "source", "weights_sha256", "layer_aliases",
                  "preprocessing", "training_data", "description", "created_at"]  # fmt: skip


class ImageSetSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImageSet
        fields = ["id", "name", "root", "manifest_sha256", "image_count", "bad_count",
                  "labels_dir", "description", "created_at"]  # fmt: skip


class RunSerializer(serializers.ModelSerializer):
    network = serializers.SlugRelatedField(slug_field="name", read_only=True)
    image_set = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = DissectionRun
        fields = ["id", "network", "image_set", "layers", "parameters", "seed", "status", "stage",
                  "progress", "timings", "error", "code_version", "device", "created_at",
                  "started_at", "finished_at"]  # fmt: skip


class RunOptionsSerializer(serializers.Serializer):
    """Advanced parameters; any left out take the pipeline's defaults."""

    quantile = serializers.FloatField(
        required=False, help_text="Activation quantile of a unit's threshold, e.g. 0.995."
    )
    montage_tile_px = serializers.IntegerField(required=False)
    rf_images = serializers.IntegerField(required=False)
    rf_patch_px = serializers.IntegerField(required=False)
    rf_stride_px = serializers.IntegerField(required=False)
    auto_labels = serializers.BooleanField(
        required=False, help_text="Label units automatically from the image set's pixel labels."
    )


class RunCreateSerializer(serializers.Serializer):
    network = serializers.SlugRelatedField(slug_field="name", queryset=Network.objects.all())
    image_set = serializers.SlugRelatedField(slug_field="name", queryset=ImageSet.objects.all())
    layers = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1)
    top_k = serializers.IntegerField(min_value=1, default=services.DEFAULTS["top_k"])
    controls = serializers.IntegerField(min_value=0, default=services.DEFAULTS["controls"])
    shard_size = serializers.IntegerField(min_value=1, default=services.DEFAULTS["shard_size"])
    segmentation = serializers.ChoiceField(
        choices=services.SEGMENTATIONS, default=services.DEFAULTS["segmentation"]
    )
    receptive_field = serializers.BooleanField(default=False)
    device = serializers.ChoiceField(choices=services.DEVICES, default="auto")
    tile_px = serializers.IntegerField(min_value=16, default=services.DEFAULTS["tile_px"])
    batch_size = serializers.IntegerField(min_value=1, default=services.DEFAULTS["batch_size"])
    workers = serializers.IntegerField(min_value=0, default=services.DEFAULTS["workers"])
    seed = serializers.IntegerField(default=0)
    options = RunOptionsSerializer(required=False)
    start = serializers.BooleanField(default=True, help_text="Start right away (else: pending).")


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
    permission_classes = [IsResearcher]


class ImageSetViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ImageSet.objects.all()
    serializer_class = ImageSetSerializer
    permission_classes = [IsResearcher]


class RunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Runs. POST creates (and by default starts) one; POST .../start|cancel|resume/ acts on it;
    GET .../status/ is what the run page polls."""

    queryset = DissectionRun.objects.select_related("network", "image_set")
    serializer_class = RunSerializer
    permission_classes = [IsResearcher]

    def get_serializer_class(self):
        return RunCreateSerializer if self.action == "create" else RunSerializer

    def create(self, request, *args, **kwargs):
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        kwargs = dict(data.validated_data)
        start = kwargs.pop("start")
        try:
            run = services.run_create(**kwargs, created_by=request.user)
            if start:
                run = services.run_start(run=run, background=True)
        except services.PipelineError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    def _act(self, service, **kwargs):
        try:
            run = service(run=self.get_object(), **kwargs)
        except services.PipelineError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        run.refresh_from_db()
        return Response(RunSerializer(run).data)

    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._act(services.run_start, background=True)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._act(services.run_cancel)

    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._act(services.run_resume, background=True)

    @action(detail=True, methods=["get"])
    def status(self, request, pk=None):
        return Response(selectors.run_status(run=self.get_object()))


class LayerViewSet(viewsets.ReadOnlyModelViewSet):
    """Layers; ``?run=ID`` filters."""

    serializer_class = LayerSerializer
    permission_classes = [IsResearcher]

    def get_queryset(self):
        queryset = Layer.objects.all()
        if run := self.request.query_params.get("run"):
            queryset = queryset.filter(run_id=run)
        return queryset


class UnitViewSet(viewsets.ReadOnlyModelViewSet):
    """Units; ``?run=ID`` and ``?layer=NAME`` filter; a unit's detail lists its tiles."""

    permission_classes = [IsResearcher]

    def get_serializer_class(self):
        return UnitDetailSerializer if self.action == "retrieve" else UnitSerializer

    def get_queryset(self):
        queryset = Unit.objects.select_related("layer")
        if run := self.request.query_params.get("run"):
            queryset = queryset.filter(layer__run_id=run)
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
