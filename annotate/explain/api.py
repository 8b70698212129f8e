"""REST endpoint: POST an image (multipart) -> the same explanation the page shows, as JSON."""

from __future__ import annotations

from django.urls import path
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.explain.selectors import DEFAULT_MIN_IOU, LABEL_SOURCES
from annotate.explain.services import explain_image
from annotate.explain.uploads import load_upload
from core.access import HasAction
from dissect.models import Network


class ExplainRequestSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="JPEG, PNG or WebP, at most 20 MB and 40 megapixels.")
    network = serializers.SlugRelatedField(slug_field="name", queryset=Network.objects.all())
    labels = serializers.ChoiceField(choices=LABEL_SOURCES, default="both")
    min_iou = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        default=DEFAULT_MIN_IOU,
        help_text="Automatic labels are used from this IoU up (0.04: Network Dissection's level).",
    )


class ExplainAPIView(APIView):
    """Scene top-5 and the concepts localized by labeled units, for one uploaded image.

    Response: ``scenes`` [{label, probability}], ``concepts`` [{concept, category, confidence,
    area, best_unit, units, mask_rle, color, layer_url}], ``overlay_url``, ``image_url``."""

    permission_classes = [HasAction]
    required_action = "explain.use"
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = ExplainRequestSerializer

    def post(self, request):
        serializer = ExplainRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["image"]
        # UploadRefused / ExplainError are core.errors.AppError: 400 through the one handler.
        image = load_upload(upload, filename=upload.name, size_bytes=upload.size)
        payload = explain_image(
            network=serializer.validated_data["network"],
            image=image,
            source=serializer.validated_data["labels"],
            min_iou=serializer.validated_data["min_iou"],
        )
        return Response(payload)


# Mounted at /api/explain/ by config/urls.py (the one API mount).
app_name = "explain-api"
urlpatterns = [path("", ExplainAPIView.as_view(), name="explain")]
