"""Automatic labels stream with bounded memory: peak RSS growth for N and 4N images.

    .venv/bin/python bench/bench_autolabel.py [--n 60]

Each size runs in a fresh process (demo world at 128 px, a seeded random demo network, layers
conv5 + pool5, the quantile pass included). Prints the peak RSS growth during
``compute_auto_labels`` and the ratio between the two sizes (~1 = memory independent of N), and
the throughput of each run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
from dissect.demo.architecture import DemoAlexNet, LAYER_ALIASES
from dissect.demo.training import preprocessing
from dissect.demo.world import class_names, write_demo_world
from dissect.autolabel import compute_auto_labels
from dissect.broden import read_broden
from dissect.networks import LoadedNetwork

n, root = int(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
torch.set_num_threads(1)
net = LoadedNetwork(model=DemoAlexNet(10).eval(), arch="demo", class_names=list(class_names("scenes")),
                    preprocessing=preprocessing(), layer_aliases=dict(LAYER_ALIASES))
dataset = read_broden(write_demo_world(root, n_images=n, seed=0))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
compute_auto_labels(net=net, layers=["conv5", "pool5"], dataset=dataset, batch_size=16)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "growth_mb": (after - before) / 1024, "images_per_s": n / seconds}))
"""


def measure(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), str(Path(tmp) / "world")],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    args = parser.parse_args()
    small, large = measure(args.n), measure(4 * args.n)
    for r in (small, large):
        print(
            f"{r['n']:>5} images: peak RSS growth {r['growth_mb']:.1f} MB, {r['images_per_s']:.1f} images/s"
        )
    ratio = large["growth_mb"] / max(small["growth_mb"], 1e-6)
    print(f"memory growth ratio 4N/N = {ratio:.2f} (1.0 = independent of the number of images)")


if __name__ == "__main__":
    main()
