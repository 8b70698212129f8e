"""``python manage.py layers NETWORK``: the layer table (aliases, module paths, output shape,
units, theoretical receptive field) of a registered network or a known architecture."""

from django.core.management.base import BaseCommand, CommandError

from dissect.models import Network


class Command(BaseCommand):
    help = "Print a network's layers: alias, module path, output shape, units, theoretical RF."

    def add_arguments(self, parser):
        parser.add_argument("network", help="Registered network name, or an architecture name.")
        parser.add_argument("--all", action="store_true",
                            help="Every module, not only the aliases.")  # fmt: skip

    def handle(self, *args, network, all, **options):
        from dissect.networks import NetworkLoadError, layer_table, load_network
        from dissect.services import PipelineError, network_load

        row = Network.objects.filter(name=network).first()
        try:
            net = network_load(network=row) if row else load_network(network)
            names = None
            if all or not net.layer_aliases:
                names = [n for n, m in net.model.named_modules() if n and not list(m.children())]
            table = layer_table(net, names)
        except (NetworkLoadError, PipelineError) as exc:
            raise CommandError(
                f"{exc}\n(registered networks: "
                f"{', '.join(Network.objects.values_list('name', flat=True)) or 'none'})"
            ) from exc
        self.stdout.write(f"{'layer':<14} {'module':<28} {'output':<16} {'units':>6} "
                          f"{'RF px':>6} {'stride':>6}")  # fmt: skip
        for r in table:
            shape = "x".join(str(d) for d in r.output_shape)
            rf = "image" if r.receptive_field_px is None else str(r.receptive_field_px)
            stride = "-" if r.stride_px is None else str(r.stride_px)
            self.stdout.write(
                f"{r.alias:<14} {r.path:<28} {shape:<16} {r.units:>6} {rf:>6} {stride:>6}"
            )
