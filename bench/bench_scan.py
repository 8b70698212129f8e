"""Image-set scanning: files per second and peak Python memory, at two folder sizes.

    .venv/bin/python bench/bench_scan.py [--files 5000] [--factor 4]

Writes ``files`` and ``files * factor`` tiny PNGs (16 x 16, in 100-file subfolders) into a
throw-away folder, scans each with ``dissect.services.image_set_scan`` (full decode and sha1 of
every file, rows written in chunks of 2,000) into a throw-away SQLite database, and prints the
rate and the peak traced memory. A memory ratio near 1 (not ``factor``) means the scan streams;
the remaining growth is the per-path bookkeeping (a set of seen paths), a few MB at 100k files.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _write(folder: Path, n: int) -> None:
    from PIL import Image

    tile = Image.new("RGB", (16, 16), (200, 40, 40))
    for i in range(n):
        sub = folder / f"{i // 100:05d}"
        if i % 100 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        tile.save(sub / f"{i:07d}.png", compress_level=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--factor", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    os.environ["CROWDDISSECT_DATA_DIR"] = str(work)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from dissect.services import image_set_scan

    results = []
    for n in (args.files, args.files * args.factor):
        folder = work / f"set-{n}"
        _write(folder, n)
        tracemalloc.start()
        started = time.perf_counter()
        image_set = image_set_scan(name=f"set-{n}", root=folder)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert image_set.image_count == n
        results.append((n, seconds, peak))
        print(f"{n:>7} files: {seconds:6.1f} s = {n / seconds:5.0f} files/s, peak {peak:5.1f} MiB")
    (n1, _, p1), (n2, _, p2) = results
    print(f"peak memory ratio for {n2 // n1}x the files: {p2 / p1:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
