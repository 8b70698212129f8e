import logging
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand

from annotate.demo import DEMO_USERS, SIMULATED_NETWORK, demo_setup


class Command(BaseCommand):
    help = (
        "Run the whole demo: migrate, generate the demo world, dissect the two demo networks, open a "
        "live labeling campaign per network, let a SIMULATED crowd answer the demo-places one (so "
        "the reports show crowd labels and detectors), import the ICLR'15 authors' answers, create "
        "demo accounts; with --serve, start the web app."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--images", type=int, default=1000, help="Demo images to generate (default 1000)."
        )
        parser.add_argument(
            "--top-k",
            type=int,
            default=60,
            help="Top images per unit (default 60, as in the paper).",
        )
        parser.add_argument(
            "--no-simulated-crowd",
            action="store_true",
            help="Leave every campaign to people (no simulated answers, fewer reports).",
        )
        parser.add_argument(
            "--no-iclr15", action="store_true", help="Skip importing the ICLR'15 answers."
        )
        parser.add_argument("--serve", action="store_true", help="Start the web app when done.")
        parser.add_argument("--addrport", default="127.0.0.1:8000", help="Where --serve listens.")

    def handle(self, *args, images, top_k, serve, addrport, **options):
        from tqdm import tqdm

        started = time.monotonic()
        # Eager tasks (every answer's label recompute) would each log a line between the bars.
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        call_command("migrate", interactive=False, verbosity=0)
        bar = tqdm(total=0, unit="answer", desc="simulated crowd", leave=False)

        def progress(done: int, total: int) -> None:
            bar.total, bar.n = total, done
            bar.refresh()

        try:
            outcome = demo_setup(
                n_images=images,
                top_k=top_k,
                simulate=not options["no_simulated_crowd"],
                import_iclr15=not options["no_iclr15"],
                crowd_progress=progress,
            )
        finally:
            bar.close()
        self.stdout.write(
            self.style.SUCCESS(f"\nDemo ready in {time.monotonic() - started:.0f} s.")
        )
        for campaign in outcome.campaigns:
            simulated = campaign.run.network.name == SIMULATED_NETWORK
            self.stdout.write(
                f"  campaign {campaign.pk} '{campaign.name}' on run {campaign.run_id} "
                f"({campaign.run.network.name}, layers {', '.join(campaign.layers)}): "
                f"{campaign.tasks.count()} tasks, {campaign.status}"
                + (" — answered by SIMULATED workers (sim-…)" if simulated else " — yours to label")
            )
        if outcome.simulated_answers:
            self.stdout.write(f"  {outcome.simulated_answers} simulated answers stored.")
        if outcome.imported:
            self.stdout.write(f"  ICLR'15 answers imported: {', '.join(outcome.imported)}.")
        self.stdout.write(f"\nOpen http://{addrport}/ and log in (password = user name):")
        for username, role in DEMO_USERS.items():
            self.stdout.write(f"  {username:<16} {role}")
        self.stdout.write("Reports: /reports/ (crowd labels, detectors per layer, Fig. 9 and 10).")
        if serve:
            call_command("runserver", addrport, use_reloader=False)
