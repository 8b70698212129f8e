from django.core.management import call_command
from django.core.management.base import BaseCommand

from annotate.demo import DEMO_USERS, demo_setup


class Command(BaseCommand):
    help = (
        "Run the whole demo: migrate, generate the demo world, dissect the two demo networks, open a "
        "live labeling campaign, create demo accounts; with --serve, start the web app."
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
        parser.add_argument("--serve", action="store_true", help="Start the web app when done.")
        parser.add_argument("--addrport", default="127.0.0.1:8000", help="Where --serve listens.")

    def handle(self, *args, images, top_k, serve, addrport, **options):
        call_command("migrate", interactive=False, verbosity=0)
        campaigns = demo_setup(n_images=images, top_k=top_k)
        self.stdout.write(self.style.SUCCESS("\nDemo ready."))
        for campaign in campaigns:
            self.stdout.write(
                f"  campaign {campaign.pk} '{campaign.name}' on run {campaign.run_id} "
                f"({campaign.run.network.name}, layers {', '.join(campaign.layers)}): "
                f"{campaign.tasks.count()} tasks, {campaign.status}"
            )
        self.stdout.write(f"\nOpen http://{addrport}/ and log in (password = user name):")
        for username, role in DEMO_USERS.items():
            self.stdout.write(f"  {username:<16} {role}")
        if serve:
            call_command("runserver", addrport, use_reloader=False)
