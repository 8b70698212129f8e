"""Demo-world generator throughput on one core: images per second, in memory and written to disk.

Run: .venv/bin/python bench/bench_demo_world.py [--n-images 600] [--size 128]
Prints images/s for rendering alone (image + four label maps in memory) and for writing the
Broden-like layout (JPEG + four PNGs per image, index.csv, labels.csv), for both variants, and the
ratio to the 300 images/s target. The process is pinned to one core when the OS allows it.
Throughput is given per second of this process's CPU time (what one core delivers even when other
jobs share the machine) and per second of wall-clock time.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_PER_S = 300.0


class _Timer:
    def __enter__(self):
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu_s = time.process_time() - self._cpu
        self.wall_s = time.perf_counter() - self._wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=600)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from dissect.demo.world import render, write_demo_world

    n, size = args.n_images, args.size
    render(0, 0, size=size)  # build the texture caches outside the timing
    print(f"demo world generator, {n} images of {size}x{size}, one core")
    for variant in ("scenes", "objects"):
        with _Timer() as t_render:
            for i in range(n):
                render(0, i, size=size, variant=variant)
        with tempfile.TemporaryDirectory() as tmp, _Timer() as t_write:
            write_demo_world(tmp, n_images=n, seed=0, size=size, variant=variant)
        for what, timer in (("render", t_render), ("render+write", t_write)):
            cpu, wall = n / timer.cpu_s, n / timer.wall_s
            print(
                f"  {variant:7s} {what:12s} {cpu:6.0f} img/s per CPU second "
                f"({cpu / TARGET_PER_S:.2f}x target), {wall:6.0f} img/s wall-clock"
            )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  machine load average while measuring: {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
