"""Ablation: hooks restore the network; zeroing a whole layer gives chance accuracy."""

import numpy as np
import pytest
import torch

from annotate.explain.ablation import ablate_units, ablation_report, class_accuracy, predict
from dissect.demo.architecture import LAYER_ALIASES, DemoAlexNet
from dissect.demo.training import preprocessing, to_input
from dissect.networks import LoadedNetwork


def _tiny_net(num_classes=4) -> LoadedNetwork:
    torch.manual_seed(0)
    model = DemoAlexNet(num_classes, (6, 8, 8, 8, 8)).eval()
    return LoadedNetwork(
        model, "tiny", [f"c{i}" for i in range(num_classes)], preprocessing(), dict(LAYER_ALIASES)
    )


def _no_hooks(model: torch.nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_ablation_restores_weights_and_outputs():
    net = _tiny_net()
    x = torch.randn(6, 3, 128, 128)
    before = {k: v.clone() for k, v in net.model.state_dict().items()}
    out_before = predict(net, x)
    with ablate_units(net, {"conv5": [0, 3], "features.relu2": [1]}):
        ablated = predict(net, x)
    assert not torch.allclose(ablated, out_before)
    with ablate_units(net, {"conv3": [2]}, keep_only=True):
        predict(net, x)
    with pytest.raises(RuntimeError), ablate_units(net, {"conv4": [0]}):
        raise RuntimeError("hooks must go even when the block fails")
    assert _no_hooks(net.model)
    after = net.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(predict(net, x), out_before)


def test_keep_only_all_or_nothing():
    net = _tiny_net()
    x = torch.randn(4, 3, 128, 128)
    base = predict(net, x)
    with ablate_units(net, {"conv5": range(8)}, keep_only=True):
        assert torch.equal(predict(net, x), base)
    with ablate_units(net, {"conv5": []}, keep_only=True):
        none_kept = predict(net, x)
    with ablate_units(net, {"conv5": range(8)}):
        assert torch.equal(predict(net, x), none_kept)


def test_zeroing_a_whole_layer_gives_chance_accuracy():
    from dissect.demo.world import render
    from dissect.networks import load_network

    net = load_network("demo-places")
    per_class, images, labels, i = 3, [], [], 0
    counts = [0] * net.num_classes
    while min(counts) < per_class:  # a balanced held-out set: chance is exactly 1 / classes
        sample = render(2025, i, variant="scenes")
        i += 1
        if counts[sample.class_index] < per_class:
            counts[sample.class_index] += 1
            images.append(sample.image)
            labels.append(sample.class_index)
    x, labels = to_input(np.stack(images)), np.array(labels)
    _, _, intact = class_accuracy(predict(net, x), labels, net.num_classes)
    assert intact >= 0.6
    for layer, width in (("conv5", net.model.widths[4]), ("conv3", net.model.widths[2])):
        with ablate_units(net, {layer: range(width)}):
            probs = predict(net, x)
        acc, _, overall = class_accuracy(probs, labels, net.num_classes)
        assert len(set(probs.argmax(1).tolist())) == 1  # one answer for every image
        assert overall == pytest.approx(1 / net.num_classes)
        assert sorted(acc.tolist()) == [0.0] * (net.num_classes - 1) + [1.0]


def test_report_shape():
    net = _tiny_net(3)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 128, 128, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2] * 2)
    report = ablation_report(
        net=net,
        layer="conv5",
        images=images,
        labels=labels,
        unit_labels={
            1: {"label": "car", "category": "object", "iou": 0.1},
            2: {"label": "car", "category": "object", "iou": 0.05},
        },
        top_k=2,
        n_random=2,
    )
    assert report["units"] == 8 and len(report["per_class"]) == 3
    assert all(len(row["top_units"]) == 2 for row in report["per_class"])
    assert report["concepts"][0]["concept"] == "car" and report["concepts"][0]["units"] == [1, 2]
    assert _no_hooks(net.model)


def test_layer_tail_equals_the_hooked_whole_network():
    from annotate.explain.ablation import LayerAblator

    net = _tiny_net()
    x = torch.randn(5, 3, 128, 128)
    labels = np.array([0, 1, 2, 3, 0])
    ablator = LayerAblator(net, "conv4", x, labels)
    assert ablator.tail is not None
    for units, keep_only in (([1, 5], False), ([2], True), ([], True)):
        with ablate_units(net, {"conv4": units}, keep_only=keep_only):
            hooked = predict(net, x)
        assert torch.allclose(ablator.probs(units, keep_only), hooked, atol=1e-5)
    assert _no_hooks(net.model)


def test_class_auc_known_answers():
    from annotate.explain.ablation import class_auc

    assert class_auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert class_auc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    assert class_auc([0.5, 0.5, 0.5], [1, 0, 0]) == 0.5  # ties count half
    # one positive ranked above one of the two negatives: 1/2
    assert class_auc([0.3, 0.2, 0.4], [1, 0, 0]) == 0.5
    assert np.isnan(class_auc([0.1, 0.2], [1, 1]))
