"""Writes of the crowd workflow: campaigns, leases, answers, review, workers.

Every state change writes an AuditEvent in the same transaction (core.audit.audit_record).
Concurrency: `assignment_next` locks the worker row (one request per worker at a time) and takes the
task row with SKIP LOCKED, then recounts the task's slots under that lock, so concurrent workers never
over-fill a task and never wait on each other. On SQLite (embedded default) writes are serialized anyway.
"""

import random
import secrets
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate.crowd import selectors
from annotate.crowd.concepts import concept_for_text, concept_key
from annotate.crowd.models import Answer, Assignment, Campaign, StudySession, Task, Worker
from annotate.crowd.quality import gold_accuracy
from annotate.crowd.redundancy import task_answer_need
from annotate.crowd.signals import answers_changed
from annotate.crowd.spec import CAMPAIGN_SPEC, MIN_UNMARKED_UNIT_TILES
from core.audit import audit_record
from core.concepts import CATEGORY_NAMES, CATEGORY_SLUGS
from core.concepts.store import CONCEPT_MAX_CHARS
from core.concepts.text import is_word_char
from core.errors import AppError, Conflict, NotFound
from core.models import AuditAction
from dissect.models import DissectionRun, Layer, Unit, UnitImage

A = Assignment.Status
S = Campaign.Status


# Between words: spaces, hyphens and apostrophes (typed or typographic).
_CONCEPT_JOINERS = frozenset(" -'\u2019")
# A worker is judged on gold only after this many gold answers (one slip is not a verdict).
GOLD_MIN_ANSWERS = 3

_TRANSITIONS: dict[str, set[str]] = {
    S.DRAFT: {S.LIVE, S.FINISHED},
    S.LIVE: {S.PAUSED, S.FINISHED},
    S.PAUSED: {S.LIVE, S.FINISHED},
    S.FINISHED: set(),
}


class CrowdError(AppError):
    """A request the user can fix; the message says what to do. `field` names the input, if any."""


class NoTask(CrowdError, NotFound):
    """No task for this worker right now; the message says why (404)."""


