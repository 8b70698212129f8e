"""The names the UI uses: Hit becomes Task and Response becomes Answer (tables, the assignment's
field and the related names follow); constraints and indexes get names that say so."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("crowd", "0001_initial"),
        ("core", "0001_initial"),
        ("dissect", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="hit", name="hit_unique_unit_per_campaign"),
        migrations.RemoveConstraint(model_name="response", name="response_precision_0_1"),
        migrations.RemoveConstraint(model_name="assignment", name="assignment_unique_worker_per_hit"),
        migrations.RemoveIndex(model_name="assignment", name="annotate_as_hit_id_3aa65c_idx"),
        migrations.RenameModel(old_name="Hit", new_name="Task"),
        migrations.RenameModel(old_name="Response", new_name="Answer"),
        migrations.RenameField(model_name="assignment", old_name="hit", new_name="task"),
        migrations.AlterField(
            model_name="task",
            name="campaign",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="tasks", to="crowd.campaign"
            ),
        ),
        migrations.AlterField(
            model_name="task",
            name="unit",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="tasks", to="dissect.unit"
            ),
        ),
        migrations.AlterField(
            model_name="answer",
            name="assignment",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="answer", to="crowd.assignment"
            ),
        ),
        migrations.AlterField(
            model_name="answer",
            name="concept",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                related_name="answers", to="core.concept",
            ),
        ),
        migrations.AddConstraint(
            model_name="task",
            constraint=models.UniqueConstraint(
                fields=("campaign", "unit"), name="task_unique_unit_per_campaign"
            ),
        ),
        migrations.AddConstraint(
            model_name="answer",
            constraint=models.CheckConstraint(
                condition=models.Q(("precision__gte", 0), ("precision__lte", 1)),
                name="answer_precision_0_1",
            ),
        ),
        migrations.AddConstraint(
            model_name="assignment",
            constraint=models.UniqueConstraint(
                fields=("task", "worker"), name="assignment_unique_worker_per_task"
            ),
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(fields=["task", "status"], name="crowd_assig_task_id_idx"),
        ),
        migrations.RenameIndex(
            model_name="assignment",
            new_name="crowd_assig_worker_status_idx",
            old_name="annotate_as_worker__947dfe_idx",
        ),
    ]
