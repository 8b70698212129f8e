import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.crowd.services import CrowdError, campaign_set_status
from annotate.crowd.spec import CAMPAIGN_SPEC, VERIFICATION_SPEC
from annotate.crowd.verification import campaign_create_with_verification
from dissect.models import DissectionRun, Unit


class Command(BaseCommand):
    help = "Create a labeling campaign from a finished dissection run (draft, or live with --live)."

    def add_arguments(self, parser):
        parser.add_argument("run", type=int, help="Id of a finished dissection run.")
        parser.add_argument(
            "--layers", required=True, help="Comma-separated layer names, e.g. conv5,pool5."
        )
        parser.add_argument(
            "--gold", type=Path, help="CSV with columns layer,unit,concept,category."
        )
        parser.add_argument(
            "--gold-from-auto-labels",
            type=float,
            metavar="MIN_IOU",
            help="Use units whose automatic (Network Dissection) label reaches this IoU as gold units.",
        )
        parser.add_argument(
            "--live", action="store_true", help="Make the campaign live right away."
        )
        # The campaign's parameters, from the one spec (the form's and the API's too).
        CAMPAIGN_SPEC.add_arguments(parser.add_argument_group("campaign parameters"))
        VERIFICATION_SPEC.add_arguments(parser.add_argument_group("verification tasks"))

    def handle(self, *args, run, layers, gold, gold_from_auto_labels, live, **options):
        try:
            run_row = DissectionRun.objects.get(pk=run)
        except DissectionRun.DoesNotExist:
            raise CommandError(f"run: no dissection run {run}.") from None
        gold_units = self._gold(run_row, gold) if gold else {}
        if gold_from_auto_labels is not None:
            from dissect.selectors import gold_from_auto_labels as auto_gold

            gold_units = {**auto_gold(run=run_row, min_iou=gold_from_auto_labels), **gold_units}
        from tqdm import tqdm

        bar = tqdm(
            unit="step",
            desc="verification sample",
            disable=options["verbosity"] == 0 or not options.get("verify_source"),
        )

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            # The verification sample is built here, in this process (not on a gpu worker).
            campaign = campaign_create_with_verification(
                inline=True,
                progress=progress,
                run=run_row,
                layers=[x.strip() for x in layers.split(",") if x.strip()],
                gold=gold_units,
                **{name: options[name] for name in CAMPAIGN_SPEC.names()},
                **{name: options[name] for name in VERIFICATION_SPEC.names()},
            )
            if live:
                campaign = campaign_set_status(campaign=campaign, status="live", actor=None)
        except CrowdError as error:
            raise CommandError(str(error)) from None
        finally:
            bar.close()
        if campaign.verification_state == campaign.VerificationState.FAILED:
            raise CommandError(
                f"Campaign {campaign.pk} was made, but its verification sample failed: "
                f"{campaign.verification_error}"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Campaign {campaign.pk} '{campaign.name}': {campaign.tasks.count()} tasks"
                + (
                    f", {campaign.verification_tasks.count()} verification tasks"
                    if campaign.verification_tasks.exists()
                    else ""
                )
                + f", {campaign.status}."
            )
        )

    def _gold(self, run: DissectionRun, path: Path) -> dict[int, tuple[str, str]]:
        if not path.is_file():
            raise CommandError(f"--gold: {path} does not exist.")
        gold = {}
        with path.open(newline="", encoding="utf-8") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    unit = Unit.objects.get(
                        layer__run=run, layer__name=row["layer"], index=int(row["unit"])
                    )
                    gold[unit.pk] = (row["concept"], row["category"])
                except (KeyError, ValueError, Unit.DoesNotExist):
                    raise CommandError(
                        f"--gold: {path} line {line}: need layer,unit,concept,category naming a unit of run {run.pk}."
                    ) from None
        return gold
