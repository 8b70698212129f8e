"""Small fixtures for the pipeline tests: a folder of tiny images, a tiny seeded network
checkpoint, and registered rows built through the real services."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_PREPROCESSING = {"input_size": 64, "resize": 64}
# A 16-unit layer of the tiny SqueezeNet (Fire module 3's squeeze ReLU, 15x15 at 64 px).
SMALL = "features.3.squeeze_activation"


def write_images(folder: Path, n: int, *, seed: int = 0, size: int = 48) -> list[Path]:
    """``n`` random-blob RGB images (JPEG and PNG, two subfolders) under ``folder``."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        # A bright square at a random place gives units something to peak on.
        y, x = rng.integers(0, size - 12, 2)
        pixels[y : y + 12, x : x + 12] = rng.integers(150, 255, 3, dtype=np.uint8)
        path = sub / f"img{i:03d}.{'png' if i % 3 == 0 else 'jpg'}"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    write_images(folder, 12)
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A seeded SqueezeNet 1.1 with 4 classes (a weights file, so its sha256 is stable).

    Layers used by the tests: features.1 (64 units, 31x31 at 64 px) and the 16-unit squeeze
    layers features.3.squeeze_activation (SMALL) and features.4.squeeze_activation.
    """
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(num_classes=4)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-squeezenet.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def tiny_network(db, tiny_checkpoint):
    from dissect.services import network_register

    return network_register(
        name="tiny",
        arch="squeezenet1_1",
        checkpoint=tiny_checkpoint,
        class_names=["a", "b", "c", "d"],
        preprocessing=TINY_PREPROCESSING,
    )


@pytest.fixture
def image_set(db, image_folder):
    from dissect.services import image_set_scan

    return image_set_scan(name="tiny-images", root=image_folder)


def run_eagerly(run_start, django_capture_on_commit_callbacks, **kwargs):
    """Start a run and execute its on-commit enqueue (eager Celery: the chord runs here)."""
    with django_capture_on_commit_callbacks(execute=True):
        return run_start(**kwargs)
