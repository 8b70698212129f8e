"""Verification tasks (issue 16): is a unit's label right over its whole activation range?

A verification task shows images drawn across the unit's activation range by
``dissect.verification_sampling`` (known inclusion probabilities, planted checks where label
maps exist) and asks, image by image, "does the highlighted region show CONCEPT?" (yes / no /
can't tell). Workers see positions and tiles only (signed, position-only tile URLs): never the
activation, the weight, the stratum or which images are checks.

Writes: ``verification_tasks_create`` (adds tasks to a campaign; run off the web request by
``verification_build`` in the Celery task ``annotate.crowd.tasks.build_verification``, queue gpu,
which records the build's state, progress and error on the Campaign), ``verification_next`` (a
lease, only once the campaign's sample is ready; a worker gets each unit once, and a unit only
while it holds fewer slots than its ``answers_wanted``, recounted under the task's row lock), ``verification_answer`` (one answer per
image per worker, refused with a message when the image is not in the worker's task or was
answered already). Adaptive redundancy is the crowd's one rule (``redundancy.answer_need``,
binary). Every change writes an AuditEvent in its transaction.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils import timezone

from annotate.crowd.models import (
    Campaign,
    VerificationAnswer,
    VerificationAssignment,
    VerificationItem,
    VerificationTask,
    Worker,
)
from annotate.crowd.redundancy import PRIOR_AGREEING, PRIOR_DISAGREEING, Vote, answer_need
from annotate.crowd.services import CrowdError, NoTask
from annotate.crowd.signals import consensus_requested
from annotate.crowd.spec import VERIFICATION_SPEC
from core.audit import audit_record
from core.errors import Conflict
from core.models import AuditAction
from dissect.models import AutoLabel, DissectionRun, Unit

logger = logging.getLogger(__name__)
VA = VerificationAssignment.Status
LABEL_SOURCES = ("crowd", "auto")
_TILE_SALT = "crowd.verify-tile"
TILE_TOKEN_MAX_AGE = 2 * 24 * 3600


class AlreadyAnswered(CrowdError, Conflict):
    """A second answer to the same image (409); the first one stands."""


class BuildBusy(CrowdError, Conflict):
    """A verification build is asked for while one is waiting or running (409)."""


# --- creating tasks -------------------------------------------------------------------------------


def unit_labels_for_verification(
    *, run: DissectionRun, layers: list[str], source: str
) -> dict[int, str]:
    """{Unit id: concept} of the units of ``layers`` that have a label from ``source``: 'auto'
    (the best automatic label over all categories, ``dissect.AutoLabel``) or 'crowd' (the crowd
    label, asked of the layer above through ``consensus_requested``)."""
    units = list(
        Unit.objects.filter(layer__run=run, layer__name__in=layers).values_list("pk", flat=True)
    )
    if source == "auto":
        return dict(
            AutoLabel.objects.filter(unit_id__in=units, category="").values_list("unit_id", "label")
        )
    if source == "crowd":
        labels: dict[int, str] = {}
        for _receiver, answer in consensus_requested.send(sender=Campaign, unit_ids=set(units)):
            labels.update({int(k): str(v) for k, v in (answer or {}).items() if v})
        return labels
    raise CrowdError(
        f"verify_source: {source!r} is not a label source; use one of {', '.join(LABEL_SOURCES)}.",
        field="verify_source",
    )


def verification_tasks_create(
    *,
    campaign: Campaign,
    source: str,
    images: int,
    checks: int = 2,
    actor=None,
    unit_labels: Mapping[int, str] | None = None,
    net=None,
    progress=None,
) -> list[VerificationTask]:
    """Add one verification task per labeled unit of the campaign's layers: ``images`` images
    sampled over the unit's whole activation range (one scoring pass per layer; see
    ``dissect.verification_sampling``) plus up to ``checks`` planted checks of each kind, in a
    seeded shuffled order. ``unit_labels`` {Unit id: concept} overrides the labels of ``source``
    (default: ``unit_labels_for_verification``); ``net`` the run's network (tests)."""
    from dissect.verification_sampling import VerificationSampleError, sample_run_units

    if source not in LABEL_SOURCES:
        raise CrowdError(
            f"verify_source: use one of {', '.join(LABEL_SOURCES)}.", field="verify_source"
        )
    labels = (
        dict(unit_labels)
        if unit_labels is not None
        else unit_labels_for_verification(
            run=campaign.run, layers=list(campaign.layers), source=source
        )
    )
    labels = {u: c for u, c in labels.items() if str(c).strip()}
    if not labels:
        hint = (
            "collect and aggregate crowd labels first"
            if source == "crowd"
            else "compute automatic labels first (an image set with label maps; "
            "`python manage.py dissect ... ` with labels, or the run's auto-label stage)"
        )
        raise CrowdError(
            f"verify_source: no unit of {', '.join(campaign.layers)} has a {source} label; {hint}.",
            field="verify_source",
        )
    try:
        samples = sample_run_units(
            run_id=campaign.run_id, unit_concepts=labels, n=images, seed=campaign.seed,
            checks=checks, net=net, progress=progress,
        )  # fmt: skip
    except VerificationSampleError as error:
        raise CrowdError(f"verify_source: {error}.", field="verify_source") from None
    with transaction.atomic():
        tasks = []
        for unit_id, sample in samples.items():
            task, created = VerificationTask.objects.get_or_create(
                campaign=campaign,
                unit_id=unit_id,
                label_source=source,
                defaults={
                    "concept": labels[unit_id][:100],
                    "population": sample.population,
                    "threshold": sample.threshold,
                    "strata": sample.strata,
                    "seed": campaign.seed,
                    "answers_wanted": campaign.redundancy,
                },
            )
            if not created:
                continue  # already there: the same seed drew the same images
            shown = sample.items + sample.checks
            order = list(range(len(shown)))
            random.Random(f"{campaign.seed}:verify:{unit_id}").shuffle(order)
            VerificationItem.objects.bulk_create(
                VerificationItem(
                    task=task, position=position, image_id=shown[i].image_id,
                    activation=shown[i].activation,
                    inclusion_probability=shown[i].inclusion_probability,
                    stratum=shown[i].stratum, silent=shown[i].silent,
                    tile_path=shown[i].tile_path, planted=shown[i].check,
                    coverage=shown[i].coverage,
                )
                for position, i in enumerate(order)
            )  # fmt: skip
            tasks.append(task)
        audit_record(
            actor=actor,
            action=AuditAction.CAMPAIGN_CREATE,
            target=campaign,
            data={"verification_tasks": len(tasks), "label_source": source, "images": images},
        )
    return tasks