class TooManyRequests(CrowdError):
    """Too many requests or leases in a short time from one client or worker id (429);
    `retry_after` is the wait in seconds."""

    status = 429

    def __init__(self, message: str, *, retry_after: float, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after = max(1, int(retry_after + 0.999))


class LeaseExpired(CrowdError, Conflict):
    """The lease ran out before the answer arrived; the task went back to the pool (409)."""


class AnswerInvalid(CrowdError):
    """The answer has field errors: `errors` maps field name -> messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(
            " ".join(m for ms in errors.values() for m in ms), field=next(iter(errors))
        )
        self.errors = errors

    def messages_by_field(self) -> dict[str, list[str]]:
        return self.errors


@dataclass
class SubmitOutcome:
    """What happened to a submission: saved (with its Answer) or sent back once for revision."""

    assignment: Assignment
    answer: Answer | None = None
    revise: bool = False
    messages: list[str] = field(default_factory=list)


# --- workers --------------------------------------------------------------------------------------


def _new_pseudonym() -> str:
    return "w-" + secrets.token_hex(5)


def worker_for_user(*, user) -> Worker:
    """The Worker of a local account (created on first use)."""
    worker = Worker.objects.filter(user=user).select_related("user").first()
    if worker is not None:
        return worker
    worker, _ = Worker.objects.get_or_create(
        user=user, defaults={"source": Worker.Source.LOCAL, "pseudonym": _new_pseudonym()}
    )
    return worker


def worker_for_external(*, source: str, external_id: str) -> Worker:
    """The Worker of an outside-crowd id (Mechanical Turk workerId, Prolific PID), created on first use."""
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 200:
        raise CrowdError(
            "workerId: the panel did not send a worker id (1-200 characters).", field="workerId"
        )
    if source not in (Worker.Source.MTURK, Worker.Source.LINK):
        raise CrowdError(f"source: {source!r} is not an outside crowd (mturk or link).")
    worker, _ = Worker.objects.get_or_create(
        source=source, external_id=external_id, defaults={"pseudonym": _new_pseudonym()}
    )
    return worker


@transaction.atomic
def worker_block(*, worker: Worker, actor, reason: str) -> Worker:
    """Stop a worker from getting tasks; their open leases end so the tasks return to the pool."""
    reason = (reason or "").strip()
    if not reason:
        raise CrowdError("reason: say why the worker is blocked (it is recorded).", field="reason")
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    worker.blocked, worker.blocked_reason = True, reason[:300]
    worker.save(update_fields=["blocked", "blocked_reason"])
    ended = list(
        Assignment.objects.filter(worker=worker, status=A.LEASED).values_list("pk", flat=True)
    )
    Assignment.objects.filter(pk__in=ended).update(status=A.EXPIRED)
    audit_record(
        actor=actor,
        action=AuditAction.WORKER_BLOCK,
        target=worker,
        data={"reason": reason, "ended": ended},
    )
    return worker


@transaction.atomic
def worker_unblock(*, worker: Worker, actor) -> Worker:
    """Let a blocked worker take tasks again."""
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    worker.blocked, worker.blocked_reason = False, ""
    worker.save(update_fields=["blocked", "blocked_reason"])
    audit_record(actor=actor, action=AuditAction.WORKER_UNBLOCK, target=worker)
    return worker


# --- campaigns ------------------------------------------------------------------------------------


def _tiles_by_unit(units: list[Unit]) -> dict[int, dict[str, list[int]]]:
    rows = (
        UnitImage.objects.filter(unit__in=units)
        .exclude(tile_path="")
        .order_by("unit_id", "kind", "rank")
        .values_list("id", "unit_id", "kind")
    )
    tiles: dict[int, dict[str, list[int]]] = defaultdict(lambda: {"top": [], "control": []})
    for image_id, unit_id, kind in rows:
        tiles[unit_id][kind].append(image_id)
    return tiles


def tile_order_for(
    *, top_ids: list[int], control_ids: list[int], seed: int, unit_id: int
) -> list[int]:
    """Top tiles and controls shuffled together, reproducibly from (campaign seed, unit id)."""
    order = list(top_ids) + list(control_ids)
    random.Random(f"{seed}:{unit_id}").shuffle(order)
    return order


@transaction.atomic(durable=True)  # an entry point: never inside another transaction
def campaign_create(
    *,
    run: DissectionRun,
    layers: list[str],
    gold: Mapping[int, tuple[str, str]] | None = None,
    created_by=None,
    **parameters,
) -> Campaign:
    """A draft campaign over `layers` of a finished run, with one task per unit.

    `parameters` are CAMPAIGN_SPEC's (annotate/crowd/spec.py: tiles_per_task, controls_per_task,
    redundancy, lease_minutes, ...); any left out take their defaults, a bad one raises
    CrowdError naming it with the message every door gives.
    Each task shows up to `tiles_per_task - controls_per_task` of the unit's top tiles plus
    `controls_per_task` tiles from its lowest-scoring images, shuffled (seeded, recorded in
    Task.tile_order). `gold` maps unit id -> (concept, category) for gold tasks with a known answer.
    Units with fewer than 10 rendered top tiles are left out (named in the audit event).
    """
    values = CAMPAIGN_SPEC.clean(parameters, error=CrowdError)
    tiles_per_task, controls_per_task = values["tiles_per_task"], values["controls_per_task"]
    if run.status != DissectionRun.Status.DONE:
        raise CrowdError(
            f"run: run {run.pk} is {run.status}; campaigns start from a finished (done) run.",
            field="run",
        )
    known = list(Layer.objects.filter(run=run).values_list("name", flat=True))
    layers = [str(x) for x in layers or []]
    if not layers:
        raise CrowdError(f"layers: choose at least one of {', '.join(known)}.", field="layers")
    unknown = [x for x in layers if x not in known]
    if unknown:
        raise CrowdError(
            f"layers: {', '.join(unknown)} not in run {run.pk}; choose from {', '.join(known)}.",
            field="layers",
        )
    if values["max_answers"] is not None and values["max_answers"] < values["redundancy"]:
        raise CrowdError(
            f"max_answers: give at least redundancy ({values['redundancy']}), or leave it empty "
            "for a fixed number of answers per unit.",
            field="max_answers",
        )
    values["completion_url"] = _check_completion_url(values["completion_url"])
    if controls_per_task > tiles_per_task - MIN_UNMARKED_UNIT_TILES:
        raise CrowdError(
            "controls_per_task: use at least 1 control and leave at least 10 tiles for the unit.",
            field="controls_per_task",
        )
    gold = dict(gold or {})
    for unit_id, (concept, category) in gold.items():
        if category not in CATEGORY_SLUGS or not concept.strip():
            raise CrowdError(
                f"gold: unit {unit_id} needs a concept and one of {', '.join(CATEGORY_SLUGS)}.",
                field="gold",
            )
    if values["gold_rate"] > 0 and not gold:
        raise CrowdError(
            "gold_rate: a gold rate needs gold units with known answers.", field="gold"
        )

    values["name"] = values["name"] or f"{run.network.name} {', '.join(layers)}"
    allow_fewer_controls = values.pop("allow_fewer_controls")
    campaign = Campaign.objects.create(
        **values,
        run=run,
        layers=layers,
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
    )
    units = list(
        Unit.objects.filter(layer__run=run, layer__name__in=layers).order_by(
            "layer__order", "index"
        )
    )
    tiles = _tiles_by_unit(units)
    unit_tiles = tiles_per_task - controls_per_task
    short = [u for u in units if len(tiles[u.pk]["control"]) < controls_per_task]
    if short and not allow_fewer_controls:
        fewest = min(len(tiles[u.pk]["control"]) for u in short)
        raise CrowdError(
            f"controls_per_task: {len(short)} of {len(units)} units have fewer than "
            f"{controls_per_task} rendered control tiles (as few as {fewest}: the run kept "
            f"{run.parameters.get('controls', '?')} per unit), so their tasks could not catch "
            f"careless answers. "
            + (f"Lower controls_per_task to {fewest}, " if fewest >= 1 else "")
            + "dissect again with more controls (an image set large enough for top-K plus "
            "controls: docs/pipeline.md), or set allow_fewer_controls.",
            field="controls_per_task",
        )
    tasks, skipped = [], []
    for unit in units:
        tops = tiles[unit.pk]["top"][:unit_tiles]
        controls = tiles[unit.pk]["control"][:controls_per_task]
        if len(tops) < MIN_UNMARKED_UNIT_TILES:
            skipped.append(unit.pk)
            continue
        concept, category = gold.get(unit.pk, ("", ""))
        tasks.append(
            Task(
                campaign=campaign,
                unit=unit,
                tile_order=tile_order_for(
                    top_ids=tops, control_ids=controls, seed=campaign.seed, unit_id=unit.pk
                ),
                is_gold=unit.pk in gold,
                answers_wanted=campaign.redundancy,
                gold_concept=concept.strip(),
                gold_category=category,
            )
        )
    if not tasks:
        raise CrowdError(
            f"layers: no unit of {', '.join(layers)} has 10 rendered tiles; render the run's tiles first.",
            field="layers",
        )
    Task.objects.bulk_create(tasks, batch_size=500)
    audit_record(
        actor=created_by,
        action=AuditAction.CAMPAIGN_CREATE,
        target=campaign,
        data={
            "tasks": len(tasks),
            "skipped_units": skipped,
            "seed": campaign.seed,
            "gold_units": len(gold),
        },
    )
    return campaign


def _check_completion_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise CrowdError(
            "completion_url: give the full address the panel gave you (https://…), e.g. "
            "https://app.prolific.com/submissions/complete?cc=CODE, or leave it empty.",
            field="completion_url",
        )
    return url


def allowed_transitions(*, campaign: Campaign) -> set[str]:
    """The statuses `campaign` may move to next."""
    return set(_TRANSITIONS.get(campaign.status, set()))


@transaction.atomic(durable=True)  # an entry point: never inside another transaction
def campaign_set_status(*, campaign: Campaign, status: str, actor) -> Campaign:
    """Move a campaign along draft -> live <-> paused -> finished."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if status not in _TRANSITIONS.get(campaign.status, set()):
        allowed = (
            ", ".join(sorted(_TRANSITIONS.get(campaign.status, set()))) or "nothing (finished)"
        )
        raise CrowdError(
            f"status: a {campaign.status} campaign can move to {allowed}, not {status}.",
            field="status",
        )
    previous = campaign.status
    campaign.status = status
    campaign.save(update_fields=["status"])
    audit_record(
        actor=actor,
        action=AuditAction.CAMPAIGN_STATUS,
        target=campaign,
        data={"from": previous, "to": status},
    )
    return campaign


