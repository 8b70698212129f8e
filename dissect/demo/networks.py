"""The built-in demo networks: load a committed checkpoint by name, verified against its manifest."""

import json
from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
MANIFEST_PATH = CHECKPOINT_DIR / "manifest.json"
DEMO_NETWORK_NAMES: tuple[str, ...] = ("demo-places", "demo-objects")
NETWORK_VARIANT: dict[str, str] = {"demo-places": "scenes", "demo-objects": "objects"}


class DemoNetworkError(ValueError):
    """A demo network cannot be loaded; the message says what to do."""


def retrain_command(name: str) -> str:
    """The command that rebuilds ``name``'s checkpoint (the recorded one when the manifest has it)."""
    try:
        return read_manifest()["networks"][name]["command"]
    except (DemoNetworkError, KeyError):
        return f"python manage.py train_demo_network {name}"


def read_manifest(path: Path | None = None) -> dict:
    """The checkpoints manifest: {"networks": {name: {file, sha256, seed, val_accuracy, command...}}}."""
    path = MANIFEST_PATH if path is None else path
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise DemoNetworkError(
            f"{path} is missing: retrain the demo networks with "
            "`python manage.py train_demo_network demo-places` and "
            "`python manage.py train_demo_network demo-objects`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise DemoNetworkError(
            f"{path} is not valid JSON ({exc}): restore it from git "
            "(`git checkout -- dissect/demo/checkpoints/manifest.json`) or retrain"
        ) from exc


def manifest_entry(name: str) -> dict:
    """The manifest entry of demo network ``name``; unknown names raise a clear error."""
    if name not in DEMO_NETWORK_NAMES:
        raise DemoNetworkError(
            f"unknown demo network {name!r}; the built-in demo networks are "
            + ", ".join(DEMO_NETWORK_NAMES)
        )
    networks = read_manifest().get("networks", {})
    if name not in networks:
        raise DemoNetworkError(
            f"{MANIFEST_PATH} has no entry for {name!r}: train it with "
            f"`python manage.py train_demo_network {name}`"
        )
    return networks[name]


def load_demo_network(name: str):
    """Load demo network ``name`` ("demo-places" or "demo-objects").

    Returns (model in eval mode with weights loaded, class names, preprocessing
    {input_size, resize, crop, mean, std}, layer aliases {alias: module path} for conv1..conv5,
    pool1, pool2, pool5, weights sha256). The file's sha256 must match the manifest.
    """
    import torch

    from dissect.demo.architecture import DemoAlexNet
    from dissect.demo.training import CHECKPOINT_FORMAT
    from dissect.hashing import sha256_file

    entry = manifest_entry(name)
    path = CHECKPOINT_DIR / entry["file"]
    retrain = retrain_command(name)
    if not path.is_file():
        raise DemoNetworkError(f"checkpoint {path} is missing: retrain it with `{retrain}`")
    sha256 = sha256_file(path)
    if sha256 != entry["sha256"]:
        raise DemoNetworkError(
            f"checkpoint {path} has sha256 {sha256} but {MANIFEST_PATH} records "
            f"{entry['sha256']}: the file was changed or damaged; restore it from git or "
            f"retrain it with `{retrain}` (which rewrites the manifest entry)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {checkpoint.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
        class_names = list(checkpoint["class_names"])
        model = DemoAlexNet(len(class_names), tuple(checkpoint["widths"]))
        model.load_state_dict(
            {
                k: v.float() if v.is_floating_point() else v
                for k, v in checkpoint["state_dict"].items()
            }
        )
    except Exception as exc:  # any unreadable or mismatching file gets the same advice
        raise DemoNetworkError(
            f"checkpoint {path} cannot be loaded ({type(exc).__name__}: {exc}): "
            f"retrain it with `{retrain}`"
        ) from exc
    model.eval()
    return (
        model,
        class_names,
        dict(checkpoint["preprocessing"]),
        dict(checkpoint["layer_aliases"]),
        sha256,
    )