def campaign_create_with_verification(
    *, created_by=None, inline: bool | None = None, progress=None, **kwargs
) -> Campaign:
    """``services.campaign_create`` plus, when ``verify_source`` is set, the build of
    verification tasks for its labeled units (``VERIFICATION_SPEC``: verify_source,
    verify_images, verify_checks). The labels are looked up first, so a campaign is not made for
    a source that labeled none of its units. The build (a forward pass per layer, minutes) runs
    on a gpu worker (``verification_build_enqueue``); ``inline`` True runs it here (the
    command), calling ``progress(done, total)`` as it goes."""
    from annotate.crowd.services import campaign_create

    options = VERIFICATION_SPEC.clean(
        {k: kwargs.pop(k) for k in VERIFICATION_SPEC.names() if k in kwargs}, error=CrowdError
    )
    source = options["verify_source"]
    if source and not unit_labels_for_verification(
        run=kwargs["run"], layers=[str(x) for x in kwargs.get("layers") or []], source=source
    ):
        raise CrowdError(
            f"verify_source: no unit of these layers has a {source} label yet.",
            field="verify_source",
        )
    campaign = campaign_create(created_by=created_by, **kwargs)
    if source:
        campaign = verification_build_enqueue(
            campaign=campaign, options=options, actor=created_by, inline=inline, progress=progress
        )
    return campaign


# --- building the sample (annotate.crowd.tasks.build_verification, queue gpu) ---------------------

VS = Campaign.VerificationState
# The least time between two progress writes of a build.
PROGRESS_WRITE_S = 1.0


