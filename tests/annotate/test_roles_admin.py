"""Roles, the create_user command, and what each role may do in the admin."""

import pytest
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.models import AuditAction
from core.roles import user_role
from tests import factories

pytestmark = pytest.mark.django_db

# One saved object per registered model, so change pages render with real rows.
SAMPLES = {
    "network": factories.NetworkFactory,
    "imageset": factories.ImageSetFactory,
    "image": factories.ImageFactory,
    "dissectionrun": factories.RunFactory,
    "layer": factories.LayerFactory,
    "unit": factories.UnitFactory,
    "unitimage": factories.UnitImageFactory,
    "worker": factories.WorkerFactory,
    "campaign": factories.CampaignFactory,
    "task": factories.TaskFactory,
    "assignment": factories.AssignmentFactory,
}


def project_models():
    return [m for m in admin.site._registry if m._meta.app_label in {"dissect", "annotate"}]


def test_every_model_is_registered_in_the_admin():
    from django.apps import apps

    ours = {m for m in apps.get_models() if m._meta.app_label in {"dissect", "annotate"}}
    assert ours == set(project_models())


def test_admin_pages_render_for_every_model(client, make_user):
    client.force_login(make_user("admin"))
    for model in project_models():
        name = model._meta.model_name
        obj = SAMPLES[name]() if name in SAMPLES else None
        base = f"admin:{model._meta.app_label}_{name}"
        response = client.get(reverse(f"{base}_changelist"), {"q": "x"})
        assert response.status_code == 200, name
        if obj is not None:
            assert client.get(reverse(f"{base}_change", args=[obj.pk])).status_code == 200, name


def test_role_permissions_in_the_admin(client, make_user):
    campaign = factories.CampaignFactory()
    changelist = reverse("admin:crowd_campaign_changelist")
    delete = reverse("admin:crowd_campaign_delete", args=[campaign.pk])

    client.force_login(make_user("annotator"))
    assert client.get(changelist).status_code == 302  # not staff: sent to the login page

    client.force_login(make_user("researcher"))
    assert client.get(changelist).status_code == 200
    assert client.get(reverse("admin:crowd_campaign_change", args=[campaign.pk])).status_code == 200
    assert client.get(delete).status_code == 403  # researchers never delete
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert client.get(reverse("admin:labels_export_add")).status_code == 403

    client.force_login(make_user("admin"))
    assert client.get(delete).status_code == 200
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200


def test_audit_events_cannot_be_changed_even_by_admins(client, make_user):
    from core.audit import audit_record

    campaign = factories.CampaignFactory()
    event = audit_record(actor=None, action=AuditAction.CAMPAIGN_STATUS, target=campaign)
    assert (event.target_type, event.target_id) == ("crowd.campaign", str(campaign.pk))
    client.force_login(make_user("admin"))
    response = client.post(
        reverse("admin:core_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    assert response.status_code == 403


def test_create_user_command_gives_one_role(django_user_model):
    call_command("create_user", "ana", "--role", "annotator", "--password", "s3cret-pass")
    ana = django_user_model.objects.get(username="ana")
    assert user_role(ana) == "annotator" and not ana.is_staff and ana.check_password("s3cret-pass")
    call_command("create_user", "ana", "--role", "researcher", "--password", "s3cret-pass")
    ana.refresh_from_db()
    assert user_role(ana) == "researcher" and ana.is_staff
    assert list(ana.groups.values_list("name", flat=True)) == ["researcher"]
    with pytest.raises(CommandError, match="--password"):
        call_command("create_user", "bob", "--role", "admin", "--password", "")


def test_login_and_logout_pages(client, make_user):
    user = make_user("annotator", "lena")
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="username"' in page.content
    response = client.post(reverse("login"), {"username": "lena", "password": "pw-lena"})
    assert response.status_code == 302
    assert client.get(reverse("home")).context["user"] == user
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302


def test_navigation_shows_each_role_only_what_it_may_open(client, make_user):
    client.force_login(make_user("annotator"))
    page = client.get(reverse("home")).content.decode()
    assert reverse("crowd:annotator-home") in page
    for hidden in ("crowd:campaign-list", "labels:index", "dissect:run-list", "explain:page"):
        assert f'href="{reverse(hidden)}"' not in page, hidden
    client.force_login(make_user("researcher"))
    page = client.get(reverse("home")).content.decode()
    for shown in ("crowd:campaign-list", "labels:index", "dissect:run-list", "explain:page"):
        assert f'href="{reverse(shown)}"' in page, shown
