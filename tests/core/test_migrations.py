"""The move of the models into core, crowd and labels keeps every row: migrate a database from the
schema before the move, with rows in it, to the current one, and read the rows back."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("annotate", "0001_initial"), ("dissect", "0001_initial")]


@pytest.mark.django_db(transaction=True)
def test_rows_survive_the_move_to_their_apps():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    network = old.get_model("dissect", "Network").objects.create(name="n", arch="alexnet")
    image_set = old.get_model("dissect", "ImageSet").objects.create(name="s", root="/tmp")
    run = old.get_model("dissect", "DissectionRun").objects.create(
        network=network, image_set=image_set, layers=["conv5"]
    )
    layer = old.get_model("dissect", "Layer").objects.create(run=run, name="conv5", order=0)
    unit = old.get_model("dissect", "Unit").objects.create(layer=layer, index=3)
    concept = old.get_model("annotate", "Concept").objects.create(name="tree")
    campaign = old.get_model("annotate", "Campaign").objects.create(name="c", run=run)
    hit = old.get_model("annotate", "Hit").objects.create(campaign=campaign, unit=unit)
    worker = old.get_model("annotate", "Worker").objects.create(pseudonym="w1")
    assignment = old.get_model("annotate", "Assignment").objects.create(hit=hit, worker=worker)
    old.get_model("annotate", "Response").objects.create(
        assignment=assignment, concept_text="Trees", concept=concept, category="object",
        precision=0.9,
    )  # fmt: skip
    old.get_model("annotate", "UnitLabel").objects.create(unit=unit, concept_text="tree")
    old.get_model("annotate", "AuditEvent").objects.create(
        action="campaign.create", target_type="annotate.campaign", target_id=str(campaign.pk)
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    new = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps

    Task, Answer = new.get_model("crowd", "Task"), new.get_model("crowd", "Answer")
    task = Task.objects.get(pk=hit.pk)
    assert (task.campaign_id, task.unit_id) == (campaign.pk, unit.pk)
    moved = new.get_model("crowd", "Assignment").objects.get(pk=assignment.pk)
    assert (moved.task_id, moved.worker_id) == (hit.pk, worker.pk)
    answer = Answer.objects.get(assignment_id=assignment.pk)
    assert (answer.concept_text, answer.concept.name, answer.precision) == ("Trees", "tree", 0.9)
    assert new.get_model("labels", "UnitLabel").objects.get(unit_id=unit.pk).concept_text == "tree"
    event = new.get_model("core", "AuditEvent").objects.get()
    assert (event.action, event.target_type) == ("campaign.create", "crowd.campaign")