def verification_build_enqueue(
    *,
    campaign: Campaign,
    options: Mapping | None = None,
    actor=None,
    inline: bool | None = None,
    progress=None,
) -> Campaign:
    """Record that the campaign's verification sample is to be built (state pending, with
    ``options``: verify_source, verify_images, verify_checks; default: the campaign's last ones)
    and hand the build to the gpu queue once this transaction commits. With eager Celery (the
    embedded default) or ``inline`` True it runs here, now. Returns the campaign as it stands."""
    from django.conf import settings

    from annotate.crowd import tasks

    opts = dict(options if options is not None else campaign.verification_options)
    if not opts.get("verify_source"):
        raise CrowdError("verify_source: this campaign has no verification sample to build.")
    with transaction.atomic():  # two presses at once enqueue one build
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if verification_build_status(campaign=locked).busy:
            raise BuildBusy(
                "The verification sample is already being built; reload the page to follow it."
            )
        Campaign.objects.filter(pk=campaign.pk).update(
            verification_state=VS.PENDING, verification_error="", verification_done=0,
            verification_total=0, verification_options=opts, verification_started_at=None,
        )  # fmt: skip
    actor_id = getattr(actor, "pk", None)
    if inline or (inline is None and settings.CELERY_TASK_ALWAYS_EAGER):
        verification_build(campaign_id=campaign.pk, actor_id=actor_id, on_progress=progress)
    else:
        transaction.on_commit(lambda: _enqueue(tasks.build_verification, campaign.pk, actor_id))
    campaign.refresh_from_db()
    return campaign


def _enqueue(task, campaign_id: int, actor_id: int | None) -> None:
    """Hand the build to the broker; when it cannot be reached the build is marked failed
    (not left pending for ever) with what to do."""
    try:
        task.delay(campaign_id, actor_id=actor_id)
    except Exception as error:
        logger.exception("could not enqueue the verification build of campaign %s", campaign_id)
        _build_record(
            campaign_id,
            verification_state=VS.FAILED,
            verification_error=f"the task queue could not be reached ({type(error).__name__}: "
            f"{error}); check the broker and the gpu worker, then build the sample again",
        )


def _build_record(campaign_id: int, **fields) -> None:
    Campaign.objects.filter(pk=campaign_id).update(**fields)


def verification_build_failed(*, campaign_id: int, error: str) -> None:
    """Record a build that cannot go on (the task's last retry); quiet when even that fails."""
    try:
        _build_record(campaign_id, verification_state=VS.FAILED, verification_error=error)
    except Exception:
        logger.exception("could not record the failed verification build of %s", campaign_id)


def verification_build(
    *, campaign_id: int, actor_id: int | None = None, net=None, on_progress=None
) -> str:
    """Build the campaign's verification tasks (``verification_tasks_create`` with its
    ``verification_options``), recording state building, its progress, then ready or failed
    with the error. Idempotent: a rerun adds only the units still missing. Returns the state.
    Transient database errors propagate (the Celery task retries them); any other error is
    stored as the campaign's build error."""
    from django.contrib.auth import get_user_model
    from django.db import InterfaceError, OperationalError

    campaign = Campaign.objects.select_related("run").get(pk=campaign_id)
    opts = campaign.verification_options or {}
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    _build_record(
        campaign_id,
        verification_state=VS.BUILDING,
        verification_error="",
        verification_started_at=timezone.now(),
    )
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(done, total)
        now = time.monotonic()
        if done >= total or now - last[0] >= PROGRESS_WRITE_S:
            last[0] = now
            _build_record(campaign_id, verification_done=done, verification_total=total)

    try:
        verification_tasks_create(
            campaign=campaign, source=opts.get("verify_source", ""),
            images=int(opts.get("verify_images", 40)), checks=int(opts.get("verify_checks", 2)),
            actor=actor, net=net, progress=progress,
        )  # fmt: skip
    except (OperationalError, InterfaceError, ConnectionError):
        raise
    except CrowdError as error:
        _build_record(campaign_id, verification_state=VS.FAILED, verification_error=str(error))
        return VS.FAILED
    except Exception as error:  # stored for the campaign page, and logged with its traceback
        logger.exception("verification build of campaign %s failed", campaign_id)
        _build_record(
            campaign_id,
            verification_state=VS.FAILED,
            verification_error=f"{type(error).__name__}: {error}",
        )
        return VS.FAILED
    _build_record(campaign_id, verification_state=VS.READY, verification_error="")
    return VS.READY


