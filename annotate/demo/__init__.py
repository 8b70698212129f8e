"""The README's demo, end to end on whatever backend is configured (the embedded default by default).

``demo_setup`` generates and dissects the demo world, opens a live campaign per demo network,
lets the SIMULATED crowd (``annotate.demo.simulated_crowd``) answer the demo-places campaign so
the reports have crowd labels and detectors, and imports the ICLR'15 authors' answers. The
demo-objects campaign is left to people (the demo accounts).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from annotate.crowd.models import Campaign
from core.roles import ADMIN, ANNOTATOR, RESEARCHER, user_create

# Demo accounts: the password is the user name (printed by the command; never use them in production).
DEMO_USERS = {"demo-annotator": ANNOTATOR, "demo-researcher": RESEARCHER, "demo-admin": ADMIN}
# The demo network whose campaign the simulated crowd answers.
SIMULATED_NETWORK = "demo-places"


def demo_users_create() -> list[str]:
    for username, role in DEMO_USERS.items():
        user_create(username=username, role=role, password=username)
    return list(DEMO_USERS)


@dataclass
class DemoOutcome:
    """What the demo made: its live campaigns, the simulated answers stored (0 when they were
    there already) and the ICLR'15 networks imported now."""

    campaigns: list[Campaign]
    simulated_answers: int = 0
    imported: list[str] = field(default_factory=list)


def demo_setup(
    *,
    n_images: int,
    top_k: int = 60,
    simulate: bool = True,
    import_iclr15: bool = True,
    progress: Callable[[int, int], None] | None = None,
    crowd_progress: Callable[[int, int], None] | None = None,
) -> DemoOutcome:
    """Generate and dissect the demo world, open one live campaign per demo run (reused if
    present), let the simulated crowd answer the demo-places campaign and import the ICLR'15
    answers (each skipped when done before)."""
    from annotate.crowd.services import demo_campaign_create
    from dissect.services import demo_runs_create

    demo_users_create()
    campaigns = []
    for run in demo_runs_create(n_images=n_images, top_k=top_k, progress=progress):
        existing = Campaign.objects.filter(run=run).order_by("created_at").first()
        campaigns.append(existing or demo_campaign_create(run=run, layers=list(run.layers)))
    outcome = DemoOutcome(campaigns)
    if simulate:
        outcome.simulated_answers = demo_crowd_answer(campaigns=campaigns, progress=crowd_progress)
    if import_iclr15:
        outcome.imported = demo_iclr15_import()
    return outcome


def demo_crowd_answer(
    *, campaigns: list[Campaign], progress: Callable[[int, int], None] | None = None
) -> int:
    """The simulated crowd answers the demo-places campaign until it is complete (once: a
    campaign with simulated answers is left as it is). Returns the answers stored."""
    from annotate.crowd.models import Assignment, Worker
    from annotate.demo.simulated_crowd import CrowdModel, crowd_simulate

    stored = 0
    for campaign in campaigns:
        if campaign.run.network.name != SIMULATED_NETWORK:
            continue
        answered = Assignment.objects.filter(
            task__campaign=campaign, worker__source=Worker.Source.SIMULATED
        )
        if answered.exists():
            continue
        stored += crowd_simulate(campaign=campaign, model=CrowdModel(), progress=progress).answers
    return stored


def demo_iclr15_import() -> list[str]:
    """Import the ICLR'15 files packaged with CrowdDissect (networks already imported are kept)."""
    from annotate.labels.iclr15 import network_name_from_path, packaged_paths
    from annotate.labels.importers import iclr15_import
    from dissect.models import Network

    imported = []
    for path in packaged_paths():
        name = network_name_from_path(path)
        if not Network.objects.filter(name=name).exists():
            iclr15_import(path=path)
            imported.append(name)
    return imported
