"""Crowd models over (task, worker, label) answers: majority vote and Dawid-Skene variants.

Thin wrappers over crowd-kit (Apache-2.0, Toloka) so that callers pass plain tuples and get plain
dicts back, with a worker skill estimate from every model:
- "mv": majority vote (skill = share of a worker's answers that match the majority);
- "ds": Dawid-Skene with a full confusion matrix per worker (skill = expected accuracy under the
  estimated class priors); needs many answers per worker to fit its K x K matrices;
- "one_coin_ds": Dawid-Skene with one accuracy per worker, errors spread evenly over the other
  classes (skill = that accuracy); the default: on simulated crowds with 30% spammers it recovers
  the truth clearly better than majority vote and better than full DS (see docs/reports.md);
- "glad": GLAD (worker ability and task difficulty; skill = the worker's ability alpha).
crowd-kit pulls pandas, so it is imported inside the functions (web requests never pay for it).
"""

import warnings
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

METHODS: tuple[str, ...] = ("mv", "ds", "one_coin_ds", "glad")
DEFAULT_METHOD = "one_coin_ds"
METHOD_LABELS = {
    "mv": "majority vote",
    "ds": "Dawid-Skene (full confusion matrices)",
    "one_coin_ds": "Dawid-Skene (one-coin)",
    "glad": "GLAD",
}

Answer = tuple[Hashable, Hashable, Hashable]  # (task, worker, label)


@dataclass(frozen=True)
class CrowdEstimate:
    """A crowd model's output: a label and its posterior per task, a skill per worker."""

    method: str
    labels: dict[Hashable, Hashable]
    confidence: dict[Hashable, float]
    worker_skill: dict[Hashable, float]


def _frame(answers: Iterable[Answer]):
    """A crowd-kit frame with integer codes for tasks, workers and labels, plus the code tables.

    Codes keep pandas from reading tuple keys (unit, tile) as multi-index lookups.
    """
    import pandas as pd

    tasks: dict[Hashable, int] = {}
    workers: dict[Hashable, int] = {}
    label_codes: dict[Hashable, int] = {}
    rows = [
        (
            tasks.setdefault(t, len(tasks)),
            workers.setdefault(w, len(workers)),
            label_codes.setdefault(lab, len(label_codes)),
        )
        for t, w, lab in answers
    ]
    frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
    # Models assume one label per (task, worker): a repeated answer keeps the last one.
    frame = frame.drop_duplicates(subset=["task", "worker"], keep="last").reset_index(drop=True)
    return frame, list(tasks), list(workers), list(label_codes)


def _ds_skills(model) -> dict[Hashable, float]:
    errors, priors = model.errors_, model.priors_
    skills: dict[Hashable, float] = {}
    for (worker, observed), row in errors.iterrows():
        if observed in row.index and observed in priors.index:
            skills[worker] = skills.get(worker, 0.0) + float(priors[observed] * row[observed])
    return skills


def _fit(frame, *, method: str, n_iter: int, tol: float):
    """Fit one crowd-kit model; returns (model, {worker code: skill})."""
    from crowdkit.aggregation import GLAD, DawidSkene, MajorityVote, OneCoinDawidSkene

    if method == "mv":
        model = MajorityVote().fit(frame)
        return model, {w: float(s) for w, s in model.skills_.items()}
    if method == "ds":
        model = DawidSkene(n_iter=n_iter, tol=tol).fit(frame)
        return model, _ds_skills(model)
    if method == "one_coin_ds":
        model = OneCoinDawidSkene(n_iter=n_iter, tol=tol).fit(frame)
        return model, {w: float(s) for w, s in model.skills_.items()}
    model = GLAD(n_iter=n_iter, tol=tol, silent=True).fit(frame)
    return model, {w: float(a) for w, a in model.alphas_.items()}


def aggregate(
    *,
    answers: Sequence[Answer],
    method: str = DEFAULT_METHOD,
    n_iter: int = 100,
    tol: float = 1e-5,
) -> CrowdEstimate:
    """Fit crowd model `method` (one of METHODS) on `answers` = [(task, worker, label), ...]."""
    if method not in METHODS:
        raise ValueError(f"unknown crowd model {method!r}; choose one of {', '.join(METHODS)}")
    if not answers:
        return CrowdEstimate(method, {}, {}, {})
    frame, task_keys, worker_keys, label_keys = _frame(answers)
    with warnings.catch_warnings():
        # crowd-kit 1.4 uses pandas' inplace= keywords, deprecated in pandas 3: noise, not ours.
        warnings.simplefilter("ignore")
        model, skills = _fit(frame, method=method, n_iter=n_iter, tol=tol)
    probas = model.probas_
    labels, confidence = {}, {}
    for task, label in model.labels_.items():
        labels[task_keys[int(task)]] = label_keys[int(label)]
        confidence[task_keys[int(task)]] = float(probas.loc[task, label])
    return CrowdEstimate(
        method, labels, confidence, {worker_keys[int(w)]: s for w, s in skills.items()}
    )


def tile_flag_answers(
    responses: Iterable[tuple[Hashable, Hashable, Iterable[Hashable], Iterable[Hashable]]],
) -> list[Answer]:
    """Turn tile flags into binary answers for `aggregate`.

    `responses` yields (unit, worker, tiles_shown, tiles_flagged); every shown tile becomes one task
    (unit, tile) with label "flagged" or "kept".
    """
    out: list[Answer] = []
    for unit, worker, shown, flagged in responses:
        flagged_set = set(flagged)
        for tile in shown:
            out.append(((unit, tile), worker, "flagged" if tile in flagged_set else "kept"))
    return out


def majority_vote_expected_accuracy(
    *, answers: Sequence[Answer], truth: dict[Hashable, Hashable]
) -> float:
    """Accuracy of majority vote with ties broken uniformly at random, as an exact expectation.

    A fair baseline: a fixed tie rule (first label in sort order) would favour whichever class
    happens to sort first.
    """
    from collections import Counter, defaultdict

    votes: dict[Hashable, Counter] = defaultdict(Counter)
    for task, _worker, label in answers:
        votes[task][label] += 1
    total = 0.0
    for task, true_label in truth.items():
        counts = votes.get(task)
        if not counts:
            continue
        top = max(counts.values())
        tied = [label for label, c in counts.items() if c == top]
        total += (true_label in tied) / len(tied)
    return total / len(truth) if truth else 0.0
