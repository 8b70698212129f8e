"""A simulated crowd for the demo world: workers who answer demo tasks from the world's ground truth.

Nobody here is a person. Simulated workers are ``Worker`` rows with source ``simulated`` and
pseudonyms ``sim-…``; pages that show their answers carry a banner and exports a ``simulated``
column. They exist so the demo ends with crowd labels (detectors, Fig. 9 and 10, agreement) and
so ``manage.py simulate_crowd`` can measure adaptive against fixed redundancy: through the
services (``crowd_simulate``), or in memory over many seeds (``crowd_replica``, the same draws
and the crowd's own rules, answer for answer what the services store).

The ground truth of a demo unit is what the demo world's label maps say it detects: its automatic
label (best IoU over the world's objects, regions, parts, materials, colors and scenes,
``dissect.autolabel``), the unit's best label per other category as plausible mistakes, and per
image the labels its label maps contain (re-rendered from the world's seed: same bytes).

How a simulated worker answers (``CrowdModel`` states the numbers):
- careful (share ``1 - spammer_share``): names the unit's ground-truth concept with probability
  ``accuracy`` on units that detect it clearly (IoU >= ``CLEAR_IOU``) and ``accuracy / 2`` on
  the others, else one of the unit's runner-up labels; marks each control tile with probability
  0.95 and each top tile whose image lacks the concept with probability 0.9.
- spammer: a random label of the world, a random category, a few random tiles marked.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from annotate.crowd import services as crowd
from annotate.crowd.models import Answer, Assignment, Campaign, Task, Worker
from annotate.crowd.services import AnswerInvalid, NoTask
from core.concepts import CATEGORY_SLUGS
from dissect.models import AutoLabel, DissectionRun, Image, UnitImage

# IoU at or above which a unit clearly detects its label (emergence's lower level).
CLEAR_IOU = 0.04
SIMULATED_PREFIX = "sim-"


@dataclass(frozen=True)
class CrowdModel:
    """The simulated crowd's stated noise: how many workers, how accurate the careful ones are,
    what share are spammers; ``seed`` makes every answer reproducible."""

    workers: int = 40
    accuracy: float = 0.8
    spammer_share: float = 0.2
    seed: int = 0

    def describe(self) -> str:
        return (
            f"{self.workers} simulated workers, careful ones {self.accuracy:.0%} accurate on "
            f"clear units, {self.spammer_share:.0%} spammers (seed {self.seed})"
        )


@dataclass(frozen=True)
class UnitTruth:
    """What the demo world says a unit detects: its concept as a worker would type it, its
    category, the IoU, and runner-up labels (concept, category) a careful worker may confuse."""

    concept: str
    category: str
    iou: float
    runners_up: tuple[tuple[str, str], ...] = ()

    @property
    def clear(self) -> bool:
        return self.iou >= CLEAR_IOU


def typed(label: str) -> str:
    """A world label as a worker types it ("living_room" -> "living room")."""
    return label.replace("_", " ")


def unit_truths(*, run: DissectionRun) -> dict[int, UnitTruth]:
    """Unit id -> UnitTruth from the run's automatic labels (a demo run dissected with the world's
    label maps). Units without an automatic label are left out."""
    best: dict[int, tuple[str, float]] = {}
    others: dict[int, list[tuple[float, str, str]]] = defaultdict(list)
    rows = AutoLabel.objects.filter(unit__layer__run=run).values_list(
        "unit_id", "category", "label", "iou"
    )
    for unit_id, category, label, iou in rows:
        if category == "":
            best[unit_id] = (label, iou)
        else:
            others[unit_id].append((iou, typed(label), category))
    truths = {}
    for unit_id, (label, iou) in best.items():
        category = next((c for _, name, c in others[unit_id] if name == typed(label)), "object")
        runners = tuple(
            (name, c)
            for _, name, c in sorted(others[unit_id], reverse=True)
            if name != typed(label)
        )
        truths[unit_id] = UnitTruth(typed(label), category, float(iou), runners[:3])
    return truths


def image_labels(*, run: DissectionRun) -> dict[int, frozenset[str]]:
    """Image id -> the world labels its label maps contain (and its scene), as typed."""
    from dissect.demo.world import LABELS, MAP_NAMES, render

    labels_dir = Path(run.image_set.labels_dir or run.image_set.root)
    meta_path = labels_dir / "world.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} is missing: the simulated crowd answers demo-world runs only "
            "(python manage.py demo makes one)."
        )
    meta = json.loads(meta_path.read_text())
    names = {lab.number: typed(lab.name) for lab in LABELS}
    present = {}
    images = Image.objects.filter(unit_images__unit__layer__run=run).distinct()
    for image_id, path in images.values_list("pk", "path"):
        index = int(Path(path).stem)
        sample = render(meta["seed"], index, size=meta["size"], variant=meta["variant"])
        numbers = set()
        for map_name in MAP_NAMES:
            numbers.update(int(n) for n in set(getattr(sample, map_name).ravel().tolist()))
        found = {names[n] for n in numbers if n} | {typed(sample.scene)}
        present[image_id] = frozenset(found)
    return present


def simulated_workers(*, model: CrowdModel) -> list[tuple[Worker, bool]]:
    """(worker, is_spammer) for the model's workers: ``sim-s…`` spammers, ``sim-c…`` careful
    ones (created on first use, the same rows for the same seed)."""
    rng = random.Random(f"crowd:{model.seed}")
    spammers = set(rng.sample(range(model.workers), round(model.spammer_share * model.workers)))
    out = []
    for i in range(model.workers):
        spam = i in spammers
        name = f"{SIMULATED_PREFIX}{model.seed}-{'s' if spam else 'c'}{i:03d}"
        worker, _ = Worker.objects.get_or_create(
            source=Worker.Source.SIMULATED, external_id=name, defaults={"pseudonym": name}
        )
        out.append((worker, spam))
    return out


@dataclass
class TaskView:
    """What a simulated worker looks at: per tile position, its kind and whether the image
    shows the unit's ground-truth concept."""

    controls: list[int]
    unit_tiles: list[int]
    shows_concept: dict[int, bool]


