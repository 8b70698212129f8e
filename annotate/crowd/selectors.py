"""Reads of the crowd workflow: which task a worker would get, tiles, progress, review queues, stats."""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from django.core import signing
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from annotate.crowd.models import Assignment, Campaign, StudySession, Task, Worker

A = Assignment.Status
_TILE_SALT = "crowd.tile"
_ASSIGNMENT_SALT = "crowd.assignment"
_SESSION_SALT = "crowd.study_session"


def active_assignment_q(*, now: datetime, prefix: str = "") -> Q:
    """Assignments that hold a slot of their task: answered, or leased and not yet expired."""
    return Q(**{f"{prefix}status__in": [A.SUBMITTED, A.APPROVED]}) | Q(
        **{f"{prefix}status": A.LEASED, f"{prefix}lease_expires_at__gt": now}
    )


def _count_subquery(filter_q: Q) -> Coalesce:
    counts = (
        Assignment.objects.filter(filter_q, task=OuterRef("pk"))
        .order_by()
        .values("task")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))


def candidate_tasks(*, worker: Worker, campaign: Campaign, now: datetime, gold: bool) -> QuerySet:
    """Tasks of `campaign` the worker has never held, with free slots, in the campaign's fill order.

    Free slots: fewer answers plus live leases than the task's answers_wanted (the campaign's
    redundancy, or what adaptive redundancy asks). "complete" (the default): the task with the
    most slots taken first (answers, then leases), so units reach their redundancy, and so a
    label, before new units open. "spread": the
    fewest-answered task first. Ties go to the lowest task id (layer and unit order). Gold tasks
    have no redundancy cap (every worker may be scored on them) and are always spread.
    """
    tasks = (
        Task.objects.filter(campaign=campaign, is_gold=gold)
        .exclude(Exists(Assignment.objects.filter(task=OuterRef("pk"), worker=worker)))
        .annotate(
            answers=_count_subquery(Q(status__in=[A.SUBMITTED, A.APPROVED])),
            load=_count_subquery(active_assignment_q(now=now)),
        )
    )
    if not gold:
        tasks = tasks.filter(load__lt=F("answers_wanted"))
        if campaign.fill_order == Campaign.FillOrder.COMPLETE:
            return tasks.order_by("-load", "-answers", "id")
    return tasks.order_by("answers", "load", "id")


def open_slots(*, campaign: Campaign) -> int:
    """Answers the campaign's non-gold tasks still want: each task's answers_wanted less the
    answers it has (never below zero per task)."""
    tasks = Task.objects.filter(campaign=campaign, is_gold=False).annotate(
        answers=_count_subquery(Q(status__in=[A.SUBMITTED, A.APPROVED]))
    )
    return sum(max(0, wanted - n) for wanted, n in tasks.values_list("answers_wanted", "answers"))


def task_load(*, task: Task, now: datetime) -> int:
    """Slots of `task` taken right now (fresh read: call it after locking the task)."""
    return Assignment.objects.filter(active_assignment_q(now=now), task=task).count()


def task_preview(*, worker: Worker | None, campaign: Campaign) -> Task | None:
    """The task the worker would most likely get next (no lease taken), for preview pages.

    Without a worker (an outside crowd's anonymous preview) any task with a free slot is shown.
    """
    now = timezone.now()
    if worker is None:
        tasks = Task.objects.filter(campaign=campaign).order_by("is_gold", "id")
        return tasks.first()
    return (
        candidate_tasks(worker=worker, campaign=campaign, now=now, gold=False).first()
        or candidate_tasks(worker=worker, campaign=campaign, now=now, gold=True).first()
    )


def worker_active_lease(*, worker: Worker, campaign: Campaign) -> Assignment | None:
    """The worker's unexpired lease in `campaign`, if any."""
    return (
        Assignment.objects.filter(
            worker=worker,
            task__campaign=campaign,
            status=A.LEASED,
            lease_expires_at__gt=timezone.now(),
        )
        .select_related("task")
        .first()
    )


@dataclass(frozen=True)
class Tile:
    """One tile as the task page shows it: its position and an opaque URL (never its kind)."""

    position: int
    url: str


