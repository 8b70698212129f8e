"""REST API of the crowd workflow (DRF; schema at /api/schema/). Session or token auth.

Annotators: lease tasks, read and answer their own assignments. Researchers and admins: campaigns,
every assignment and answer, review. Permissions come from the one table in core/access.py.
"""

from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import Throttled
from rest_framework.response import Response as ApiResponse
from rest_framework.routers import DefaultRouter

from annotate.crowd import selectors, services, verification
from annotate.crowd.instructions import CATEGORY_HELP
from annotate.crowd.models import Answer, Assignment, Campaign, Task
from annotate.crowd.spec import CAMPAIGN_SPEC, VERIFICATION_SPEC
from annotate.crowd.throttling import submit_wait_seconds
from core.access import HasAction, can
from core.concepts import CATEGORIES, CATEGORY_SLUGS
from core.errors import MAX_INT64, int_param
from core.schema import error_responses
from dissect.models import DissectionRun

A = Assignment.Status


# --- campaigns --------------------------------------------------------------------------------------


class VerificationBuildSerializer(serializers.Serializer):
    """The build of a campaign's verification sample (queue gpu): state '' (none asked for),
    pending, building, ready or failed; steps done of total while it runs; the error when it
    failed; the verification tasks made. Verification leases are handed out only when ready.
    ``stale``: still building past the task's hard time limit, so its worker died; the error
    says so, and the sample may be built again."""

    state = serializers.ChoiceField(
        source="verification_state", choices=Campaign.VerificationState.choices, read_only=True
    )
    done = serializers.IntegerField(source="verification_done", read_only=True)
    total = serializers.IntegerField(source="verification_total", read_only=True)
    error = serializers.SerializerMethodField()
    stale = serializers.SerializerMethodField()
    tasks = serializers.SerializerMethodField()

    def get_error(self, campaign) -> str:
        return verification.verification_build_status(campaign=campaign).error

    def get_stale(self, campaign) -> bool:
        return verification.verification_build_status(campaign=campaign).state == "stale"

    def get_tasks(self, campaign) -> int:
        return campaign.verification_tasks.count()


class CampaignSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    verification = VerificationBuildSerializer(source="*", read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "run", "layers", "tiles_per_task", "controls_per_task", "redundancy",
            "max_answers", "target_confidence", "fill_order", "lease_minutes", "reward_cents",
            "instructions", "gold_rate", "max_tasks_per_worker", "min_gold_accuracy",
            "auto_approve_hours", "completion_url", "completion_code", "tasks_per_session",
            "seed", "status", "created_at", "progress", "verification",
        ]  # fmt: skip
        read_only_fields = fields

    def get_progress(self, campaign) -> list[dict]:
        return [
            {
                "layer": p.layer,
                "units": p.units,
                "needed": p.needed,
                "answered": p.answered,
                "approved": p.approved,
                "leased": p.leased,
                "complete_units": p.complete_units,
            }  # fmt: skip
            for p in selectors.campaign_progress(campaign=campaign)
        ]


class GoldSerializer(serializers.Serializer):
    unit = serializers.IntegerField(min_value=1, max_value=MAX_INT64)
    concept = serializers.CharField(max_length=40)
    category = serializers.ChoiceField(choices=CATEGORY_SLUGS)


class CampaignCreateSerializer(serializers.Serializer):
    """A new campaign: run, layers, gold units, then annotate.crowd.spec.CAMPAIGN_SPEC."""

    run = serializers.PrimaryKeyRelatedField(queryset=DissectionRun.objects.all())
    layers = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1)
    gold = GoldSerializer(many=True, required=False, default=list)

    def get_fields(self):
        return {
            **super().get_fields(),
            **CAMPAIGN_SPEC.serializer_fields(),
            **VERIFICATION_SPEC.serializer_fields(),
        }


class CampaignStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Campaign.Status.choices)


class CampaignViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Campaigns (researchers and admins)."""

    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer
    permission_classes = [HasAction]
    action_permissions = {
        "list": "campaign.view",
        "retrieve": "campaign.view",
        "create": "campaign.create",
        "set_status": "campaign.status",
    }

    @extend_schema(request=CampaignCreateSerializer, responses={201: CampaignSerializer})
    def create(self, request):
        data = CampaignCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values["gold"] = {g["unit"]: (g["concept"], g["category"]) for g in values.pop("gold")}
        campaign = verification.campaign_create_with_verification(created_by=request.user, **values)
        return ApiResponse(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CampaignStatusSerializer, responses=CampaignSerializer)
    @action(detail=True, methods=["post"], url_path="status")
    def set_status(self, request, pk=None):
        data = CampaignStatusSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = services.campaign_set_status(
            campaign=self.get_object(), status=data.validated_data["status"], actor=request.user
        )
        return ApiResponse(CampaignSerializer(campaign).data)


# --- tasks (researchers: the campaign's Hits, gold answers included) -----------------------------


class TaskSerializer(serializers.ModelSerializer):
    layer = serializers.CharField(source="unit.layer.name", read_only=True)
    unit_index = serializers.IntegerField(source="unit.index", read_only=True)
    tile_count = serializers.SerializerMethodField()
    answers = serializers.IntegerField(read_only=True)
    # Empty on tasks that are not gold: the schema says so (a read-only model field would not).
    gold_category = serializers.ChoiceField(
        choices=CATEGORIES, allow_blank=True, read_only=True, help_text="Empty unless gold."
    )

    class Meta:
        model = Task
        fields = [
            "id", "campaign", "unit", "layer", "unit_index", "tile_count", "is_gold",
            "gold_concept", "gold_category", "answers", "answers_wanted", "confidence",
            "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_tile_count(self, task) -> int:
        return len(task.tile_order)


@extend_schema(parameters=[OpenApiParameter("campaign", int, description="Only this campaign.")])
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tasks of campaigns (one per unit) with their answer counts, for researchers and admins."""

    serializer_class = TaskSerializer
    permission_classes = [HasAction]
    required_action = "campaign.view"

    def get_queryset(self):
        qs = (
            Task.objects.select_related("unit__layer")
            .annotate(
                answers=Count(
                    "assignments", filter=Q(assignments__status__in=[A.SUBMITTED, A.APPROVED])
                )
            )
            .order_by("pk")
        )
        if campaign := self.request.query_params.get("campaign"):
            qs = qs.filter(campaign_id=int_param(campaign, field="campaign"))
        return qs


# --- assignments: what a worker sees of their task ------------------------------------------------


class TileSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    url = serializers.CharField()


class SubmitSerializer(serializers.Serializer):
    concept = serializers.CharField(allow_blank=True, max_length=200)
    category = serializers.CharField(allow_blank=True, max_length=20)
    flagged = serializers.ListField(
        child=serializers.IntegerField(min_value=0), required=False, default=list
    )
    active_seconds = serializers.FloatField(
        required=False, allow_null=True, min_value=0, default=None
    )


class AssignmentSerializer(serializers.ModelSerializer):
    """An assignment as its worker sees it: tiles by position only, their own answer, no controls."""

    campaign = serializers.IntegerField(source="task.campaign_id", read_only=True)
    instructions = serializers.CharField(source="task.campaign.instructions", read_only=True)
    tiles = serializers.SerializerMethodField()
    answer = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = [
            "id", "campaign", "status", "accepted_at", "lease_expires_at", "submitted_at",
            "active_seconds", "reject_reason", "completion_code", "instructions", "tiles", "answer",
        ]  # fmt: skip
        read_only_fields = fields

    def get_tiles(self, assignment) -> list[dict]:
        return TileSerializer(selectors.task_tiles(task=assignment.task), many=True).data

    def get_answer(self, assignment) -> dict | None:
        answer = getattr(assignment, "answer", None)
        if answer is None:
            return None
        order = assignment.task.tile_order
        return {
            "concept": answer.concept_text,
            "category": answer.category,
            "flagged": sorted(order.index(i) for i in answer.flagged_tiles if i in order),
        }