def _task_view(task: Task, truth: UnitTruth, labels: dict[int, frozenset[str]]) -> TaskView:
    rows = dict(
        UnitImage.objects.filter(pk__in=task.tile_order).values_list("pk", "kind")
    )  # one query per task: the simulation is about answers, not speed
    images = dict(UnitImage.objects.filter(pk__in=task.tile_order).values_list("pk", "image_id"))
    controls, units, shows = [], [], {}
    for p, pk in enumerate(task.tile_order):
        (controls if rows[pk] == "control" else units).append(p)
        shows[p] = truth.concept in labels.get(images[pk], frozenset())
    return TaskView(controls, units, shows)


def simulated_answer(
    *, rng: random.Random, spammer: bool, truth: UnitTruth, view: TaskView, model: CrowdModel
) -> tuple[str, str, list[int]]:
    """(concept, category, marked tile positions) of one simulated worker (see module doc)."""
    from dissect.demo.world import LABELS

    if spammer:
        label = rng.choice([lab for lab in LABELS if lab.category])
        marked = rng.sample(view.controls + view.unit_tiles, k=rng.randint(0, 3))
        room = max(0, len(view.unit_tiles) - crowd.MIN_UNMARKED_UNIT_TILES)
        units = [p for p in marked if p in set(view.unit_tiles)][:room]
        marked = [p for p in marked if p in set(view.controls)] + units
        return typed(label.name), rng.choice(CATEGORY_SLUGS), marked
    p_right = model.accuracy if truth.clear else model.accuracy / 2
    if rng.random() < p_right or not truth.runners_up:
        concept, category = truth.concept, truth.category
    else:
        concept, category = rng.choice(truth.runners_up)
    marked = [p for p in view.controls if rng.random() < 0.95]
    misses = [p for p in view.unit_tiles if not view.shows_concept[p] and rng.random() < 0.9]
    # A task keeps at least 10 unmarked unit tiles: a worker marks only the clearest misses.
    room = max(0, len(view.unit_tiles) - crowd.MIN_UNMARKED_UNIT_TILES)
    marked += rng.sample(misses, k=min(len(misses), room))
    return concept, category, marked


