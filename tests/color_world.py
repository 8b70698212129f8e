"""A color world whose ground truth is known exactly, and a hand-made network that sees it (shared
by the automatic-label tests in tests/dissect and the explain tests in tests/annotate).


Images: black backgrounds with one or two boxes of pure red, green or blue (random intensity).
Label maps (Broden layout, RGB-encoded R + 256 G as Broden does): object label 1/2/3 = red/green/
blue box; a whole-image scene label (4/5/6) names the color covering the most pixels.

Network: a 4x4 stride-4 averaging conv per color channel (units 0-2 = red/green/blue detectors,
unit 3 dead), ReLU, global average pool, identity classifier: the predicted scene is the color
with the largest area. So unit k's true concept is "box k" and its mask is the box.
"""

import csv
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dissect.networks import LoadedNetwork

COLORS = ("red", "green", "blue")
SIZE = 32
THRESHOLD = 0.3  # unit activation level that separates a box cell from background


def color_network() -> LoadedNetwork:
    conv = nn.Conv2d(3, 4, kernel_size=4, stride=4, bias=False)
    fc = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for k in range(3):
            conv.weight[k, k] = 1.0 / 16
        fc.weight.zero_()
        for k in range(3):
            fc.weight[k, k] = 50.0  # sharp softmax: the dominant color wins clearly
    model = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU())),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=fc,
        )
    ).eval()
    model.requires_grad_(False)
    return LoadedNetwork(
        model=model,
        arch="color-net",
        class_names=[f"{c} scene" for c in COLORS],
        preprocessing={
            "input_size": SIZE,
            "resize": SIZE,
            "crop": "center",
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
        },
        layer_aliases={"conv": "features.relu"},
    )


def color_sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """(image (S, S, 3) uint8, object label map (S, S) int, scene index)."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    labels = np.zeros((SIZE, SIZE), np.int64)
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(0, 3))
        h, w = rng.integers(8, 20, 2)
        y, x = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
        image[y : y + h, x : x + w] = 0
        image[y : y + h, x : x + w, k] = int(rng.integers(160, 256))
        labels[y : y + h, x : x + w] = k + 1
    areas = [(labels == k + 1).sum() for k in range(3)]
    return image, labels, int(np.argmax(areas))


def write_color_world(root: Path, n: int, *, seed: int = 0) -> Path:
    """A Broden-layout folder of ``n`` color-world images."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        image, labels, scene = color_sample(rng)
        Image.fromarray(image).save(images / f"{i:03d}.png")
        encoded = np.zeros((SIZE, SIZE, 3), np.uint8)
        encoded[..., 0] = labels % 256
        encoded[..., 1] = labels // 256
        Image.fromarray(encoded).save(images / f"{i:03d}_object.png")
        rows.append(
            [f"{i:03d}.png", "train", SIZE, SIZE, SIZE, SIZE, f"{i:03d}_object.png", 4 + scene]
        )
    with open(root / "index.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "split", "ih", "iw", "sh", "sw", "object", "scene"])
        writer.writerows(rows)
    with open(root / "label.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["number", "name", "category", "frequency", "coverage", "syns"])
        writer.writerow([0, "-", "", 0, 0, ""])
        for k, color in enumerate(COLORS):
            writer.writerow([k + 1, f"{color} box", f"object({n});part(1)", n, 0.1, ""])
        for k, color in enumerate(COLORS):
            writer.writerow([k + 4, f"{color} scene", f"scene({n})", n, 1.0, ""])
    return root


@pytest.fixture
def color_net() -> LoadedNetwork:
    return color_network()


@pytest.fixture
def color_world(tmp_path) -> Path:
    return write_color_world(tmp_path / "color-world", 24, seed=0)