def verification_build_time_limit() -> float | None:
    """Seconds after which a build still marked building cannot be running any more: the hard
    time limit of ``build_verification`` (its own, else the Celery app's ``task_time_limit``,
    i.e. ``CELERY_TASK_TIME_LIMIT``); None when tasks have no time limit."""
    from annotate.crowd import tasks

    task = tasks.build_verification
    limit = getattr(task, "time_limit", None) or task.app.conf.task_time_limit
    return float(limit) if limit else None


@dataclass(frozen=True)
class BuildStatus:
    """A campaign's verification build as pages and the API show it. ``state`` is the stored
    one, except ``stale``: marked building for longer than the task's hard time limit, so its
    worker died (killed, lost, out of memory) without recording an outcome."""

    state: str  # '' (none asked for), pending, building, stale, ready, failed
    done: int = 0
    total: int = 0
    error: str = ""
    started_at: datetime | None = None

    @property
    def busy(self) -> bool:
        """A build is waiting or running: building again is refused."""
        return self.state in (VS.PENDING, VS.BUILDING)

    @property
    def can_rebuild(self) -> bool:
        return self.state in (VS.FAILED, STALE)

    @property
    def percent(self) -> int | None:
        return round(100 * self.done / self.total) if self.total else None


STALE = "stale"


def verification_build_status(*, campaign: Campaign, now=None) -> BuildStatus:
    """The campaign's build state, with a build that outlived the task's hard time limit
    reported as ``stale`` (and its error saying so and what to do)."""
    state, started = campaign.verification_state, campaign.verification_started_at
    error = campaign.verification_error
    limit = verification_build_time_limit()
    if state == VS.BUILDING and started is not None and limit is not None:
        now = now or timezone.now()
        if (now - started).total_seconds() > limit:
            state = STALE
            error = (
                f"the build started {timezone.localtime(started):%Y-%m-%d %H:%M} and did not "
                f"finish within the task's time limit ({_duration(limit)}): its gpu worker "
                "stopped without recording an outcome (killed, lost, or out of memory). Check "
                "the gpu worker's log, then build the sample again."
            )
    return BuildStatus(
        state=state, done=campaign.verification_done, total=campaign.verification_total,
        error=error, started_at=started,
    )  # fmt: skip


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


# --- tiles ----------------------------------------------------------------------------------------


def tile_token(*, task_id: int, position: int) -> str:
    """A signed, position-only reference to one image of a verification task."""
    return signing.dumps([task_id, position], salt=_TILE_SALT)


def tile_from_token(*, token: str) -> tuple[int, int]:
    """(task id, position); raises signing.BadSignature when forged or too old."""
    task_id, position = signing.loads(token, salt=_TILE_SALT, max_age=TILE_TOKEN_MAX_AGE)
    return int(task_id), int(position)


def tile_url(*, task_id: int, position: int) -> str:
    return reverse("crowd:verify-tile", args=[tile_token(task_id=task_id, position=position)])


# --- leases ---------------------------------------------------------------------------------------


def _live(now, prefix: str = "") -> Q:
    """Assignments holding a slot: submitted, or leased and not expired."""
    return Q(**{f"{prefix}status": VA.SUBMITTED}) | Q(
        **{f"{prefix}status": VA.LEASED, f"{prefix}lease_expires_at__gt": now}
    )


def verification_open(*, campaign: Campaign) -> bool:
    """Whether the campaign has verification tasks."""
    return VerificationTask.objects.filter(campaign=campaign).exists()


# Tries when every free unit was locked by other workers' leases in flight (SKIP LOCKED passes
# them by): those locks last one short transaction, so a brief wait finds the unit again.
LEASE_TRIES = 40
LEASE_RETRY_S = 0.02


