"""Emergence check of the demo networks: Network Dissection IoU of every unit with every label."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Dissect demo networks on fresh demo-world scenes: per layer, units whose best label has "
        "IoU >= 0.04 / 0.2 by category, and the distinct object classes detected (Markdown)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--networks", nargs="+", default=["demo-places", "demo-objects"], metavar="NAME"
        )
        parser.add_argument(
            "--layers",
            nargs="+",
            default=None,
            metavar="LAYER",
            help="aliases (default: conv1 pool1 conv2 pool2 conv3 conv4 conv5 pool5)",
        )
        parser.add_argument("--n-images", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=2024, help="seed of the scenes rendered")
        parser.add_argument("--threads", type=int, default=2)
        parser.add_argument("--json", default=None, help="also write every unit's label here")

    def handle(self, *args, **opts):
        import json
        import time

        import torch
        from tqdm import tqdm

        from dissect.demo.emergence import (
            LAYERS,
            emergence_table,
            network_emergence,
            render_labeled_world,
        )
        from dissect.demo.networks import DemoNetworkError, load_demo_network

        torch.set_num_threads(opts["threads"])
        started = time.perf_counter()
        world = render_labeled_world(n_images=opts["n_images"], seed=opts["seed"])
        results = {}
        for name in opts["networks"]:
            try:
                model, _classes, _prep, aliases, _sha = load_demo_network(name)
            except DemoNetworkError as exc:
                raise CommandError(str(exc)) from exc
            layers = opts["layers"] or list(LAYERS)
            unknown = [layer for layer in layers if layer not in aliases]
            if unknown:
                raise CommandError(f"unknown layers {unknown}; use {', '.join(aliases)}")
            bar = tqdm(desc=name, unit="batch", disable=opts["verbosity"] == 0)

            def progress(done: int, total: int, bar=bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            results[name] = network_emergence(
                model=model,
                layer_paths={layer: aliases[layer] for layer in layers},
                world=world,
                progress=progress,
            )
            bar.close()
        self.stdout.write(emergence_table(results))
        self.stdout.write(
            f"{opts['n_images']} scenes (seed {opts['seed']}), "
            f"{time.perf_counter() - started:.0f} s"
        )
        if opts["json"]:
            payload = {
                name: {layer.layer: layer.unit_labels() for layer in layers}
                for name, layers in results.items()
            }
            with open(opts["json"], "w") as fh:
                json.dump(payload, fh, indent=1)