def demo_campaign_create(*, run: DissectionRun, layers: list[str]) -> Campaign:
    """The README demo's live campaign: defaults of the paper, sized to the tiles the demo run has.

    `layers` may name aliases the run does not store as Layer rows; then every layer of the run is used.
    """
    known = list(Layer.objects.filter(run=run).order_by("order").values_list("name", flat=True))
    layers = [x for x in layers if x in known] or known
    top_counts = (
        UnitImage.objects.filter(unit__layer__run=run, unit__layer__name__in=layers, kind="top")
        .exclude(tile_path="")
        .values_list("unit_id", flat=True)
    )
    per_unit: dict[int, int] = defaultdict(int)
    for unit_id in top_counts:
        per_unit[unit_id] += 1
    most = max(per_unit.values(), default=0)
    campaign = campaign_create(
        run=run,
        layers=layers,
        name=f"Demo: {run.network.name}",
        tiles_per_task=min(60, most + 3) if most else 60,
        instructions="Name what most images share in one or two words, mark the ones that do not fit.",
    )
    return campaign_set_status(campaign=campaign, status=S.LIVE, actor=None)


# --- leases ---------------------------------------------------------------------------------------


def _refusal(*, worker: Worker, campaign: Campaign) -> str | None:
    """Why `worker` may not take a new task in `campaign` now, or None."""
    if campaign.status != S.LIVE:
        return f"This campaign is {campaign.status}; no tasks are handed out."
    if worker.blocked:
        return "Your account is blocked from receiving tasks." + (
            f" Reason: {worker.blocked_reason}" if worker.blocked_reason else ""
        )
    cap = campaign.max_tasks_per_worker
    if cap is not None:
        taken = Assignment.objects.filter(worker=worker, task__campaign=campaign).exclude(
            status__in=[A.RETURNED, A.EXPIRED]
        )
        if taken.count() >= cap:
            return f"You have done this campaign's limit of {cap} tasks. Thank you!"
    if (
        campaign.gold_rate > 0
    ):  # gold tasks are only handed out (and so only scored) with a gold rate
        accuracy, count = gold_accuracy(worker=worker, campaign=campaign)
        if (
            count >= GOLD_MIN_ANSWERS
            and accuracy is not None
            and accuracy < campaign.min_gold_accuracy
        ):
            return (
                "Your answers on check tasks were too often wrong, so no more tasks are handed out."
            )
    return None