def verification_next(*, worker: Worker, campaign: Campaign) -> VerificationAssignment:
    """The worker's open verification lease in ``campaign``, or a new one on a task they never
    held that has a free slot (fewest answers first). Raises NoTask saying why not."""
    if campaign.status != Campaign.Status.LIVE:
        raise NoTask(f"This campaign is {campaign.status}; no tasks are handed out.")
    if worker.blocked:
        raise NoTask("Your account is blocked from receiving tasks.")
    state = Campaign.objects.filter(pk=campaign.pk).values_list("verification_state", flat=True)
    if state.first() in (VS.PENDING, VS.BUILDING, VS.FAILED):
        raise NoTask(
            "This campaign's verification images are not ready yet; try again in a few minutes."
        )
    for _ in range(LEASE_TRIES):
        assignment, passed_locked = _lease_once(worker=worker, campaign=campaign)
        if assignment is not None:
            return assignment
        if not passed_locked:
            break
        time.sleep(LEASE_RETRY_S * (1 + random.random()))
    raise NoTask("There are no verification tasks left for you in this campaign right now.")


@transaction.atomic
def _lease_once(*, worker: Worker, campaign: Campaign):
    """(the lease held or taken, or None; whether a unit was passed by because another worker's
    lease in flight had it locked). The task's row lock makes the recount of its slots final."""
    now = timezone.now()
    Worker.objects.select_for_update().filter(pk=worker.pk).first()  # one request at a time
    held = (
        VerificationAssignment.objects.filter(
            worker=worker, task__campaign=campaign, status=VA.LEASED, lease_expires_at__gt=now
        )
        .select_related("task")
        .first()
    )
    if held is not None:
        return held, False
    candidates = (
        VerificationTask.objects.filter(campaign=campaign)
        .exclude(assignments__worker=worker)
        .annotate(load=Count("assignments", filter=_live(now, prefix="assignments__")))
        .filter(load__lt=F("answers_wanted"))
        .order_by("load", "id")
    )
    passed_locked = False
    for task in candidates:
        locked = (
            VerificationTask.objects.select_for_update(skip_locked=True).filter(pk=task.pk).first()
        )
        if locked is None:
            passed_locked = True
            continue
        load = VerificationAssignment.objects.filter(_live(now), task=locked).count()
        if load >= locked.answers_wanted:
            continue
        assignment = VerificationAssignment.objects.create(
            task=locked,
            worker=worker,
            lease_expires_at=now + timedelta(minutes=campaign.lease_minutes),
        )
        audit_record(
            actor=worker.user,
            action=AuditAction.ASSIGNMENT_LEASE,
            target=assignment,
            data={"verification_task": locked.pk},
        )
        return assignment, False
    return None, passed_locked


# --- answers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where a worker stands in a verification task: the next image (None when all are
    answered), how many are answered and how many there are."""

    item: VerificationItem | None
    answered: int
    total: int


def assignment_progress(*, assignment: VerificationAssignment) -> Progress:
    items = list(VerificationItem.objects.filter(task_id=assignment.task_id).order_by("position"))
    done = set(assignment.answers.values_list("item_id", flat=True))
    pending = [i for i in items if i.pk not in done]
    return Progress(item=pending[0] if pending else None, answered=len(done), total=len(items))


def verification_answer(
    *, assignment: VerificationAssignment, worker: Worker, token: str, answer: str
) -> VerificationAnswer:
    """Store one answer (``answer`` yes / no / cant) about the image the signed ``token`` names.

    Refused with a CrowdError naming what to do: another worker's assignment, a closed one, a
    lapsed lease, an image of another task, an answer that is not one of the three; a second
    answer to the same image raises AlreadyAnswered (the first one stands). The last image's
    answer submits the assignment and updates the unit's answers_wanted."""
    if answer not in VerificationAnswer.Choice.values:
        raise CrowdError("answer: choose yes (y), no (n) or can't tell (c).", field="answer")
    try:
        task_id, position = tile_from_token(token=token)
    except signing.BadSignature:
        raise CrowdError(
            "item: this image reference is not valid (or too old); reload the page.", field="item"
        ) from None
    with transaction.atomic():
        a = (
            VerificationAssignment.objects.select_for_update(of=("self",))
            .select_related("task__campaign")
            .get(pk=assignment.pk)
        )
        if a.worker_id != worker.pk:
            raise CrowdError("assignment: this task is not yours.", field="assignment")
        if task_id != a.task_id:
            raise CrowdError(
                "item: that image is not part of your task; reload the page and answer the "
                "image it shows.",
                field="item",
            )
        item = VerificationItem.objects.filter(task_id=a.task_id, position=position).first()
        if item is None:
            raise CrowdError("item: your task has no such image; reload the page.", field="item")
        if VerificationAnswer.objects.filter(assignment=a, item=item).exists():
            raise AlreadyAnswered(
                "item: you already answered this image; your first answer stands.", field="item"
            )
        if a.status != VA.LEASED:
            raise CrowdError(f"assignment: this task is already {a.status}.", field="assignment")
        now = timezone.now()
        if a.lease_expires_at is not None and now >= a.lease_expires_at:
            raise CrowdError(
                "assignment: your time for this task ran out, so it went back to the pool; "
                "take a new task.",
                field="assignment",
            )
        try:
            with transaction.atomic():  # a racing duplicate hits the unique constraint here
                stored = VerificationAnswer.objects.create(assignment=a, item=item, answer=answer)
        except IntegrityError:
            raise AlreadyAnswered(
                "item: you already answered this image; your first answer stands.", field="item"
            ) from None
        audit_record(
            actor=worker.user,
            action=AuditAction.ASSIGNMENT_SUBMIT,
            target=a,
            data={"verification_item": item.pk},
        )
        if (
            not VerificationItem.objects.filter(task_id=a.task_id)
            .exclude(answers__assignment=a)
            .exists()
        ):
            a.status, a.submitted_at = VA.SUBMITTED, now
            a.save(update_fields=["status", "submitted_at"])
            task_need_update(task=a.task)
    return stored