def tile_export_name(*, layer: str, unit: int, kind: str, rank: int, tile_path: str) -> str:
    """A tile's file name in a labeled-unit zip export: tiles/<layer>/<unit>/<kind>-<rank>.<ext>."""
    ext = PurePosixPath(tile_path).suffix or ".jpg"
    return f"tiles/{layer}/{unit}/{kind}-{rank:03d}{ext}"


@dataclass(frozen=True)
class TileRef:
    """What one tile of a task is: the UnitImage row, the dataset image and the export file."""

    unit_image: int
    image: int
    image_path: str
    kind: str
    rank: int
    file: str


def tile_refs(unit_image_ids) -> dict[int, TileRef]:
    """UnitImage id -> TileRef, in one query (for exports and the answers API)."""
    from dissect.models import UnitImage

    rows = UnitImage.objects.filter(pk__in=set(unit_image_ids)).values_list(
        "pk", "image_id", "image__path", "kind", "rank", "unit__layer__name", "unit__index",
        "tile_path",
    )  # fmt: skip
    return {
        pk: TileRef(
            unit_image=pk,
            image=image,
            image_path=path,
            kind=kind,
            rank=rank,
            file=tile_export_name(layer=layer, unit=unit, kind=kind, rank=rank, tile_path=tile),
        )
        for pk, image, path, kind, rank, layer, unit, tile in rows
    }


def flagged_tiles_described(
    *, tile_order: list[int], flagged_tiles: list[int], refs: dict[int, TileRef]
) -> dict[str, list]:
    """An answer's "does not fit" tiles three ways, in the order the worker saw them: positions in
    the task's tile order (0-based), dataset image ids and the zip export's tile file names.
    (Answer.flagged_tiles itself holds UnitImage ids.)"""
    flagged = set(flagged_tiles or [])
    positions = [p for p, tile in enumerate(tile_order or []) if tile in flagged]
    # A flagged tile outside the order (never: submit checks) would still be listed by id.
    ids = [tile_order[p] for p in positions] + sorted(flagged - set(tile_order or []))
    return {
        "flagged_positions": positions,
        "flagged_images": [refs[i].image for i in ids if i in refs],
        "flagged_files": [refs[i].file for i in ids if i in refs],
    }


def tile_token(*, task_id: int, position: int) -> str:
    """A signed, opaque reference to one tile of a task (the URL says nothing about controls)."""
    return signing.dumps([task_id, position], salt=_TILE_SALT)


# A tile URL works for two days after its page was shown (longer than any lease and the tile's
# browser cache), so a URL copied out of a page does not grant the tile forever.
TILE_TOKEN_MAX_AGE = 2 * 24 * 3600


def tile_from_token(*, token: str) -> tuple[int, int]:
    """(task id, position) from a tile token; raises signing.BadSignature when forged or older
    than TILE_TOKEN_MAX_AGE (SignatureExpired)."""
    task_id, position = signing.loads(token, salt=_TILE_SALT, max_age=TILE_TOKEN_MAX_AGE)
    return int(task_id), int(position)


def task_tiles(*, task: Task) -> list[Tile]:
    """The task's tiles in their recorded (shuffled) order."""
    return [
        Tile(position=p, url=reverse("crowd:tile", args=[tile_token(task_id=task.pk, position=p)]))
        for p in range(len(task.tile_order))
    ]


def assignment_token(*, assignment_id: int) -> str:
    """Signed id that lets an outside-crowd worker (no local account) open and submit one assignment."""
    return signing.dumps(assignment_id, salt=_ASSIGNMENT_SALT)


def assignment_from_token(*, token: str) -> Assignment:
    """The assignment a token names; raises signing.BadSignature or Assignment.DoesNotExist."""
    pk = signing.loads(token, salt=_ASSIGNMENT_SALT)
    return Assignment.objects.select_related("task__campaign", "worker").get(pk=pk)


def worker_assignments(*, worker: Worker) -> QuerySet:
    """The worker's own assignments, newest first (with their answers)."""
    return (
        Assignment.objects.filter(worker=worker)
        .select_related("task__campaign", "task__unit__layer", "answer")
        .order_by("-accepted_at")
    )


def worker_stats(*, worker: Worker) -> dict[str, int]:
    """Counts of the worker's assignments by status, plus the total answered."""
    rows = Assignment.objects.filter(worker=worker).values("status").annotate(n=Count("pk"))
    stats = {status: 0 for status in A.values}
    stats.update({row["status"]: row["n"] for row in rows})
    stats["answered"] = stats[A.SUBMITTED] + stats[A.APPROVED] + stats[A.REJECTED]
    return stats