def _gold_due(*, worker: Worker, campaign: Campaign) -> bool:
    if campaign.gold_rate <= 0:
        return False
    mine = Assignment.objects.filter(worker=worker, task__campaign=campaign).exclude(
        status__in=[A.RETURNED, A.EXPIRED]
    )
    gold = mine.filter(task__is_gold=True).count()
    return gold < campaign.gold_rate * (mine.count() + 1)


def _lease(*, worker: Worker, task: Task, campaign: Campaign, now: datetime) -> Assignment:
    assignment = Assignment.objects.create(
        task=task,
        worker=worker,
        status=A.LEASED,
        accepted_at=now,
        lease_expires_at=now + timedelta(minutes=campaign.lease_minutes),
    )
    audit_record(
        actor=worker.user,
        action=AuditAction.ASSIGNMENT_LEASE,
        target=assignment,
        data={"task": task.pk, "worker": worker.pseudonym},
    )
    return assignment


def _lock_worker(worker: Worker) -> Worker:
    # One request per worker at a time: no double leases from two tabs or retries.
    return Worker.objects.select_for_update(of=("self",)).select_related("user").get(pk=worker.pk)


@transaction.atomic
def assignment_next(*, worker: Worker, campaign: Campaign) -> Assignment:
    """Lease the worker's next task in `campaign` (or return the lease they already hold).

    Rules: never the same unit twice for a worker; never more answered-or-leased assignments per
    task than its `answers_wanted` (redundancy, or what adaptive redundancy asks; at most the
    campaign's max_answers: annotate/crowd/redundancy.py); tasks in the campaign's fill order (complete: units nearest their
    redundancy first; spread: fewest answers first); gold tasks mixed in at the gold rate.
    Raises NoTask with the reason when there is nothing for this worker.
    """
    worker = _lock_worker(worker)
    current = selectors.worker_active_lease(worker=worker, campaign=campaign)
    if current is not None:
        return current
    reason = _refusal(worker=worker, campaign=campaign)
    if reason:
        raise NoTask(reason)
    now = timezone.now()
    if _gold_due(worker=worker, campaign=campaign):
        task = selectors.candidate_tasks(
            worker=worker, campaign=campaign, now=now, gold=True
        ).first()
        if task is not None:
            return _lease(worker=worker, task=task, campaign=campaign, now=now)
    full: list[int] = []
    for _attempt in range(50):
        task = (
            selectors.candidate_tasks(worker=worker, campaign=campaign, now=now, gold=False)
            .exclude(pk__in=full)
            .select_for_update(skip_locked=True)
            .first()
        )
        if task is None:
            # SKIP LOCKED also skips tasks another worker is leasing this very millisecond; only
            # give up when no candidate is left at all.
            if (
                not selectors.candidate_tasks(worker=worker, campaign=campaign, now=now, gold=False)
                .exclude(pk__in=full)
                .exists()
            ):
                break
            time.sleep(0.005 * (_attempt + 1))
            continue
        # The candidate query's counts may predate a lease or answer committed since; recount
        # under the lock (the locked row's answers_wanted is fresh too).
        if selectors.task_load(task=task, now=now) >= task.answers_wanted:
            full.append(task.pk)
            continue
        return _lease(worker=worker, task=task, campaign=campaign, now=now)
    raise NoTask("There are no tasks left for you in this campaign right now. Thank you!")


@transaction.atomic
def assignment_accept(*, worker: Worker, task: Task) -> Assignment:
    """Lease the task the worker previewed (or return the lease they already hold in its campaign)."""
    worker = _lock_worker(worker)
    campaign = task.campaign
    current = selectors.worker_active_lease(worker=worker, campaign=campaign)
    if current is not None:
        return current
    reason = _refusal(worker=worker, campaign=campaign)
    if reason:
        raise NoTask(reason)
    task = Task.objects.select_for_update().get(pk=task.pk)
    if Assignment.objects.filter(task=task, worker=worker).exists():
        raise NoTask("You already worked on this unit; take the next task instead.")
    now = timezone.now()
    if not task.is_gold and selectors.task_load(task=task, now=now) >= task.answers_wanted:
        raise NoTask("This task has just been taken by enough workers; take the next task instead.")
    return _lease(worker=worker, task=task, campaign=campaign, now=now)


def _check_submit_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise CrowdError(
            "turkSubmitTo: the panel sent an invalid return address.", field="turkSubmitTo"
        )
    return url.rstrip("/")


