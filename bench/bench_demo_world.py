"""Demo-world generator throughput on one core: images per second, in memory and written to disk.

Run: .venv/bin/python bench/bench_demo_world.py [--n-images 600] [--size 128] [--dir DIR]
Prints images/s, for both variants and with the ratio to the 300 images/s target, of
- render: the image and its four label maps, in memory;
- render+encode: the same plus the five encoded files (JPEG + four PNGs) as bytes in memory,
  all the generator's own work;
- render+write: the Broden-like layout written to disk (the five files, index.csv, labels.csv),
  in a temporary folder under DIR (default: the system's temporary folder).
Writing adds the file system's cost of creating five files per image, which on a virtual disk
varies from run to run, so the bench also measures the cost of creating one small file there.
The process is pinned to one core when the OS allows it. Throughput is given per second of this
process's CPU time (what one core delivers even when other jobs share the machine) and per second
of wall-clock time.
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
    parser.add_argument("--dir", default=None, help="where to write (default: the temp folder)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from dissect.demo.world import render, write_demo_world
    from dissect.demo.world.broden import encode_sample

    n, size = args.n_images, args.size
    for variant in ("scenes", "objects"):
        render(0, 0, size=size, variant=variant)  # build the texture caches outside the timing
    print(f"demo world generator, {n} images of {size}x{size}, one core")
    for variant in ("scenes", "objects"):
        with _Timer() as t_render:
            for i in range(n):
                render(0, i, size=size, variant=variant)
        with _Timer() as t_encode:
            for i in range(n):
                encode_sample(render(0, i, size=size, variant=variant))
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp, _Timer() as t_write:
            write_demo_world(tmp, n_images=n, seed=0, size=size, variant=variant)
        timers = (("render", t_render), ("render+encode", t_encode), ("render+write", t_write))
        for what, timer in timers:
            cpu, wall = n / timer.cpu_s, n / timer.wall_s
            print(
                f"  {variant:7s} {what:13s} {cpu:6.0f} img/s per CPU second "
                f"({cpu / TARGET_PER_S:.2f}x target), {wall:6.0f} img/s wall-clock"
            )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, _Timer() as t_create:
        for i in range(1000):
            Path(tmp, f"{i:06d}.png").write_bytes(b"\0" * 2000)
    print(
        f"  creating a 2 kB file in {Path(tmp).parent}: {t_create.wall_s * 1000:.0f} us "
        f"(x5 files = {5 * t_create.wall_s:.1f} ms per image)"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  machine load average while measuring: {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