@dataclass
class SimulationResult:
    """Answers stored per task, and how long nothing was left for the crowd."""

    campaign: Campaign
    answers_per_task: dict[int, int] = field(default_factory=dict)

    @property
    def answers(self) -> int:
        return sum(self.answers_per_task.values())


def crowd_simulate(
    *,
    campaign: Campaign,
    model: CrowdModel,
    max_answers: int | None = None,
    truths: dict[int, UnitTruth] | None = None,
    labels: dict[int, frozenset[str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Let the simulated crowd answer ``campaign`` (live, on a demo-world run) through the
    ordinary services until no worker gets a task (or ``max_answers`` are stored). Each round
    every worker, in a seeded order, asks for a task and answers it. ``truths`` and ``labels``
    default to the demo world's (``unit_truths``, ``image_labels``)."""
    run = campaign.run
    truths = unit_truths(run=run) if truths is None else truths
    labels = image_labels(run=run) if labels is None else labels
    workers = simulated_workers(model=model)
    rng = random.Random(f"answers:{model.seed}:{campaign.pk}")
    task_units = dict(Task.objects.filter(campaign=campaign).values_list("pk", "unit_id"))
    total = len(task_units) * campaign.answers_max
    stored = 0
    while max_answers is None or stored < max_answers:
        order = list(workers)
        rng.shuffle(order)
        answered_this_round = 0
        for worker, spammer in order:
            if not _answer_one(worker, spammer, campaign=campaign, truths=truths, labels=labels,
                               task_units=task_units, model=model, rng=rng):  # fmt: skip
                continue
            stored += 1
            answered_this_round += 1
            if progress:
                progress(stored, total)
            if max_answers is not None and stored >= max_answers:
                break
        if answered_this_round == 0:
            break
    counts = Counter(
        Assignment.objects.filter(
            task__campaign=campaign,
            status__in=[Assignment.Status.SUBMITTED, Assignment.Status.APPROVED],
        ).values_list("task_id", flat=True)
    )
    return SimulationResult(campaign, {t: counts.get(t, 0) for t in task_units})


def _answer_one(worker, spammer, *, campaign, truths, labels, task_units, model, rng) -> bool:
    """One simulated worker takes a task and answers it; False when nothing is left for them.
    A unit the world says nothing about (or an answer the services refuse) is given back and the
    next task taken: a worker never gets a returned unit again, so this ends."""
    while True:
        try:
            a = crowd.assignment_next(worker=worker, campaign=campaign)
        except NoTask:
            return False
        truth = truths.get(task_units[a.task_id])
        if truth is None:
            crowd.assignment_return(assignment=a, worker=worker)
            continue
        view = _task_view(a.task, truth, labels)
        concept, category, marked = simulated_answer(
            rng=rng, spammer=spammer, truth=truth, view=view, model=model
        )
        try:
            outcome = crowd.assignment_submit(
                assignment=a, worker=worker, concept=concept, category=category,
                flagged_positions=marked, active_seconds=rng.uniform(20, 90),
            )  # fmt: skip
            if outcome.revise:  # asked to look again: careful workers mark the controls
                if not spammer:
                    marked = sorted(set(marked) | set(view.controls))
                crowd.assignment_submit(
                    assignment=a, worker=worker, concept=concept, category=category,
                    flagged_positions=marked,
                )  # fmt: skip
        except AnswerInvalid:
            crowd.assignment_return(assignment=a, worker=worker)
            continue
        return True


@dataclass(frozen=True)
class StrategyScore:
    """One strategy's outcome on one campaign: answers spent and label accuracy."""

    strategy: str
    units: int
    answers: int
    correct_plurality: int
    correct_posterior: int

    @property
    def answers_per_unit(self) -> float:
        return self.answers / self.units if self.units else 0.0

    @property
    def accuracy_plurality(self) -> float:
        return self.correct_plurality / self.units if self.units else 0.0

    @property
    def accuracy_posterior(self) -> float:
        return self.correct_posterior / self.units if self.units else 0.0


def campaign_score(
    *, campaign: Campaign, strategy: str, truths: dict[int, UnitTruth] | None = None
) -> StrategyScore:
    """Label accuracy of ``campaign``'s answers against the demo world's ground truth, two ways:
    the reports' plurality label (``annotate.labels`` consensus over this campaign's answers)
    and the crowd's one-coin posterior label (``annotate.crowd.redundancy``)."""
    from annotate.crowd.concepts import concept_key
    from annotate.crowd.redundancy import task_answer_need
    from annotate.labels.aggregation import AnswerInput, consensus_from_answers

    truths = unit_truths(run=campaign.run) if truths is None else truths
    tasks = list(Task.objects.filter(campaign=campaign, is_gold=False).select_related("campaign"))
    by_task: dict[int, list[AnswerInput]] = defaultdict(list)
    answers = Answer.objects.filter(
        assignment__task__campaign=campaign,
        assignment__status__in=[Assignment.Status.SUBMITTED, Assignment.Status.APPROVED],
    ).values_list("pk", "assignment__task_id", "assignment__worker__pseudonym",
                  "concept_text", "category", "precision")  # fmt: skip
    for pk, task_id, worker, text, category, precision in answers:
        by_task[task_id].append(
            AnswerInput(pk, worker, concept_key(text), False, category, precision)
        )
    plural = posterior = spent = 0
    scored = [t for t in tasks if t.unit_id in truths]
    for task in scored:
        truth = concept_key(truths[task.unit_id].concept)
        consensus = consensus_from_answers(by_task[task.pk], min_precision=0.75, min_agreeing=2)
        plural += consensus is not None and consensus.concept == truth
        posterior += task_answer_need(task=task).label == truth
        spent += len(by_task[task.pk])
    return StrategyScore(strategy, len(scored), spent, plural, posterior)


# --- the in-memory replica: many seeds in seconds ---------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """Answers per unit: fixed (``max_answers`` None) or adaptive (min, max, target)."""

    name: str
    redundancy: int
    max_answers: int | None = None
    target_confidence: float = 0.9


def strategies_compared(*, fixed: list[int], adaptive: tuple[int, int, float]) -> list[Strategy]:
    """Each fixed redundancy, then adaptive (min, max, target), as ``simulate_crowd`` runs them."""
    low, high, target = adaptive
    return [Strategy(f"fixed {n}", n) for n in fixed] + [
        Strategy(f"adaptive {low}-{high} @ {target:g}", low, high, target)
    ]


def crowd_replica(
    *,
    campaign: Campaign,
    model: CrowdModel,
    strategy: Strategy | None = None,
    truths: dict[int, UnitTruth] | None = None,
    labels: dict[int, frozenset[str]] | None = None,
    views: dict[int, TaskView] | None = None,
) -> StrategyScore:
    """What ``crowd_simulate`` then ``campaign_score`` give, computed in memory: nothing is
    stored, so one seed takes a second where the services take minutes. It makes the same
    random draws in the same order, hands tasks out in the same fill order, applies the same
    control check and the crowd's own rules (``redundancy.answer_need`` and
    ``agreement_reliability``), so on the same campaign (its pk seeds the answers) it stores,
    answer for answer, what the services store (``test_simulated_crowd`` checks it). Campaigns
    with gold units, caps per worker or blocked workers are not replicated. ``strategy`` (default:
    the campaign's own numbers) replaces the campaign's redundancy settings."""
    from annotate.crowd.concepts import concept_keyer
    from annotate.crowd.redundancy import (
        NAMING_ALTERNATIVES,
        Vote,
        agreement_reliability,
        answer_need,
    )
    from annotate.labels.aggregation import AnswerInput, consensus_from_answers

    if campaign.gold_rate or campaign.max_tasks_per_worker or campaign.tasks.filter(is_gold=True):
        raise ValueError("the replica answers campaigns without gold units or per-worker caps")
    rules = Campaign(
        redundancy=strategy.redundancy if strategy else campaign.redundancy,
        max_answers=strategy.max_answers if strategy else campaign.max_answers,
        target_confidence=(strategy.target_confidence if strategy else campaign.target_confidence),
    )
    truths = unit_truths(run=campaign.run) if truths is None else truths
    task_units = dict(campaign.tasks.values_list("pk", "unit_id"))
    if views is None:
        labels = image_labels(run=campaign.run) if labels is None else labels
        views = {
            task.pk: _task_view(task, truths[task.unit_id], labels)
            for task in campaign.tasks.all()
            if task.unit_id in truths
        }
    key = concept_keyer()

    workers = [(w.pk, spam) for w, spam in simulated_workers(model=model)]
    rng = random.Random(f"answers:{model.seed}:{campaign.pk}")
    order_key = (
        (lambda t: (-len(answers[t]), t))
        if campaign.fill_order == Campaign.FillOrder.COMPLETE
        else (lambda t: (len(answers[t]), t))
    )
    # task -> [(worker, concept key, control failed, category, precision)]
    answers: dict[int, list[tuple[int, str, bool, str, float]]] = defaultdict(list)
    wanted = dict.fromkeys(task_units, rules.redundancy)
    held: dict[int, set[int]] = defaultdict(set)

    def need(task_id: int):
        rows = answers[task_id]
        mine = {w for w, *_ in rows}
        reliability = agreement_reliability(
            answers=[
                (w, t, k, failed, None)
                for t, others in answers.items()
                if t != task_id
                for w, k, failed, *_ in others
                if w in mine
            ],
            peers={t: [(w, k) for w, k, *_ in others] for t, others in answers.items()},
            worker_ids=sorted(mine),
        )
        votes = [Vote(w, k, reliability[w]) for w, k, failed, *_ in rows if not failed]
        return answer_need(
            campaign=rules, votes=votes, answers=len(rows), alternatives=NAMING_ALTERNATIVES
        )

    while True:
        order = list(workers)
        rng.shuffle(order)
        answered = 0
        for worker, spammer in order:
            task_id = None
            while task_id is None:  # as _answer_one: a unit without ground truth is given back
                free = [t for t in task_units if t not in held[worker] and len(answers[t]) < wanted[t]]  # fmt: skip
                if not free:
                    break
                taken = min(free, key=order_key)
                held[worker].add(taken)
                task_id = taken if taken in views else None
            if task_id is None:
                continue
            view, truth = views[task_id], truths[task_units[task_id]]
            concept, category, marked = simulated_answer(
                rng=rng, spammer=spammer, truth=truth, view=view, model=model
            )
            rng.uniform(20, 90)  # the active seconds crowd_simulate draws
            failed = any(p not in set(marked) for p in view.controls)
            if failed and not spammer:  # asked to look again, careful workers mark the controls
                marked, failed = sorted(set(marked) | set(view.controls)), False
            unmarked = sum(1 for p in view.unit_tiles if p not in set(marked))
            answers[task_id].append(
                (worker, key(concept), failed, category, unmarked / len(view.unit_tiles))
            )
            wanted[task_id] = need(task_id).wanted
            answered += 1
        if answered == 0:
            break
    plural = posterior = spent = 0
    for task_id in views:
        truth = key(truths[task_units[task_id]].concept)
        inputs = [
            AnswerInput(i, str(w), k, False, category, precision)
            for i, (w, k, _failed, category, precision) in enumerate(answers[task_id])
        ]
        consensus = consensus_from_answers(inputs, min_precision=0.75, min_agreeing=2)
        plural += consensus is not None and consensus.concept == truth
        posterior += need(task_id).label == truth
        spent += len(answers[task_id])
    name = strategy.name if strategy else "campaign"
    return StrategyScore(name, len(views), spent, plural, posterior)


def replica_compare(
    *,
    run: DissectionRun,
    layers: list[str] | None,
    model: CrowdModel,
    strategies: list[Strategy],
    seeds: list[int],
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, list[StrategyScore]]:
    """``crowd_replica`` of each strategy for each seed (the crowd ``model`` with that seed) on
    one simulated campaign over ``layers`` (made for its tasks, deleted afterwards): strategy
    name -> its scores, seed by seed."""
    from dataclasses import replace

    campaign = simulated_campaign_create(run=run, layers=layers, name="replica")
    try:
        truths = unit_truths(run=run)
        labels = image_labels(run=run)
        views = {
            task.pk: _task_view(task, truths[task.unit_id], labels)
            for task in campaign.tasks.all()
            if task.unit_id in truths
        }
        scores: dict[str, list[StrategyScore]] = {s.name: [] for s in strategies}
        for i, seed in enumerate(seeds):
            for strategy in strategies:
                scores[strategy.name].append(
                    crowd_replica(
                        campaign=campaign,
                        model=replace(model, seed=seed),
                        strategy=strategy,
                        truths=truths,
                        views=views,
                    )  # fmt: skip
                )
            if progress:
                progress("replica", i + 1, len(seeds))
    finally:
        campaign.delete()
    return scores


def simulated_campaign_create(
    *, run: DissectionRun, layers: list[str] | None = None, name: str, **parameters
) -> Campaign:
    """A live campaign for the simulated crowd over ``layers`` of a demo run (default all),
    sized like the demo's (every rendered top tile plus 3 controls, at most 60 tiles)."""
    from dissect.models import Layer

    known = list(Layer.objects.filter(run=run).order_by("order").values_list("name", flat=True))
    layers = [x for x in (layers or []) if x in known] or known
    tops = Counter(
        UnitImage.objects.filter(unit__layer__run=run, unit__layer__name__in=layers, kind="top")
        .exclude(tile_path="")
        .values_list("unit_id", flat=True)
    )
    most = max(tops.values(), default=57)
    campaign = crowd.campaign_create(
        run=run,
        layers=layers,
        name=f"SIMULATED: {name}",
        tiles_per_task=min(60, most + 3),
        instructions="Answered by simulated workers (annotate/demo/simulated_crowd.py).",
        **parameters,
    )
    return crowd.campaign_set_status(campaign=campaign, status=Campaign.Status.LIVE, actor=None)


def redundancy_compare(
    *,
    run: DissectionRun,
    layers: list[str] | None,
    model: CrowdModel,
    fixed: list[int],
    adaptive: tuple[int, int, float],
    keep: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[StrategyScore]:
    """One simulated campaign per strategy (each fixed redundancy, then adaptive (min, max,
    target)) on the same units with the same crowd; their scores, the adaptive one last. Unless
    ``keep``, the campaigns are deleted afterwards and the run's labels recomputed without them."""
    from annotate.labels.aggregation import run_labels_recompute

    scores, made = [], []
    try:
        for strategy in strategies_compared(fixed=fixed, adaptive=adaptive):
            label = strategy.name
            parameters = {
                "redundancy": strategy.redundancy,
                "max_answers": strategy.max_answers,
                "target_confidence": strategy.target_confidence,
            }
            campaign = simulated_campaign_create(run=run, layers=layers, name=label, **parameters)
            made.append(campaign)
            crowd_simulate(
                campaign=campaign,
                model=model,
                progress=(lambda d, t, label=label: progress(label, d, t)) if progress else None,
            )
            scores.append(campaign_score(campaign=campaign, strategy=label))
    finally:
        if not keep and made:
            for campaign in made:
                campaign.delete()
            run_labels_recompute(run_id=run.pk)
    return scores
