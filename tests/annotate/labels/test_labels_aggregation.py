"""Per-unit aggregation: the pure consensus rules and the UnitLabel service on the database."""

import pytest

from annotate.labels.aggregation import (
    AnswerInput,
    concept_for_text,
    concept_merge,
    concept_unmerge,
    consensus_from_answers,
    unit_label_recompute,
    unit_labels_recompute,
)


def answer(rid, concept, category="object", precision=0.8, known=True, worker=None, **kw):
    return AnswerInput(rid, worker or f"w{rid}", concept, known, category, precision, **kw)


def consensus(answers, **kw):
    return consensus_from_answers(answers, min_precision=0.75, min_agreeing=2, **kw)


def test_plurality_concept_precision_agreement_detector():
    result = consensus(
        [
            answer(1, "dog", precision=0.9),
            answer(2, "dog", precision=0.8),
            answer(3, "cat", "part", 0.7),
        ]
    )
    assert result.concept == "dog" and result.category == "object"
    assert result.precision == pytest.approx(0.8)
    assert result.agreement == pytest.approx(2 / 3) and result.support == 2
    assert result.is_detector and result.answer_count == 3
    assert result.details["tie_break"] is None
    assert result.details["votes"] == {"dog": 2, "cat": 1}


def test_ties_are_broken_by_the_documented_rules_in_order():
    # Mean precision first.
    r = consensus([answer(1, "cat", precision=0.5), answer(2, "dog", precision=0.9)])
    assert (r.concept, r.details["tie_break"]) == ("dog", "mean precision")
    # Then a vocabulary concept before free text.
    r = consensus([answer(1, "zorb", known=False), answer(2, "dog")])
    assert (r.concept, r.details["tie_break"]) == ("dog", "vocabulary concept")
    # Then the earliest answer.
    r = consensus([answer(5, "cat"), answer(2, "dog")])
    assert (r.concept, r.details["tie_break"]) == ("dog", "earliest answer")
    # One answer each, no consensus: never a detector however precise.
    r = consensus([answer(1, "cat", precision=1.0), answer(2, "dog", precision=1.0)])
    assert not r.is_detector


def test_category_ties_prefer_the_consensus_concepts_answers_then_vocabulary():
    r = consensus(
        [
            answer(1, "dog", "object"),
            answer(2, "dog", "part"),
            answer(3, "sky", "region"),
            answer(4, "sky", "object"),
            answer(5, "dog", "scene"),
            answer(6, "x", "part"),
        ]
    )
    # object 2, part 2: the answers naming "dog" used object, part and scene once each -> tie again
    # -> vocabulary category of "dog" (object).
    assert r.concept == "dog"
    assert r.category == "object"
    r = consensus(
        [
            answer(1, "dog", "part"),
            answer(2, "dog", "part"),
            answer(3, "y", "object"),
            answer(4, "z", "object"),
        ]
    )
    assert r.category == "part"  # 2 vs 2, and the consensus concept's answers said part


def test_tile_precision_is_the_share_a_majority_kept():
    shown = (1, 2, 3, 4)
    r = consensus(
        [
            answer(1, "dog", shown_tiles=shown, flagged_tiles=frozenset({1, 2})),
            answer(2, "dog", shown_tiles=shown, flagged_tiles=frozenset({1})),
            answer(3, "dog", shown_tiles=shown, flagged_tiles=frozenset()),
        ]
    )
    # Tile 1 flagged by 2 of 3 (dropped); tile 2 by 1 of 3 (kept); 3 and 4 kept -> 3/4.
    assert r.tile_precision == pytest.approx(0.75)
    assert consensus([answer(1, "dog")]).tile_precision is None
    assert consensus([]) is None


def test_unit_label_recompute_counts_only_submitted_and_approved_answers(crowd_world):
    world = crowd_world(
        [
            (0, "a", "Dogs", "object", 0.9, [], "approved"),
            (0, "b", "dog", "object", 0.8, [0], "submitted"),
            (0, "c", "cat", "part", 0.1, [0, 1, 2], "rejected"),
            (1, "a", "Striped", "material", 0.5, [], "submitted"),
        ]
    )
    unit0, unit1, unit2 = world["units"]
    label = unit_label_recompute(unit_id=unit0.pk)
    assert label.concept_text == "dog" and label.concept.name == "dog"
    assert label.answer_count == 2 and label.is_detector
    assert label.precision == pytest.approx(0.85)
    # 4 top tiles shown (the control is excluded); tile 0 kept by 1 of 2 answers, which is not a
    # majority -> 3 of 4 tiles kept.
    assert label.tile_precision == pytest.approx(0.75)
    again = unit_label_recompute(unit_id=unit0.pk)
    assert (again.pk, again.precision, again.concept_text) == (label.pk, label.precision, "dog")
    assert not unit_label_recompute(unit_id=unit1.pk).is_detector
    assert unit_label_recompute(unit_id=unit2.pk) is None


