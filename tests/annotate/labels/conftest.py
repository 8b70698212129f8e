"""Fixtures for the aggregation/report tests: the authors' released ICLR'15 annotation files."""

from pathlib import Path

import pytest

ICLR15_FILES = ("unitAnnotation_places205-alexnet.mat", "unitAnnotation_imagenet-alexnet.mat")


def iclr15_dir() -> Path:
    from django.conf import settings

    return Path(settings.CROWDDISSECT["REFERENCE_DIR"]) / "iclr15-unit-annotations"


@pytest.fixture(scope="session")
def iclr15_paths() -> list[Path]:
    paths = [iclr15_dir() / name for name in ICLR15_FILES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.fail(f"reference data missing: {missing}; shared/ must sit beside the repository")
    return paths


@pytest.fixture(scope="session")
def iclr15_files(iclr15_paths):
    from annotate.labels.iclr15 import read_iclr15

    return [read_iclr15(p) for p in iclr15_paths]