@transaction.atomic
def assignment_for_external(
    *, worker: Worker, campaign: Campaign, external_assignment_id: str = "", submit_url: str = ""
) -> Assignment:
    """The local assignment behind an outside crowd's assignment: the one already linked, or a new lease.

    `submit_url` is Mechanical Turk's turkSubmitTo (the page posts back to it after saving locally).
    """
    external_assignment_id = (external_assignment_id or "").strip()[:200]
    submit_url = _check_submit_url(submit_url)
    if external_assignment_id:
        linked = Assignment.objects.filter(
            worker=worker, task__campaign=campaign, external_assignment_id=external_assignment_id
        ).first()
        if linked is not None:
            return linked
    with transaction.atomic():
        # Outside-crowd entries of one campaign take turns, so the cap below is never overshot by
        # a burst; local annotators never wait on this lock.
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if selectors.worker_active_lease(worker=worker, campaign=campaign) is None:
            _external_lease_check(worker=worker, campaign=campaign)
        a = assignment_next(worker=worker, campaign=campaign)
    if external_assignment_id and a.external_assignment_id != external_assignment_id:
        a.external_assignment_id = external_assignment_id
        a.external_submit_url = submit_url
        a.save(update_fields=["external_assignment_id", "external_submit_url"])
        audit_record(
            actor=None,
            action=AuditAction.ASSIGNMENT_LINK_EXTERNAL,
            target=a,
            data={"source": worker.source, "external_assignment_id": external_assignment_id},
        )
    return a


# --- link-out studies (Prolific) -------------------------------------------------------------------


def study_session_enter(
    *, campaign: Campaign, worker: Worker, session_id: str, study_id: str = ""
) -> StudySession:
    """The study session a link-out entry names (created on its first visit). A SESSION_ID names
    one participant's visit: the same id from another participant, or under another STUDY_ID,
    is refused (a copied or forged link), so no answer is ever credited to the wrong session."""
    session_id, study_id = (session_id or "").strip(), (study_id or "").strip()
    if not session_id or len(session_id) > 200:
        raise CrowdError(
            "SESSION_ID: the panel did not send a session id (1-200 characters); open the "
            "study again from your panel.",
            field="SESSION_ID",
        )
    if len(study_id) > 200:
        raise CrowdError("STUDY_ID: at most 200 characters.", field="STUDY_ID")
    try:
        with transaction.atomic():
            session, created = StudySession.objects.get_or_create(
                campaign=campaign,
                session_id=session_id,
                defaults={"worker": worker, "study_id": study_id},
            )
    except IntegrityError:  # the same session entered twice at once: the other request made it
        session, created = StudySession.objects.get(campaign=campaign, session_id=session_id), False
    if session.worker_id != worker.pk:
        raise CrowdError(
            "SESSION_ID: this session belongs to another participant. Open the study from your "
            "own panel account.",
            field="SESSION_ID",
        )
    if study_id and session.study_id and study_id != session.study_id:
        raise CrowdError(
            "STUDY_ID: this session was started in another study; open the study again from "
            "your panel.",
            field="STUDY_ID",
        )
    if created:
        audit_record(
            actor=None,
            action=AuditAction.ASSIGNMENT_LINK_EXTERNAL,
            target=session,
            data={"session_id": session_id, "study_id": study_id, "worker": worker.pseudonym},
        )
    return session


@dataclass(frozen=True)
class SessionState:
    """Where a study session stands: answers stored, tasks it asks, its open lease."""

    stored: int
    wanted: int
    open_lease: Assignment | None

    @property
    def finished(self) -> bool:
        return self.open_lease is None and self.stored >= self.wanted


def session_state(*, session: StudySession) -> SessionState:
    """Answers the session has stored, how many it asks, and its unexpired lease (if any)."""
    stored = session.assignments.filter(status__in=[A.SUBMITTED, A.APPROVED, A.REJECTED]).count()
    lease = (
        session.assignments.filter(status=A.LEASED, lease_expires_at__gt=timezone.now())
        .select_related("task")
        .first()
    )
    return SessionState(stored, session.campaign.tasks_per_session, lease)


def session_assignment_next(*, session: StudySession) -> Assignment | None:
    """The session's next task (its open lease, or a new one linked to it); None once the session
    has stored its tasks_per_session answers, or has at least one and nothing is left for it.
    Raises NoTask (with the reason) when it has no answer yet and gets no task."""
    state = session_state(session=session)
    if state.open_lease is not None:
        return state.open_lease
    if state.stored >= state.wanted or session.completed_at is not None:
        return None
    try:
        a = assignment_for_external(worker=session.worker, campaign=session.campaign)
    except NoTask:
        if state.stored:
            return None
        raise
    if a.session_id is None:
        a.session = session
        a.external_assignment_id = a.external_assignment_id or session.session_id
        a.save(update_fields=["session", "external_assignment_id"])
    return a


