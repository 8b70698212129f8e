"""Registering networks and loading them (cached per process) for the pipeline's stages."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from django.db import transaction

from core.audit import audit_record
from core.models import AuditAction
from core.names import name_error
from dissect.models import Network
from dissect.services.common import PipelineError


def network_register(
    *,
    name: str,
    arch: str,
    checkpoint: str | Path | None = None,
    class_names: str | Path | Sequence[str] | None = None,
    trust_pickle: bool = False,
    preprocessing: dict | None = None,
    training_data: str = "",
    description: str = "",
    random_init: bool = False,
    actor=None,
) -> Network:
    """Load the network once (to check that the checkpoint fits the architecture) and store it
    as a Network row (created, or updated when ``name`` exists). ``preprocessing`` overrides
    the architecture's defaults (e.g. ``{"input_size": 64}``). A torchvision architecture
    without a checkpoint has random weights: refused unless ``random_init`` (then the network
    is marked untrained, ``Network.is_untrained``). Raises PipelineError."""
    from dissect.networks import DEMO_NETWORKS, EFFICIENTNET_ARCHS, NetworkLoadError, load_network

    problem = name_error(name, what="network name")
    if problem:
        raise PipelineError(problem, field="name")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise PipelineError(f"checkpoint {checkpoint}: no such file")
    try:
        net = load_network(
            arch,
            checkpoint=checkpoint,
            class_names=class_names,
            trust_pickle=trust_pickle,
            preprocessing=preprocessing,
        )
    except NetworkLoadError as exc:
        raise PipelineError(str(exc)) from exc
    packaged = arch in DEMO_NETWORKS or arch in EFFICIENTNET_ARCHS  # weights ship with us
    random_weights = checkpoint is None and not packaged
    if random_weights and not random_init:
        raise PipelineError(random_weights_message(name=name, arch=arch), field="checkpoint")
    if arch in DEMO_NETWORKS:
        source = Network.Source.BUILTIN
    elif checkpoint is None:
        source = Network.Source.TORCHVISION
    elif trust_pickle:
        source = Network.Source.PICKLE
    else:
        source = Network.Source.TORCHVISION
    if checkpoint is not None:
        checkpoint_mirror(checkpoint, weights_sha256=net.weights_sha256)
    with transaction.atomic(durable=True):
        network = _network_store(
            name=name, arch=arch, source=source, checkpoint=checkpoint, net=net,
            trust_pickle=trust_pickle, training_data=training_data, description=description,
            random_weights=random_weights,
        )  # fmt: skip
        audit_record(
            actor=actor, action=AuditAction.NETWORK_REGISTER, target=network,
            data={"arch": arch, "source": source, "weights_sha256": network.weights_sha256,
                  "random_init": random_weights},
        )  # fmt: skip
    return network


def random_weights_message(*, name: str, arch: str) -> str:
    """Why registering ``arch`` without a checkpoint is refused, and the two ways on."""
    return (
        f"network {name}: no --checkpoint given, so {arch} would get random weights (an "
        "untrained network: its units detect nothing worth labeling). Pass --checkpoint FILE, "
        f"e.g. {arch}_places365.pth.tar from the CSAILVision places365 project (docs/pipeline.md, "
        "'Registering a Places365 network'), or --random-init if an untrained baseline is what "
        "you want (it is then marked 'untrained (random weights)' on every page)."
    )


def _network_store(
    *, name, arch, source, checkpoint, net, trust_pickle, training_data, description,
    random_weights,
) -> Network:  # fmt: skip
    network, _ = Network.objects.update_or_create(
        name=name,
        defaults={
            "arch": arch,
            "source": source,
            "checkpoint_path": str(Path(checkpoint).resolve()) if checkpoint else "",
            # Random weights are drawn again on every load: there is no fixed weights file to
            # identify, and an empty fingerprint without a checkpoint is what marks the network
            # untrained (Network.is_untrained).
            "weights_sha256": "" if random_weights else net.weights_sha256,
            "class_names": list(net.class_names),
            "preprocessing": dict(net.preprocessing),
            "layer_aliases": dict(net.layer_aliases),
            "trust_pickle": trust_pickle,
            "training_data": training_data,
            "description": description,
        },
    )
    return network


# The networks that ship with CrowdDissect (their checkpoints are in dissect/demo/): usable by name
# in every command and page on a fresh install; registered on first use.
BUILTIN_NETWORKS: dict[str, tuple[str, str]] = {
    "demo-places": (
        "demo world (scenes)",
        "Small AlexNet-style network trained on the demo world's scenes.",
    ),
    "demo-objects": (
        "demo world (objects)",
        "Small AlexNet-style network trained on the demo world's objects.",
    ),
}


def network_by_name(name: str, *, actor=None) -> Network | None:
    """The registered network called ``name``; a built-in network (``BUILTIN_NETWORKS``) is
    registered on first use, so ``demo-places`` works everywhere on a fresh install. None when
    ``name`` is neither (``network_unknown_message`` says what to do)."""
    network = Network.objects.filter(name=name).first()
    if network is not None or name not in BUILTIN_NETWORKS:
        return network
    training_data, description = BUILTIN_NETWORKS[name]
    return network_register(
        name=name, arch=name, training_data=training_data, description=description, actor=actor
    )


def network_unknown_message(name: str) -> str:
    """Why ``name`` names no network, with the registered and built-in names and the fix."""
    registered = ", ".join(Network.objects.order_by("name").values_list("name", flat=True))
    return (
        f"no network {name!r}; registered: {registered or 'none'}; built in: "
        f"{', '.join(BUILTIN_NETWORKS)}. Register yours with `python manage.py register_network "
        f"{name} --arch ARCH --checkpoint FILE [--classes FILE]`."
    )


_NET_CACHE: dict[tuple, object] = {}


def _checkpoint_name(checkpoint: str | Path, weights_sha256: str) -> str:
    """The checkpoint's name among the run artifacts: by its weights, so it never goes stale."""
    return f"networks/{weights_sha256}/{Path(checkpoint).name}"