def test_labels_disappear_when_their_answers_are_rejected(crowd_world):
    from annotate.crowd.models import Assignment
    from annotate.labels.models import UnitLabel

    world = crowd_world([(0, "a", "dog", "object", 0.9, [], "submitted")])
    unit = world["units"][0]
    assert unit_label_recompute(unit_id=unit.pk) is not None
    Assignment.objects.update(status="rejected")
    assert unit_label_recompute(unit_id=unit.pk) is None
    assert not UnitLabel.objects.filter(unit=unit).exists()


def test_concept_merge_is_stored_applied_audited_and_undoable(crowd_world):
    from annotate.crowd.models import Answer
    from annotate.labels.models import UnitLabel
    from core.models import AuditEvent, Concept

    world = crowd_world(
        [
            (0, "a", "doggo", "object", 0.9, [], "approved"),
            (0, "b", "pupper", "object", 0.9, [], "approved"),
            (0, "c", "zebra", "object", 0.5, [], "approved"),
        ]
    )
    for response in Answer.objects.all():
        response.concept = concept_for_text(text=response.concept_text)
        response.save()
    unit = world["units"][0]
    unit_labels_recompute(unit_ids=[unit.pk])
    assert UnitLabel.objects.get(unit=unit).is_detector is False  # three different concepts
    dog = concept_for_text(text="dog")
    affected = concept_merge(source=Concept.objects.get(name="doggo"), target=dog)
    concept_merge(source=Concept.objects.get(name="pupper"), target=dog)
    assert affected == [unit.pk]
    label = UnitLabel.objects.get(unit=unit)
    assert (label.concept_text, label.details["support"]) == ("dog", 2)
    assert label.is_detector and label.agreement == pytest.approx(2 / 3)
    assert AuditEvent.objects.filter(action="concept.merge").count() == 2
    # Merging a concept into one merged into it would be a cycle.
    with pytest.raises(ValueError, match="cycle"):
        concept_merge(
            source=Concept.objects.get(name="dog"), target=Concept.objects.get(name="doggo")
        )
    concept_unmerge(concept=Concept.objects.get(name="pupper"))
    assert Concept.objects.get(name="pupper").merged_into is None
    label = UnitLabel.objects.get(unit=unit)
    assert label.agreement == pytest.approx(1 / 3) and not label.is_detector


def test_recompute_task_is_thin_and_idempotent(crowd_world):
    from annotate.labels.models import UnitLabel
    from annotate.labels.tasks import recompute_run_labels, recompute_unit_label

    world = crowd_world(
        [
            (0, "a", "sky", "region", 0.9, [], "submitted"),
            (0, "b", "blue sky", "region", 0.8, [], "submitted"),
        ]
    )
    assert recompute_unit_label.run(world["units"][0].pk) is True
    assert recompute_unit_label.run(world["units"][0].pk) is True
    assert recompute_run_labels.run(world["run"].pk) == 1
    label = UnitLabel.objects.get()
    assert label.concept_text == "sky" and label.category == "region" and label.is_detector
    from config.celery import app

    for task in (recompute_unit_label, recompute_run_labels):
        assert app.amqp.router.route({}, task.name)["queue"].name == "cpu"


def test_run_crowd_model_stores_its_verdict_next_to_the_plurality(crowd_world):
    from annotate.labels.aggregation import run_labels_recompute
    from annotate.labels.models import UnitLabel

    world = crowd_world(
        [
            (0, "a", "dog", "object", 0.75, [0], "approved"),
            (0, "b", "dog", "object", 0.75, [0], "approved"),
            (0, "c", "cat", "part", 0.25, [0, 1, 2], "approved"),
            (1, "a", "sky", "region", 1.0, [], "approved"),
            (1, "b", "sky", "region", 0.75, [3], "approved"),
        ]
    )
    assert run_labels_recompute(run_id=world["run"].pk) == 2
    first, second = UnitLabel.objects.order_by("unit__index")
    assert first.details["model"]["category"] == "object"
    assert second.details["model"]["category"] == "region"
    # Tile 0 of unit 0 was flagged by everybody: the tile-flag model drops it.
    assert first.details["model"]["tile_precision"] == pytest.approx(0.75)
    assert second.details["model"]["tile_precision"] == pytest.approx(1.0)
    assert run_labels_recompute(run_id=world["run"].pk, crowd_model=None) == 2