class ReviewAssignmentSerializer(AssignmentSerializer):
    """What researchers see: everything, including the worker and the control result."""

    worker = serializers.CharField(source="worker.pseudonym", read_only=True)
    unit = serializers.IntegerField(source="task.unit_id", read_only=True)
    is_gold = serializers.BooleanField(source="task.is_gold", read_only=True)
    control_failed = serializers.BooleanField(
        source="answer.control_failed", read_only=True, default=None, allow_null=True
    )
    precision = serializers.FloatField(
        source="answer.precision", read_only=True, default=None, allow_null=True
    )

    class Meta(AssignmentSerializer.Meta):
        fields = AssignmentSerializer.Meta.fields + [
            "worker",
            "unit",
            "is_gold",
            "control_failed",
            "precision",
        ]
        read_only_fields = fields


class NextTaskSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(min_value=1, max_value=MAX_INT64)


class ReviewSerializer(serializers.Serializer):
    assignments = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_INT64), min_length=1
    )
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class AssignmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Assignments: annotators see and act on their own; researchers see all and review."""

    permission_classes = [HasAction]
    action_permissions = {
        "list": "task.work",
        "retrieve": "task.work",
        "next": "task.work",
        "submit": "task.work",
        "return_task": "task.work",
        "skip": "task.work",
        "review": "assignment.review",
    }

    def get_queryset(self):
        qs = Assignment.objects.select_related("task__campaign", "worker", "answer").order_by("-pk")
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user to filter by
            return qs.none()
        if not can(self.request.user, "answer.view_all"):
            qs = qs.filter(worker=services.worker_for_user(user=self.request.user))
        if campaign := self.request.query_params.get("campaign"):
            qs = qs.filter(task__campaign_id=int_param(campaign, field="campaign"))
        return qs

    def get_serializer_class(self):
        if can(self.request.user, "answer.view_all"):
            return ReviewAssignmentSerializer
        return AssignmentSerializer

    def _own(self, pk) -> Assignment:
        worker = services.worker_for_user(user=self.request.user)
        return get_object_or_404(
            Assignment.objects.select_related("task__campaign"),
            pk=int_param(pk, field="id", low=1),
            worker=worker,
        )

    def _mine(self, assignment) -> ApiResponse:
        return ApiResponse(AssignmentSerializer(assignment, context={"request": self.request}).data)

    @extend_schema(
        request=NextTaskSerializer,
        responses={200: AssignmentSerializer, **error_responses(404)},
        description="Lease the next task of a campaign (or return the lease already held).",
    )
    @action(detail=False, methods=["post"])
    def next(self, request):
        data = NextTaskSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = get_object_or_404(Campaign, pk=data.validated_data["campaign"])
        assignment = services.assignment_next(
            worker=services.worker_for_user(user=request.user), campaign=campaign
        )
        return self._mine(assignment)

    @extend_schema(
        request=SubmitSerializer,
        responses={200: AssignmentSerializer, **error_responses(409, 429)},
        description="Answer a leased task. 200 with status 'leased' and a 'revise' message means: look "
        "again once (a tile that clearly does not fit was left unmarked); submit again to save.",
    )
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        assignment = self._own(pk)
        wait = submit_wait_seconds(request=request, worker=assignment.worker)
        if wait is not None:
            raise Throttled(wait=wait)
        data = SubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        outcome = services.assignment_submit(
            assignment=assignment,
            worker=assignment.worker,
            concept=values["concept"],
            category=values["category"],
            flagged_positions=values["flagged"],
            active_seconds=values["active_seconds"],
        )
        body = AssignmentSerializer(outcome.assignment, context={"request": request}).data
        body["revise"] = outcome.messages if outcome.revise else []
        return ApiResponse(body)

    @extend_schema(request=None, responses={200: AssignmentSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"], url_path="return")
    def return_task(self, request, pk=None):
        assignment = self._own(pk)
        assignment = services.assignment_return(assignment=assignment, worker=assignment.worker)
        return self._mine(assignment)

    @extend_schema(
        request=None, responses={200: AssignmentSerializer, 204: None, **error_responses(409)}
    )
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        assignment = self._own(pk)
        following = services.assignment_skip(assignment=assignment, worker=assignment.worker)
        if following is None:
            return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        return self._mine(following)

    @extend_schema(request=ReviewSerializer, responses=ReviewAssignmentSerializer(many=True))
    @action(detail=False, methods=["post"])
    def review(self, request):
        data = ReviewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        changed = services.assignment_review(
            assignment_ids=values["assignments"],
            approve=values["decision"] == "approve",
            actor=request.user,
            reason=values["reason"],
        )
        return ApiResponse(ReviewAssignmentSerializer(changed, many=True).data)


# --- answers (researchers) --------------------------------------------------------------------


class AnswerSerializer(serializers.ModelSerializer):
    """An answer. Its "does not fit" tiles come three ways, in the order the worker saw them:
    `flagged_positions` (0-based, in the task's tile order, as the worker submitted them),
    `flagged_images` (image ids of the image set) and `flagged_files` (the tile file names in a
    labeled-unit zip export). `flagged_tiles` holds the unit's tile (UnitImage) ids."""

    worker = serializers.CharField(source="assignment.worker.pseudonym", read_only=True)
    simulated = serializers.BooleanField(
        source="assignment.worker.is_simulated",
        read_only=True,
        help_text="True for the demo's simulated workers (sim-…), never people.",
    )
    unit = serializers.IntegerField(source="assignment.task.unit_id", read_only=True)
    campaign = serializers.IntegerField(source="assignment.task.campaign_id", read_only=True)
    concept_name = serializers.CharField(
        source="concept.name", read_only=True, default=None, allow_null=True
    )
    flagged_positions = serializers.SerializerMethodField()
    flagged_images = serializers.SerializerMethodField()
    flagged_files = serializers.SerializerMethodField()

    class Meta:
        model = Answer
        fields = [
            "id", "assignment", "worker", "simulated", "unit", "campaign", "concept_text",
            "concept_name",
            "category", "flagged_tiles", "flagged_positions", "flagged_images", "flagged_files",
            "precision", "control_failed", "revisions", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def _flagged(self, answer) -> dict[str, list]:
        described = self.context.setdefault("flagged_described", {})
        if answer.pk not in described:
            # One query for the whole page: the list serializer's instances share the context.
            page = getattr(self.parent, "instance", None) or [answer]
            refs = selectors.tile_refs(i for a in page for i in (a.flagged_tiles or []))
            for a in page:
                described[a.pk] = selectors.flagged_tiles_described(
                    tile_order=a.assignment.task.tile_order,
                    flagged_tiles=a.flagged_tiles,
                    refs=refs,
                )
        return described[answer.pk]

    def get_flagged_positions(self, answer) -> list[int]:
        return self._flagged(answer)["flagged_positions"]

    def get_flagged_images(self, answer) -> list[int]:
        return self._flagged(answer)["flagged_images"]

    def get_flagged_files(self, answer) -> list[str]:
        return self._flagged(answer)["flagged_files"]


@extend_schema(parameters=[OpenApiParameter("campaign", int, description="Only this campaign.")])
class AnswerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every answer, for researchers and admins."""

    serializer_class = AnswerSerializer
    permission_classes = [HasAction]
    required_action = "answer.view_all"

    def get_queryset(self):
        qs = Answer.objects.select_related(
            "assignment__worker", "assignment__task", "concept"
        ).order_by("pk")
        if campaign := self.request.query_params.get("campaign"):
            qs = qs.filter(assignment__task__campaign_id=int_param(campaign, field="campaign"))
        return qs


class CategorySerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    examples = serializers.CharField()
    worked_example = serializers.CharField()


class CategoryViewSet(viewsets.ViewSet):
    """The six categories with examples (for API clients building their own task page)."""

    permission_classes = [HasAction]
    required_action = "task.work"

    @extend_schema(responses=CategorySerializer(many=True))
    def list(self, request):
        return ApiResponse(CategorySerializer(CATEGORY_HELP, many=True).data)


router = DefaultRouter()
router.register("campaigns", CampaignViewSet, basename="api-campaign")
router.register("tasks", TaskViewSet, basename="api-task")
router.register("assignments", AssignmentViewSet, basename="api-assignment")
router.register("answers", AnswerViewSet, basename="api-answer")
router.register("categories", CategoryViewSet, basename="api-category")

# Mounted at /api/crowd/ by config/urls.py (the one API mount).
app_name = "crowd-api"
urlpatterns = router.urls