@dataclass(frozen=True)
class Completion:
    """How a finished session is credited: a redirect to the panel, or a code to copy."""

    url: str
    code: str


def session_complete(*, session: StudySession) -> Completion:
    """Complete a session whose answers are stored: its completion (the campaign's completion URL,
    else its code: the study's completion code, or the last answer's own code). Refused while an
    answer is missing: the code is given only for stored answers."""
    with transaction.atomic():
        session = (
            StudySession.objects.select_for_update(of=("self",))
            .select_related("campaign", "worker")
            .get(pk=session.pk)
        )
        state = session_state(session=session)
        short = state.stored < state.wanted and (
            selectors.candidate_tasks(
                worker=session.worker, campaign=session.campaign, now=timezone.now(), gold=False
            ).exists()
        )
        if state.open_lease is not None or state.stored == 0 or short:
            raise CrowdError(
                f"completion: your answers are not stored yet ({state.stored} of {state.wanted} "
                "tasks answered). Finish the task on the task page; the completion code appears "
                "after your last answer is saved.",
                field="completion",
            )
        if session.completed_at is None:
            session.completed_at = timezone.now()
            session.save(update_fields=["completed_at"])
            audit_record(
                actor=None,
                action=AuditAction.ASSIGNMENT_LINK_EXTERNAL,
                target=session,
                data={"completed": True, "answers": state.stored},
            )
    campaign = session.campaign
    last = session.assignments.exclude(completion_code="").order_by("-submitted_at").first()
    code = campaign.completion_code or (last.completion_code if last else "")
    return Completion(url=campaign.completion_url, code=code)


def external_lease_cap(*, campaign: Campaign) -> int:
    """How many leases outside-crowd doors (Mechanical Turk, link-out; no login) may hold at once
    in `campaign`: a share of its open slots (settings CROWDDISSECT['EXTERNAL_LEASE_SHARE'],
    default 0.5), at most CROWDDISSECT['EXTERNAL_LEASES_MAX'] when set, and at least 1 while a
    slot is open. Open slots: each non-gold task's answers_wanted less its answers already in."""
    from django.conf import settings

    options = getattr(settings, "CROWDDISSECT", {})
    share = float(options.get("EXTERNAL_LEASE_SHARE", 0.5))
    hard_max = options.get("EXTERNAL_LEASES_MAX")
    open_slots = selectors.open_slots(campaign=campaign)
    if open_slots == 0:
        return 0
    cap = max(1, int(share * open_slots))
    return min(cap, int(hard_max)) if hard_max is not None else cap


def external_leases_active(*, campaign: Campaign, now: datetime | None = None) -> int:
    """Leases held right now in `campaign` by outside-crowd workers."""
    return Assignment.objects.filter(
        task__campaign=campaign,
        status=A.LEASED,
        lease_expires_at__gt=now or timezone.now(),
        worker__source__in=[Worker.Source.MTURK, Worker.Source.LINK],
    ).count()


EXTERNAL_FULL_MESSAGE = (
    "All tasks this campaign offers through outside panels are taken right now; leases run for "
    "{minutes} minutes, so try again later. Thank you!"
)


def external_door_full(*, campaign: Campaign, source: str, external_id: str) -> str | None:
    """The refusal for a worker id this site has never seen when the campaign's share for
    outside doors is taken (checked before a Worker row is made, so refused ids leave nothing
    behind), or None."""
    if campaign.status != S.LIVE:
        return None
    known = Worker.objects.filter(source=source, external_id=(external_id or "").strip()).exists()
    if known or external_leases_active(campaign=campaign) < external_lease_cap(campaign=campaign):
        return None
    return EXTERNAL_FULL_MESSAGE.format(minutes=campaign.lease_minutes)


def _external_lease_check(*, worker: Worker, campaign: Campaign) -> None:
    """Refuse a new lease from an outside-crowd door when the campaign's share for those doors is
    taken, or when this worker id took too many new leases lately (NoTask / TooManyRequests)."""
    from annotate.crowd.throttling import external_lease_wait_seconds

    if campaign.status != S.LIVE:
        return  # assignment_next refuses it with the campaign's status
    now = timezone.now()
    cap = external_lease_cap(campaign=campaign)
    if external_leases_active(campaign=campaign, now=now) >= cap:
        raise NoTask(EXTERNAL_FULL_MESSAGE.format(minutes=campaign.lease_minutes))
    wait = external_lease_wait_seconds(worker=worker)
    if wait is not None:
        raise TooManyRequests(
            f"workerId: this worker id took many new tasks in a short time; try again in "
            f"{max(1, int(wait + 0.999))} s.",
            retry_after=wait,
            field="workerId",
        )


def _own_open_assignment(*, assignment: Assignment, worker: Worker) -> Assignment:
    # of=self: lock only the assignment, never its task or campaign rows (others lease from those).
    a = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("task__campaign")
        .get(pk=assignment.pk)
    )
    if a.worker_id != worker.pk:
        raise CrowdError("assignment: this task is not yours.", field="assignment")
    if a.status != A.LEASED:
        raise CrowdError(f"assignment: this task is already {a.status}.", field="assignment")
    return a


