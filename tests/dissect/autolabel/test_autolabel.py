"""Automatic labels: dataset-pooled IoU against a brute-force count, thresholds, best labels."""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dissect.autolabel import best_labels_by_category, compute_auto_labels, label_view
from dissect.broden import read_broden, read_label_map
from tests.color_world import THRESHOLD


def brute_force_iou(net, dataset, thresholds: torch.Tensor, out_px: int) -> np.ndarray:
    """Pixel by pixel, image by image: intersection and union counts per (unit, label)."""
    n_units = len(thresholds)
    inter = np.zeros((n_units, dataset.n_labels))
    unit_area = np.zeros(n_units)
    label_area = np.zeros(dataset.n_labels)
    for row in dataset.rows:
        image = (
            np.asarray(Image.open(dataset.images_dir / row.image).convert("RGB"), np.float32) / 255
        )
        x = torch.from_numpy(image).permute(2, 0, 1)[None]
        act = net.model.features(x)
        up = F.interpolate(act, size=(out_px, out_px), mode="bilinear", align_corners=False)[0]
        label_map = read_label_map(dataset.images_dir / row.map_files[0])
        planes = [label_map] + [np.full_like(label_map, n) for n in row.image_labels]
        for label in range(1, dataset.n_labels):
            present = np.zeros_like(label_map, dtype=bool)
            for plane in planes:
                present |= plane == label
            label_area[label] += present.sum()
            for u in range(n_units):
                mask = (up[u] > thresholds[u]).numpy()
                inter[u, label] += (mask & present).sum()
        for u in range(n_units):
            unit_area[u] += (up[u] > thresholds[u]).numpy().sum()
    union = unit_area[:, None] + label_area[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    iou[:, 0] = 0
    return iou


def test_pooled_iou_matches_brute_force(color_net, color_world):
    dataset = read_broden(color_world)
    thresholds = torch.tensor([THRESHOLD, 0.5, 0.2, 0.1])
    result = compute_auto_labels(
        net=color_net,
        layers=["conv"],
        dataset=dataset,
        thresholds={"conv": thresholds},
        mask_px=32,
        batch_size=5,
        mask_budget=3 * 4 * 32 * 32,  # forces several mask chunks per batch
    )["conv"]
    expected = brute_force_iou(color_net, dataset, thresholds, 32)
    assert result.images == len(dataset.rows)
    np.testing.assert_allclose(result.iou.numpy(), expected, rtol=1e-5, atol=1e-6)
    # The pooled IoU finds the true concept of every live unit.
    assert [int(result.iou[u].argmax()) for u in range(3)] == [1, 2, 3]
    assert float(result.iou[3].max()) == 0.0  # the dead unit overlaps nothing


def test_best_labels_per_category_match_argmax(color_net, color_world):
    dataset = read_broden(color_world)
    iou = compute_auto_labels(
        net=color_net,
        layers=["conv"],
        dataset=dataset,
        thresholds={"conv": torch.full((4,), THRESHOLD)},
    )["conv"].iou
    labels = best_labels_by_category(iou, dataset)
    for unit, rows in enumerate(labels):
        for row in rows:
            numbers = [n for n, lab in dataset.labels.items() if row.category in ("", lab.category)]
            best = max(numbers, key=lambda n: (float(iou[unit, n]), -n))
            assert row.label_number == best
            assert row.iou == float(iou[unit, best]) > 0
    overall = {rows[0].unit: rows[0] for rows in labels if rows}
    assert [overall[u].label for u in range(3)] == ["red box", "green box", "blue box"]
    assert {r.category for r in labels[0]} == {"", "object", "scene"}
    assert labels[3] == []  # no overlap, no label


def test_quantile_pass_gives_the_top_half_percent_level(color_net, color_world):
    dataset = read_broden(color_world)
    result = compute_auto_labels(net=color_net, layers=["conv"], dataset=dataset, batch_size=7)[
        "conv"
    ]
    acts = []
    for row in dataset.rows:
        image = np.asarray(Image.open(dataset.images_dir / row.image), np.float32) / 255
        acts.append(color_net.model.features(torch.from_numpy(image).permute(2, 0, 1)[None]))
    values = torch.cat(acts).transpose(0, 1).reshape(4, -1)
    n = values.shape[1]
    exact = values.sort(dim=1).values[:, int(np.ceil(0.995 * n)) - 1]
    live = exact > 0
    rel = ((result.thresholds - exact).abs() / exact.clamp(min=1e-6))[live]
    assert float(rel.max()) <= 2**-7  # the engine's quantile sketch bound


def test_label_view_follows_the_network_crop():
    # A 40x20 image whose label map is stored at half resolution (Broden's sh, sw).
    labels = np.arange(20 * 10).reshape(10, 20) % 7
    prep = {"input_size": 16, "resize": 16, "crop": "center"}
    view = label_view(labels, (40, 20), prep, 16)
    full = np.kron(labels, np.ones((2, 2), np.int64))  # the same map at image resolution
    # Resize short side 20 -> 16 (x0.8): 32x16, crop the center 16 columns: image x in [10, 30).
    expected = label_view(full, (40, 20), prep, 16)
    assert view.shape == (16, 16)
    assert (view == expected).mean() > 0.9
    assert set(np.unique(view)) <= set(np.unique(labels))


def test_label_view_of_the_whole_map_at_its_own_size_is_the_map():
    # The common case (Broden, the demo world): no resize, and the same values PIL's nearest
    # resize gives, whatever the dtype.
    from PIL import Image

    labels = (np.arange(16 * 16).reshape(16, 16) % 251).astype(np.uint8)
    prep = {"input_size": 16, "resize": 16, "crop": "center"}
    view = label_view(labels, (16, 16), prep, 16)
    resized = Image.fromarray(labels.astype(np.int32), mode="I").resize((16, 16), Image.NEAREST)
    assert view.dtype == np.uint8 and (view == np.asarray(resized)).all()
    assert label_view(labels, (16, 16), prep, 8).shape == (8, 8)  # another size still resizes
