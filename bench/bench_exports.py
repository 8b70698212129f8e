"""Exports stream: peak Python memory while exporting N units vs 8N units (ratio near 1 = streamed).

Also times the label recompute of a whole run. Runs on a throw-away SQLite database:

    .venv/bin/python bench/bench_exports.py [--units 2000]
"""

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def setup_django(data_dir: str) -> None:
    os.environ["CROWDDISSECT_DATA_DIR"] = data_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def make_run(name: str, units: int):
    """A network with one layer of `units` units and three answers each."""
    from annotate.crowd.models import Answer, Assignment, Campaign, Task, Worker
    from dissect.models import DissectionRun, Layer, Network, Unit

    network = Network.objects.create(name=name, arch="alexnet")
    run = DissectionRun.objects.create(network=network, layers=["conv5"], status="done")
    layer = Layer.objects.create(run=run, name="conv5", unit_count=units)
    Unit.objects.bulk_create([Unit(layer=layer, index=i) for i in range(units)], batch_size=5000)
    campaign = Campaign.objects.create(name=name, run=run)
    Task.objects.bulk_create(
        [Task(campaign=campaign, unit=u) for u in Unit.objects.filter(layer=layer)], batch_size=5000
    )
    workers = [Worker.objects.create(pseudonym=f"{name}-w{k}") for k in range(3)]
    tasks = list(Task.objects.filter(campaign=campaign).order_by("id"))
    assignments = [Assignment(task=h, worker=w, status="approved") for h in tasks for w in workers]
    Assignment.objects.bulk_create(assignments, batch_size=5000)
    words = ["dog", "Dogs", "striped", "sky", "blue sky", "tree", "window"]
    Answer.objects.bulk_create(
        [
            Answer(
                assignment=a,
                concept_text=words[(i * 7 + i // 3) % len(words)],
                category="object",
                precision=((i * 13) % 57) / 57,
            )
            for i, a in enumerate(assignments)
        ],
        batch_size=5000,
    )
    return run


def measure(name: str, units: int) -> tuple[float, float, float]:
    from annotate.labels.aggregation import run_labels_recompute
    from annotate.labels.exports import export_create, export_run

    run = make_run(name, units)
    start = time.perf_counter()
    run_labels_recompute(run_id=run.pk)
    recompute_s = time.perf_counter() - start
    export = export_create(kind="jsonl", parameters={"network": name}, actor=None, enqueue=False)
    tracemalloc.start()
    start = time.perf_counter()
    export_run(export_id=export.pk)
    export_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return recompute_s, export_s, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        setup_django(data_dir)
        small = measure("bench-small", args.units)
        large = measure("bench-large", args.units * 8)
    print(f"{'units':>8} {'recompute s':>12} {'export s':>9} {'export peak MiB':>16}")
    for units, (recompute_s, export_s, peak) in ((args.units, small), (args.units * 8, large)):
        print(f"{units:>8} {recompute_s:>12.2f} {export_s:>9.2f} {peak:>16.1f}")
    print(
        f"peak memory ratio (8x units): {large[2] / small[2]:.2f}  (1.0 = flat, 8.0 = all in memory)"
    )
    print(
        f"recompute units/s: {args.units * 8 / large[0]:.0f}; export units/s: "
        f"{args.units * 8 / large[1]:.0f}"
    )


if __name__ == "__main__":
    main()