@transaction.atomic
def assignment_return(
    *,
    assignment: Assignment,
    worker: Worker,
    action: AuditAction = AuditAction.ASSIGNMENT_RETURN,
) -> Assignment:
    """Give a leased task back to the pool (the worker will not get that unit again)."""
    a = _own_open_assignment(assignment=assignment, worker=worker)
    a.status = A.RETURNED
    a.save(update_fields=["status"])
    audit_record(actor=worker.user, action=action, target=a)
    return a


def assignment_skip(*, assignment: Assignment, worker: Worker) -> Assignment | None:
    """Return this task and lease the next one (None when nothing is left)."""
    a = assignment_return(assignment=assignment, worker=worker, action=AuditAction.ASSIGNMENT_SKIP)
    try:
        return assignment_next(worker=worker, campaign=a.task.campaign)
    except NoTask:
        return None


def leases_expire(*, now: datetime | None = None) -> int:
    """Mark leases past their end as expired (their tasks are already back in the pool). Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Assignment.objects.select_for_update(skip_locked=True).filter(
                status=A.LEASED, lease_expires_at__lte=now
            )
        )
        for a in due:
            a.status = A.EXPIRED
            a.save(update_fields=["status"])
            audit_record(actor=None, action=AuditAction.ASSIGNMENT_EXPIRE, target=a)
    return len(due)


# --- answers --------------------------------------------------------------------------------------


def task_answers_recount(*, task_id: int) -> Task:
    """Lock the task and store what adaptive redundancy now wants of it (answers_wanted,
    confidence: redundancy.task_answer_need). Called in the transaction of every change of its
    counted answers, so the next lease sees it."""
    task = Task.objects.select_for_update(of=("self",)).select_related("campaign").get(pk=task_id)
    need = task_answer_need(task=task)
    if (task.answers_wanted, task.confidence) != (need.wanted, need.confidence):
        task.answers_wanted, task.confidence = need.wanted, need.confidence
        task.save(update_fields=["answers_wanted", "confidence"])
    return task


def _concept_chars_ok(text: str) -> bool:
    """Letters, marks and digits of any script, with spaces, hyphens or apostrophes between
    them (the characters the normaliser keeps or reads as word breaks)."""
    if not (is_word_char(text[0]) and is_word_char(text[-1])):
        return False
    return all(is_word_char(ch) or ch in _CONCEPT_JOINERS for ch in text)


def validate_answer(*, concept: str, category: str) -> dict[str, list[str]]:
    """Field errors of the concept and category (empty when both are fine)."""
    errors: dict[str, list[str]] = {}
    # Judged in the normaliser's canonical form, so a decomposed "école" is the composed one.
    text = " ".join(unicodedata.normalize("NFKC", concept or "").split())
    if not text:
        errors["concept"] = ["Concept: type the one or two words most images share."]
    elif len(text) > CONCEPT_MAX_CHARS:
        errors["concept"] = [
            f"Concept: use at most {CONCEPT_MAX_CHARS} characters (one or two words); "
            f"this one has {len(text)}."
        ]
    elif not _concept_chars_ok(text):
        errors["concept"] = [
            "Concept: use only letters, digits, spaces, hyphens (-) and apostrophes (')."
        ]
    elif not concept_key(text):
        errors["concept"] = [
            "Concept: name what the images show; small words like 'the' or 'of' alone do not count."
        ]
    if category not in CATEGORY_SLUGS:
        errors["category"] = [
            "Category: pick one of " + ", ".join(CATEGORY_NAMES[c] for c in CATEGORY_SLUGS) + "."
        ]
    return errors


@transaction.atomic
def assignment_submit(
    *,
    assignment: Assignment,
    worker: Worker,
    concept: str,
    category: str,
    flagged_positions: Iterable[int],
    active_seconds: float | None = None,
) -> SubmitOutcome:
    """Save a worker's answer to their leased task.

    `flagged_positions` are tile positions (0-based, in the task's order) marked "does not fit".
    A control left unmarked sends the answer back once for revision (nothing saved but the prompt);
    the next submission is saved with control_failed=True.
    """
    a = _own_open_assignment(assignment=assignment, worker=worker)
    now = timezone.now()
    if a.lease_expires_at is not None and now >= a.lease_expires_at:
        raise LeaseExpired(
            "Your time for this task ran out, so it went back to the pool. Take a new task."
        )
    errors = validate_answer(concept=concept, category=category)
    order = a.task.tile_order
    try:
        positions = sorted({int(p) for p in flagged_positions})
    except (TypeError, ValueError):
        positions = [-1]
    if any(p < 0 or p >= len(order) for p in positions):
        errors["flagged"] = ["Tiles: the marked tiles do not belong to this task; reload the page."]
    if errors:
        raise AnswerInvalid(errors)
    flagged_ids = [order[p] for p in positions]
    controls = set(
        UnitImage.objects.filter(pk__in=order, kind="control").values_list("pk", flat=True)
    )
    unit_ids = [i for i in order if i not in controls]
    unmarked = sum(1 for i in unit_ids if i not in set(flagged_ids))
    if unmarked < MIN_UNMARKED_UNIT_TILES:
        raise AnswerInvalid(
            {
                "flagged": [
                    "Tiles: too many images are marked as not fitting. A unit's images share a "
                    "concept, so name what most of them show and mark only the clear exceptions."
                ]
            }
        )
    missed_control = any(c not in set(flagged_ids) for c in controls)
    if missed_control and a.control_prompts == 0:
        a.control_prompts = 1
        a.save(update_fields=["control_prompts"])
        audit_record(actor=worker.user, action=AuditAction.ASSIGNMENT_CONTROL_PROMPT, target=a)
        return SubmitOutcome(
            assignment=a,
            revise=True,
            messages=[
                "Please look again: at least one image you left unmarked clearly does not show "
                "your concept. Mark it, then submit. (You can also submit as it is.)"
            ],
        )
    answer = Answer.objects.create(
        assignment=a,
        concept_text=" ".join(unicodedata.normalize("NFKC", concept).split()),
        concept=concept_for_text(concept),
        category=category,
        flagged_tiles=flagged_ids,
        precision=unmarked / len(unit_ids),
        control_failed=missed_control,
        revisions=a.control_prompts,
    )
    elapsed = (now - a.accepted_at).total_seconds() if a.accepted_at else None
    if active_seconds is not None and elapsed is not None:
        active_seconds = max(0.0, min(float(active_seconds), elapsed))
    a.status = A.SUBMITTED
    a.submitted_at = now
    a.active_seconds = active_seconds if active_seconds is not None else elapsed
    a.completion_code = secrets.token_hex(5).upper()
    a.save(update_fields=["status", "submitted_at", "active_seconds", "completion_code"])
    audit_record(
        actor=worker.user,
        action=AuditAction.ASSIGNMENT_SUBMIT,
        target=a,
        data={"control_failed": missed_control, "flagged": len(flagged_ids)},
    )
    task_answers_recount(task_id=a.task_id)
    unit_id = a.task.unit_id
    answers_changed.send(sender=Assignment, unit_ids={unit_id})
    return SubmitOutcome(assignment=a, answer=answer)


# --- review ---------------------------------------------------------------------------------------


@transaction.atomic
def assignment_review(
    *, assignment_ids: Iterable[int], approve: bool, actor, reason: str = ""
) -> list[Assignment]:
    """Approve or reject submitted assignments (bulk); a rejection needs a reason the worker will see.

    Assignments that are not waiting for review are left alone; the changed ones are returned.
    """
    reason = (reason or "").strip()
    if not approve and not reason:
        raise CrowdError("reason: tell the worker why the answer is rejected.", field="reason")
    now = timezone.now()
    changed = list(
        Assignment.objects.select_for_update(of=("self",))
        .select_related("task")
        .filter(pk__in=list(assignment_ids), status=A.SUBMITTED)
        .order_by("pk")
    )
    for a in changed:
        a.status = A.APPROVED if approve else A.REJECTED
        a.reviewed_at = now
        a.reject_reason = "" if approve else reason[:500]
        a.save(update_fields=["status", "reviewed_at", "reject_reason"])
        audit_record(
            actor=actor,
            action=AuditAction.ASSIGNMENT_APPROVE if approve else AuditAction.ASSIGNMENT_REJECT,
            target=a,
            data={} if approve else {"reason": reason[:500]},
        )
    if not approve:  # a rejected answer no longer counts: its unit may want another
        for task_id in sorted({a.task_id for a in changed}):
            task_answers_recount(task_id=task_id)
    units = {a.task.unit_id for a in changed}
    answers_changed.send(sender=Assignment, unit_ids=units)
    return changed


def auto_approve_due(*, now: datetime | None = None) -> int:
    """Approve answers left unreviewed for longer than their campaign's auto-approve delay. Idempotent."""
    now = now or timezone.now()
    done = 0
    campaigns = Campaign.objects.filter(tasks__assignments__status=A.SUBMITTED).distinct()
    for campaign in campaigns:
        cutoff = now - timedelta(hours=campaign.auto_approve_hours)
        with transaction.atomic():
            due = list(
                Assignment.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("task")
                .filter(task__campaign=campaign, status=A.SUBMITTED, submitted_at__lte=cutoff)
            )
            for a in due:
                a.status, a.reviewed_at = A.APPROVED, now
                a.save(update_fields=["status", "reviewed_at"])
                audit_record(actor=None, action=AuditAction.ASSIGNMENT_AUTO_APPROVE, target=a)
            units = {a.task.unit_id for a in due}
            answers_changed.send(sender=Assignment, unit_ids=units)
        done += len(due)
    return done
