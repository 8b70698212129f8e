"""Train and evaluate the demo networks on images of the demo world, on CPU in minutes.

The images are rendered once into memory (uint8); training uses random flips and small shifts.
Train images are indices ``0 .. n_train-1`` of the seed, validation images the next ``n_val``
indices, so validation never sees a training image.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dissect.demo.architecture import DEFAULT_WIDTHS, LAYER_ALIASES, DemoAlexNet
from dissect.demo.world import GENERATOR_VERSION, class_names, render_arrays
from dissect.hashing import sha256_file

INPUT_SIZE = 128
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
CHECKPOINT_FORMAT = "crowddissect-demo-network/1"
PRECISIONS = ("bf16", "fp32")


def default_precision() -> str:
    """bf16 where the CPU has native bfloat16 kernels (oneDNN says so), else fp32."""
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def preprocessing() -> dict:
    """How images are fed to a demo network: resize the short side to 128, centre crop 128, scale
    pixels to 0..1, then subtract ``mean`` and divide by ``std`` per channel."""
    return {
        "input_size": INPUT_SIZE,
        "resize": INPUT_SIZE,
        "crop": "center",
        "mean": list(MEAN),
        "std": list(STD),
    }


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 images -> normalized (N, 3, H, W) float32 network input."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to 8 px (reflect padding), per batch."""
    if torch.rand((), generator=generator) < 0.5:
        x = x.flip(3)
    pad = 8
    dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    return padded[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


@torch.inference_mode()
def accuracy(
    model: nn.Module, images: np.ndarray, classes: np.ndarray, batch_size: int = 100
) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on uint8 images and their class indices."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(to_input(images[start : start + batch_size]))
        correct += int((logits.argmax(1).numpy() == classes[start : start + batch_size]).sum())
    return correct / len(images)


@dataclass
class TrainResult:
    name: str
    variant: str
    seed: int
    n_train: int
    n_val: int
    epochs: int
    batch_size: int
    lr: float
    val_accuracy: float
    train_accuracy_last_epoch: float
    train_seconds: float
    cpu_seconds: float  # CPU time of all threads: what it costs on a machine shared with others
    threads: int
    widths: list[int]
    precision: str


def train_network(
    *,
    name: str,
    variant: str,
    seed: int,
    n_train: int,
    n_val: int,
    epochs: int,
    batch_size: int = 128,
    lr: float = 0.004,
    threads: int = 2,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    precision: str = "bf16",
    log: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[DemoAlexNet, TrainResult]:
    """Train a ``DemoAlexNet`` on ``variant`` images ("scenes" or "objects").

    AdamW with a one-cycle learning rate; returns the trained model (eval mode) and the
    numbers to record. Deterministic for a given seed, thread count and CPU. ``precision="bf16"``
    runs the forward pass under bfloat16 autocast (weights stay fp32), which trains ~1.7x faster
    on CPUs with AVX512-BF16 or AMX; ``"fp32"`` is the plain path for any CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    names = class_names(variant)
    started = time.perf_counter()
    cpu_started = time.process_time()
    log(f"{name}: rendering {n_train} train + {n_val} val images of the {variant} variant")
    train_images, train_classes = render_arrays(seed, 0, n_train, variant=variant)
    val_images, val_classes = render_arrays(seed, n_train, n_val, variant=variant)
    log(f"{name}: rendered in {time.perf_counter() - started:.0f} s")
    train_x = torch.from_numpy(train_images)
    train_y = torch.from_numpy(train_classes)
    model = DemoAlexNet(len(names), widths)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps_per_epoch = n_train // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2
    )
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    train_acc = 0.0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n_train, generator=generator)
        correct = seen = 0
        total_loss = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            x = _augment(to_input(train_x[idx]), generator).contiguous(
                memory_format=torch.channels_last
            )
            y = train_y[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if progress is not None:
                progress(epoch * steps_per_epoch + step + 1, epochs * steps_per_epoch)
        train_acc = correct / seen
        val_acc = accuracy(model, val_images, val_classes)
        log(
            f"{name}: epoch {epoch + 1}/{epochs} loss {total_loss / seen:.3f} "
            f"train acc {train_acc:.3f} val acc {val_acc:.3f} "
            f"({time.perf_counter() - started:.0f} s, {time.process_time() - cpu_started:.0f} CPU s)"
        )
    model = model.to(memory_format=torch.contiguous_format).eval()
    val_acc = accuracy(model, val_images, val_classes)
    result = TrainResult(
        name=name,
        variant=variant,
        seed=seed,
        n_train=n_train,
        n_val=n_val,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        val_accuracy=round(val_acc, 4),
        train_accuracy_last_epoch=round(train_acc, 4),
        train_seconds=round(time.perf_counter() - started, 1),
        cpu_seconds=round(time.process_time() - cpu_started, 1),
        threads=threads,
        widths=list(widths),
        precision=precision,
    )
    return model, result


def save_checkpoint(model: DemoAlexNet, *, path: str | Path, name: str, variant: str) -> str:
    """Save ``model`` as an fp16 checkpoint with its class names and preprocessing; returns sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "name": name,
            "variant": variant,
            "widths": list(model.widths),
            "class_names": list(class_names(variant)),
            "preprocessing": preprocessing(),
            "layer_aliases": dict(LAYER_ALIASES),
            "generator_version": GENERATOR_VERSION,
            "state_dict": state,
        },
        path,
    )
    return sha256_file(path)


def record_in_manifest(
    *, manifest_path: str | Path, result: TrainResult, file_name: str, sha256: str, command: str
) -> None:
    """Write (or replace) one network's entry of the checkpoints manifest."""
    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest.setdefault("networks", {})
    entry = asdict(result)
    entry.update(
        file=file_name,
        sha256=sha256,
        generator_version=GENERATOR_VERSION,
        size_bytes=Path(manifest_path.parent / file_name).stat().st_size,
        command=command,
    )
    manifest["networks"][result.name] = entry
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
