"""Move the models to the apps of their layer without touching a row: core (Concept, AuditEvent),
crowd (Worker, Campaign, Hit, Assignment, Response) and labels (UnitLabel, Export).

The database keeps every table and only renames it to its new app's name; Django's state forgets
the models here, and the new apps' 0001 migrations declare them (state only)."""

from django.db import migrations

MOVES = [  # (model, new table), referencing models first so the state never dangles
    ("response", "crowd_response"),
    ("assignment", "crowd_assignment"),
    ("hit", "crowd_hit"),
    ("campaign", "crowd_campaign"),
    ("worker", "crowd_worker"),
    ("unitlabel", "labels_unitlabel"),
    ("export", "labels_export"),
    ("auditevent", "core_auditevent"),
    ("concept", "core_concept"),
]

# Audit rows name their target by "app.model": follow the move.
TARGET_TYPES = {
    "annotate.concept": "core.concept",
    "annotate.auditevent": "core.auditevent",
    "annotate.worker": "crowd.worker",
    "annotate.campaign": "crowd.campaign",
    "annotate.hit": "crowd.hit",
    "annotate.assignment": "crowd.assignment",
    "annotate.response": "crowd.response",
    "annotate.unitlabel": "labels.unitlabel",
    "annotate.export": "labels.export",
}


def retarget_audit(apps, schema_editor, mapping=TARGET_TYPES):
    AuditEvent = apps.get_model("annotate", "AuditEvent")
    for old, new in mapping.items():
        AuditEvent.objects.filter(target_type=old).update(target_type=new)


def untarget_audit(apps, schema_editor):
    retarget_audit(apps, schema_editor, {new: old for old, new in TARGET_TYPES.items()})


class Migration(migrations.Migration):
    dependencies = [("annotate", "0001_initial")]

    operations = [
        migrations.RunPython(retarget_audit, untarget_audit),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name=model, table=table) for model, table in MOVES
            ],
            state_operations=[migrations.DeleteModel(name=model) for model, _ in MOVES],
        ),
    ]