# --- adaptive redundancy --------------------------------------------------------------------------


def worker_check_reliability(*, campaign: Campaign, worker_ids) -> dict[int, float]:
    """Each worker's probability of answering an image right, from the planted checks they
    answered in ``campaign`` (a 'can't tell' on a check counts as wrong), with the crowd's Beta
    prior (``redundancy.PRIOR_AGREEING``/``PRIOR_DISAGREEING``)."""
    right: dict[int, int] = defaultdict(int)
    seen: dict[int, int] = defaultdict(int)
    rows = VerificationAnswer.objects.filter(
        assignment__task__campaign=campaign,
        assignment__worker_id__in=list(worker_ids),
        item__planted__in=["fits", "not"],
    ).values_list("assignment__worker_id", "item__planted", "answer")
    for worker_id, planted, answer in rows:
        seen[worker_id] += 1
        right[worker_id] += answer == ("yes" if planted == "fits" else "no")
    return {
        w: (right[w] + PRIOR_AGREEING) / (seen[w] + PRIOR_AGREEING + PRIOR_DISAGREEING)
        for w in worker_ids
    }


def task_need_update(*, task: VerificationTask) -> VerificationTask:
    """Recompute the task's answers_wanted and confidence with the crowd's one redundancy rule
    (``answer_need``, two alternatives) image by image: the unit wants as many workers as its
    least certain sampled image does; its confidence is that image's posterior."""
    campaign = task.campaign
    submitted = list(
        VerificationAssignment.objects.filter(task=task, status=VA.SUBMITTED).values_list(
            "pk", "worker_id"
        )
    )
    workers = sorted({w for _, w in submitted})
    reliability = worker_check_reliability(campaign=campaign, worker_ids=workers)
    votes: dict[int, list[Vote]] = defaultdict(list)
    for item_id, worker_id, answer in VerificationAnswer.objects.filter(
        assignment_id__in=[pk for pk, _ in submitted],
        item__planted="",
        answer__in=["yes", "no"],
    ).values_list("item_id", "assignment__worker_id", "answer"):
        votes[item_id].append(
            Vote(worker_id=worker_id, value=answer, reliability=reliability[worker_id])
        )
    items = VerificationItem.objects.filter(task=task, planted="").values_list("pk", flat=True)
    needs = [
        answer_need(campaign=campaign, votes=votes[i], answers=len(submitted), alternatives=2)
        for i in items
    ]
    if needs:
        task.answers_wanted = max(n.wanted for n in needs)
        task.confidence = min(n.confidence for n in needs)
        task.save(update_fields=["answers_wanted", "confidence"])
    return task
