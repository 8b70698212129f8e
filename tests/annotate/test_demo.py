"""The README's start command: `manage.py demo` ends with live tasks and the demo accounts."""

import pytest
from django.core.management import call_command

from annotate.crowd import services as crowd
from annotate.crowd.models import Campaign
from core.roles import user_role


@pytest.mark.django_db(transaction=True)
def test_demo_command_ends_with_live_tasks_and_is_idempotent(settings, tmp_path, django_user_model):
    settings.DATA_DIR = tmp_path / "data"
    call_command("demo", "--images", "24", "--top-k", "12")

    campaigns = list(Campaign.objects.order_by("pk"))
    assert [c.run.network.name for c in campaigns] == ["demo-places", "demo-objects"]
    assert all(c.status == Campaign.Status.LIVE and c.tasks.count() > 0 for c in campaigns)
    users = {u.username: user_role(u) for u in django_user_model.objects.all()}
    assert users == {
        "demo-annotator": "annotator",
        "demo-researcher": "researcher",
        "demo-admin": "admin",
    }
    annotator = django_user_model.objects.get(username="demo-annotator")
    assert annotator.check_password("demo-annotator")
    worker = crowd.worker_for_user(user=annotator)
    assignment = crowd.assignment_next(worker=worker, campaign=campaigns[0])
    assert assignment.task.campaign == campaigns[0]

    call_command("demo", "--images", "24", "--top-k", "12")  # a second run reuses everything
    assert list(Campaign.objects.order_by("pk")) == campaigns