def campaigns_open(*, worker: Worker | None = None) -> QuerySet:
    """Live campaigns (the ones a worker may take tasks from)."""
    return Campaign.objects.filter(status=Campaign.Status.LIVE).select_related("run__network")


@dataclass(frozen=True)
class LayerProgress:
    layer: str
    units: int
    needed: int
    answered: int
    approved: int
    leased: int
    complete_units: int

    @property
    def percent(self) -> int:
        return round(100 * min(self.answered, self.needed) / self.needed) if self.needed else 0


def campaign_progress(*, campaign: Campaign) -> list[LayerProgress]:
    """Per layer: units, answers needed (each unit's answers_wanted: redundancy, or what adaptive
    redundancy asks now), answered, approved, leased, complete units (as many answers as wanted)."""
    now = timezone.now()
    tasks = (
        Task.objects.filter(campaign=campaign, is_gold=False)
        .values("unit__layer__name")
        .annotate(
            units=Count("pk", distinct=True),
            answered=Count(
                "assignments",
                filter=Q(assignments__status__in=[A.SUBMITTED, A.APPROVED]),
            ),
            approved=Count("assignments", filter=Q(assignments__status=A.APPROVED)),
            leased=Count(
                "assignments",
                filter=Q(assignments__status=A.LEASED, assignments__lease_expires_at__gt=now),
            ),
        )
    )
    complete = dict(
        Task.objects.filter(campaign=campaign, is_gold=False)
        .annotate(
            n=_count_subquery(Q(status__in=[A.SUBMITTED, A.APPROVED])),
        )
        .filter(n__gte=F("answers_wanted"))
        .values("unit__layer__name")
        .annotate(c=Count("pk"))
        .values_list("unit__layer__name", "c")
    )
    # Summed apart from the counts above: joined with the assignments it would count each task
    # once per assignment.
    needed = dict(
        Task.objects.filter(campaign=campaign, is_gold=False)
        .values("unit__layer__name")
        .annotate(wanted=Sum("answers_wanted"))
        .values_list("unit__layer__name", "wanted")
    )
    order = {name: i for i, name in enumerate(campaign.layers)}
    rows = [
        LayerProgress(
            layer=row["unit__layer__name"],
            units=row["units"],
            needed=needed.get(row["unit__layer__name"], 0),
            answered=row["answered"],
            approved=row["approved"],
            leased=row["leased"],
            complete_units=complete.get(row["unit__layer__name"], 0),
        )
        for row in tasks
    ]
    return sorted(rows, key=lambda r: order.get(r.layer, len(order)))


def campaign_simulated_answers(*, campaign: Campaign) -> int:
    """Answers of `campaign` given by simulated workers (the demo's simulated crowd)."""
    return Assignment.objects.filter(
        task__campaign=campaign,
        worker__source=Worker.Source.SIMULATED,
        status__in=[A.SUBMITTED, A.APPROVED, A.REJECTED],
    ).count()


def run_simulated_answers(*, run) -> int:
    """Counted answers about units of ``run`` given by simulated workers (the demo's simulated
    crowd): report pages over the run say so, since its crowd labels are not people's."""
    return Assignment.objects.filter(
        task__campaign__run=run,
        worker__source=Worker.Source.SIMULATED,
        status__in=[A.SUBMITTED, A.APPROVED, A.REJECTED],
    ).count()


def campaign_tiles_shown(*, campaign: Campaign) -> tuple[int, int] | None:
    """(fewest, most) tiles a task of `campaign` really shows, controls included; None before it
    has tasks. `tiles_per_task` is only the most asked for: a unit with fewer top tiles than that
    gets a shorter task, and the page must say what workers see, not what was asked."""
    sizes = {len(order) for order in campaign.tasks.values_list("tile_order", flat=True)}
    return (min(sizes), max(sizes)) if sizes else None


def pending_review(*, campaign: Campaign) -> QuerySet:
    """Submitted answers of `campaign` waiting for a decision, oldest first."""
    return (
        Assignment.objects.filter(task__campaign=campaign, status=A.SUBMITTED)
        .select_related("worker", "task__unit__layer", "answer")
        .order_by("submitted_at", "pk")
    )


