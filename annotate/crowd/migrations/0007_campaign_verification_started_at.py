from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("crowd", "0006_verification_build"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="verification_started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
