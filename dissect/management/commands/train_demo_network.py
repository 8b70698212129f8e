"""Train a demo network on the demo world and record its checkpoint in the manifest."""

import shlex

from django.core.management.base import BaseCommand, CommandError

DEFAULTS = {
    "demo-places": {"n_train": 20000, "epochs": 12},
    "demo-objects": {"n_train": 12000, "epochs": 8},
}


class Command(BaseCommand):
    help = (
        "Train demo-places (scene classes) or demo-objects (object classes) on CPU, print the "
        "validation accuracy, write dissect/demo/checkpoints/NAME.pt and its manifest entry."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="demo-places or demo-objects")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--n-train", type=int, default=None, help="training images")
        parser.add_argument("--n-val", type=int, default=2000, help="held-out validation images")
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--batch-size", type=int, default=128)
        parser.add_argument("--lr", type=float, default=0.004)
        parser.add_argument("--threads", type=int, default=2)
        parser.add_argument(
            "--precision",
            choices=["bf16", "fp32"],
            default=None,
            help="bf16 autocast (default where the CPU supports it) or plain fp32",
        )
        parser.add_argument(
            "--out-dir",
            default=None,
            help="checkpoint folder (default: the package's checkpoints/)",
        )

    def handle(self, *args, **opts):
        from pathlib import Path

        from tqdm import tqdm

        from dissect.demo.networks import (
            CHECKPOINT_DIR,
            DEMO_NETWORK_NAMES,
            NETWORK_VARIANT,
        )
        from dissect.demo.training import (
            default_precision,
            record_in_manifest,
            save_checkpoint,
            train_network,
        )

        name = opts["name"]
        if name not in DEMO_NETWORK_NAMES:
            raise CommandError(
                f"unknown demo network {name!r}; choose one of {', '.join(DEMO_NETWORK_NAMES)}"
            )
        n_train = opts["n_train"] or DEFAULTS[name]["n_train"]
        epochs = opts["epochs"] or DEFAULTS[name]["epochs"]
        precision = opts["precision"] or default_precision()
        out_dir = Path(opts["out_dir"]) if opts["out_dir"] else CHECKPOINT_DIR
        bar = tqdm(unit="step", desc=f"train {name}", disable=opts["verbosity"] == 0)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        def log(message: str) -> None:
            bar.clear()  # keep the epoch lines readable above the bar
            self.stdout.write(message)
            bar.refresh()

        model, result = train_network(
            name=name,
            variant=NETWORK_VARIANT[name],
            seed=opts["seed"],
            n_train=n_train,
            n_val=opts["n_val"],
            epochs=epochs,
            batch_size=opts["batch_size"],
            lr=opts["lr"],
            threads=opts["threads"],
            precision=precision,
            log=log,
            progress=progress,
        )
        bar.close()
        file_name = f"{name}.pt"
        sha256 = save_checkpoint(
            model, path=out_dir / file_name, name=name, variant=NETWORK_VARIANT[name]
        )
        command = shlex.join(
            [
                "python",
                "manage.py",
                "train_demo_network",
                name,
                "--seed",
                str(opts["seed"]),
                "--n-train",
                str(n_train),
                "--n-val",
                str(opts["n_val"]),
                "--epochs",
                str(epochs),
                "--batch-size",
                str(opts["batch_size"]),
                "--lr",
                str(opts["lr"]),
                "--threads",
                str(opts["threads"]),
                "--precision",
                precision,
            ]
        )
        record_in_manifest(
            manifest_path=out_dir / "manifest.json",
            result=result,
            file_name=file_name,
            sha256=sha256,
            command=command,
        )
        self.stdout.write(
            f"{name}: validation accuracy {result.val_accuracy:.4f} on {result.n_val} held-out "
            f"images; trained in {result.train_seconds:.0f} s ({result.cpu_seconds:.0f} CPU s); wrote {out_dir / file_name} "
            f"(sha256 {sha256[:12]}...)"
        )