def checkpoint_mirror(checkpoint: str | Path, *, weights_sha256: str) -> None:
    """With the object store, copy a registered checkpoint there, so workers on other hosts
    load it without a shared disk (as image sets, ``dissect.image_store``); nothing on local
    storage, where every process reads the registered file."""
    from dissect.artifacts import ALIAS, stored_save
    from dissect.image_store import mirror_enabled

    if mirror_enabled():
        stored_save(
            ALIAS, _checkpoint_name(checkpoint, weights_sha256), Path(checkpoint).read_bytes()
        )


def checkpoint_local(network: Network) -> str | None:
    """The checkpoint file this host loads: as registered on local storage; with the object
    store, this host's scratch copy, fetched once (written beside and renamed into place, so
    two workers never read half a file)."""
    from django.conf import settings

    from dissect.artifacts import ALIAS, stored_read, write_atomically
    from dissect.image_store import mirror_enabled

    if not network.checkpoint_path or not mirror_enabled():
        return network.checkpoint_path or None
    name = _checkpoint_name(network.checkpoint_path, network.weights_sha256)
    cached = Path(settings.SCRATCH_DIR) / name
    if not cached.is_file():
        try:
            data = stored_read(ALIAS, name)
        except FileNotFoundError:
            raise PipelineError(
                f"network {network.name}: its checkpoint is not in the object store ({name}); "
                "register it again on a host that has the file (`python manage.py "
                "register_network`)"
            ) from None
        write_atomically(cached, [data])
    return str(cached)


def network_load(*, network: Network):
    """The network's ``LoadedNetwork`` (cached per process: a worker runs many shards).

    Raises PipelineError when the checkpoint changed since registration.
    """
    from dissect.networks import NetworkLoadError, load_network

    key = (network.pk, network.arch, network.checkpoint_path, network.weights_sha256)
    if key in _NET_CACHE:
        return _NET_CACHE[key]
    try:
        net = load_network(
            network.arch,
            checkpoint=checkpoint_local(network),
            class_names=network.class_names or None,
            trust_pickle=network.trust_pickle,
            preprocessing=network.preprocessing or None,
        )
    except NetworkLoadError as exc:
        raise PipelineError(f"network {network.name}: {exc}") from exc
    if network.weights_sha256 and net.weights_sha256 != network.weights_sha256:
        raise PipelineError(
            f"network {network.name}: the weights changed since it was registered "
            f"({network.checkpoint_path or network.arch}); register it again with "
            "`python manage.py register_network`"
        )
    _NET_CACHE.clear()  # one network at a time: models can be large
    _NET_CACHE[key] = net
    return net
