"""Read-only API for unit labels and layer reports (researchers and admins)."""

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.labels import reports
from annotate.labels.models import UnitLabel
from core.access import HasAction


class UnitLabelSerializer(serializers.ModelSerializer):
    network = serializers.CharField(source="unit.layer.run.network.name")
    run = serializers.IntegerField(source="unit.layer.run_id")
    layer = serializers.CharField(source="unit.layer.name")
    unit = serializers.IntegerField(source="unit.index")
    unit_id = serializers.IntegerField()
    # Plain text, not an enum: the category choices are documented once, on the crowd's answers.
    category = serializers.CharField()

    class Meta:
        model = UnitLabel
        fields = [
            "network",
            "run",
            "layer",
            "unit",
            "unit_id",
            "concept_text",
            "category",
            "precision",
            "tile_precision",
            "agreement",
            "is_detector",
            "answer_count",
            "method",
            "details",
            "updated_at",
        ]


class UnitLabelList(ListAPIView):
    """Crowd unit labels; filters: network, layer, category, q (concept), detectors=1."""

    serializer_class = UnitLabelSerializer
    permission_classes = [HasAction]
    required_action = "report.view"

    def get_queryset(self):
        params = self.request.query_params
        run = None
        if params.get("network"):
            try:
                run = reports.run_for_network(network=params["network"])
            except reports.ReportError:
                return UnitLabel.objects.none()
        return reports.unit_labels(
            run=run,
            q=params.get("q", ""),
            layer=params.get("layer") or None,
            category=params.get("category") or None,
            detectors_only=params.get("detectors") == "1",
        )


class LayerRowSerializer(serializers.Serializer):
    layer = serializers.CharField()
    units = serializers.IntegerField()
    labeled_units = serializers.IntegerField()
    answers = serializers.IntegerField()
    category_counts = serializers.DictField(child=serializers.IntegerField())
    category_percent = serializers.DictField(child=serializers.FloatField())
    mean_precision = serializers.FloatField(allow_null=True)
    mean_agreement = serializers.FloatField(allow_null=True)
    detectors = serializers.IntegerField()
    detectors_by_category = serializers.DictField(child=serializers.IntegerField())


class LayerReportSerializer(serializers.Serializer):
    network = serializers.CharField()
    run = serializers.IntegerField()
    layers = LayerRowSerializer(many=True)


class LayerReport(APIView):
    """Per-layer report of a network: category shares, mean precision, detectors."""

    permission_classes = [HasAction]
    required_action = "report.view"
    serializer_class = LayerReportSerializer

    @extend_schema(
        responses=LayerReportSerializer,
        parameters=[
            OpenApiParameter("network", str, OpenApiParameter.PATH),
            OpenApiParameter("layer", str, many=True, description="Only these layers."),
        ],
    )
    def get(self, request, network: str):
        # reports.ReportError is a core.errors.NotFound: 404 through the one handler.
        run = reports.run_for_network(network=network)
        rows = reports.layer_report(run=run, layers=request.query_params.getlist("layer"))
        return Response({"network": network, "run": run.pk, "layers": [r.as_dict() for r in rows]})


# Mounted at /api/labels/ by config/urls.py (the one API mount).
app_name = "labels-api"
urlpatterns = [
    path("unit-labels/", UnitLabelList.as_view(), name="unit-labels"),
    path("network/<slug:network>/layers/", LayerReport.as_view(), name="layers"),
]
