"""The README's demo, end to end on whatever backend is configured (the embedded default by default)."""

from collections.abc import Callable

from annotate.crowd.models import Campaign
from core.roles import ADMIN, ANNOTATOR, RESEARCHER, user_create

# Demo accounts: the password is the user name (printed by the command; never use them in production).
DEMO_USERS = {"demo-annotator": ANNOTATOR, "demo-researcher": RESEARCHER, "demo-admin": ADMIN}


def demo_users_create() -> list[str]:
    for username, role in DEMO_USERS.items():
        user_create(username=username, role=role, password=username)
    return list(DEMO_USERS)


def demo_setup(
    *, n_images: int, top_k: int = 60, progress: Callable[[int, int], None] | None = None
) -> list[Campaign]:
    """Generate and dissect the demo world, then open one live campaign per demo run (reused if present)."""
    from annotate.crowd.services import demo_campaign_create
    from dissect.services import demo_runs_create

    demo_users_create()
    campaigns = []
    for run in demo_runs_create(n_images=n_images, top_k=top_k, progress=progress):
        existing = Campaign.objects.filter(run=run).order_by("created_at").first()
        campaigns.append(existing or demo_campaign_create(run=run, layers=list(run.layers)))
    return campaigns