# --- link-out studies (Prolific) -------------------------------------------------------------------


def session_token(*, session_pk: int) -> str:
    """Signed reference to one study session: the state its next-task and completion pages
    carry (a SESSION_ID alone never completes anything)."""
    return signing.dumps(session_pk, salt=_SESSION_SALT)


def session_from_token(*, token: str) -> StudySession:
    """The session a token names; raises signing.BadSignature or StudySession.DoesNotExist."""
    pk = signing.loads(token, salt=_SESSION_SALT)
    return StudySession.objects.select_related("campaign", "worker").get(pk=pk)


# Prolific's rejection categories this export uses: a failed attention check, or the reason the
# researcher wrote (OTHER).
REJECT_FAILED_CHECK, REJECT_OTHER = "FAILED_CHECK", "OTHER"
DECISION_COLUMNS = (
    "submission_id", "participant_id", "study_id", "action", "rejection_category", "message",
    "answers", "approved", "rejected", "awaiting_review", "completed_at",
)  # fmt: skip


@dataclass(frozen=True)
class SessionDecision:
    """One study session's verdict, keyed by its SESSION_ID (Prolific's submission id): APPROVE
    when every answer is approved, REJECT when one was rejected (with the researcher's reasons),
    "" while answers await review."""

    submission_id: str
    participant_id: str
    study_id: str
    action: str
    rejection_category: str
    message: str
    answers: int
    approved: int
    rejected: int
    awaiting_review: int
    completed_at: str

    def row(self) -> list:
        return [getattr(self, name) for name in DECISION_COLUMNS]


# Prolific refuses a rejection whose message is shorter than this (its submissions API).
PROLIFIC_MESSAGE_MIN_CHARS = 100


def rejection_message(reasons: str, *, rejected: int, answers: int) -> str:
    """The participant's rejection message: the researcher's reasons first, then how many answers
    were rejected and how to dispute it (which also keeps it above Prolific's minimum length)."""
    head = (reasons or "Your answers did not follow the study's instructions").rstrip(". ")
    return (
        f"{head}. {rejected} of your {answers} answer(s) in this study were rejected after "
        "review. If you think this is a mistake, message the researcher through Prolific and "
        "quote your submission ID."
    )


def study_decisions(*, campaign: Campaign, study_id: str | None = None) -> list[SessionDecision]:
    """The campaign's study sessions (of one STUDY_ID, or all) with their approve/reject action,
    oldest first; sessions without a stored answer are left out (nothing to decide)."""
    sessions = StudySession.objects.filter(campaign=campaign).select_related("worker")
    if study_id is not None:
        sessions = sessions.filter(study_id=study_id)
    answers = defaultdict(list)
    for row in (
        Assignment.objects.filter(
            session__in=sessions, status__in=[A.SUBMITTED, A.APPROVED, A.REJECTED]
        )
        .order_by("submitted_at", "pk")
        .values_list("session_id", "status", "reject_reason", "answer__control_failed")
    ):
        answers[row[0]].append(row[1:])
    decisions = []
    for session in sessions.order_by("created_at", "pk"):
        rows = answers.get(session.pk, [])
        if not rows:
            continue
        counts = Counter(status for status, _, _ in rows)
        rejected = [(reason, failed) for status, reason, failed in rows if status == A.REJECTED]
        if rejected:
            action = "REJECT"
            category = REJECT_FAILED_CHECK if any(f for _, f in rejected) else REJECT_OTHER
            reasons = " / ".join(dict.fromkeys(r for r, _ in rejected if r))
            message = rejection_message(reasons, rejected=len(rejected), answers=len(rows))
        elif counts[A.SUBMITTED]:
            action, category, message = "", "", ""
        else:
            action, category, message = "APPROVE", "", ""
        decisions.append(
            SessionDecision(
                submission_id=session.session_id,
                participant_id=session.worker.external_id,
                study_id=session.study_id,
                action=action,
                rejection_category=category,
                message=message,
                answers=len(rows),
                approved=counts[A.APPROVED],
                rejected=counts[A.REJECTED],
                awaiting_review=counts[A.SUBMITTED],
                completed_at=session.completed_at.isoformat() if session.completed_at else "",
            )
        )
    return decisions
