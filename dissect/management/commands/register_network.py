"""``python manage.py register_network NAME --arch ARCH [--checkpoint FILE] [--classes FILE]``."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Register a network (architecture + checkpoint) so runs can use it by name."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--arch", required=True,
                            help="torchvision name (alexnet, resnet18...), demo-places, ...")  # fmt: skip
        parser.add_argument(
            "--checkpoint", help="state_dict, Places365 release or TorchScript file"
        )
        parser.add_argument("--classes", help="class-name file (one per line)")
        parser.add_argument("--trust-pickle", action="store_true",
                            help="allow a whole pickled model (runs code from the file)")  # fmt: skip
        parser.add_argument("--random-init", action="store_true",
                            help="no checkpoint on purpose: an untrained (random-weights) baseline")  # fmt: skip
        parser.add_argument("--input-size", type=int, help="override the input size in px")
        parser.add_argument("--training-data", default="", help="e.g. Places205, ImageNet")
        parser.add_argument("--description", default="")

    def handle(self, *args, **o):
        from dissect.services import PipelineError, network_register

        preprocessing = None
        if o["input_size"]:
            size = o["input_size"]
            preprocessing = {"input_size": size, "resize": round(size * 256 / 224)}
        try:
            network = network_register(
                name=o["name"], arch=o["arch"], checkpoint=o["checkpoint"],
                class_names=o["classes"], trust_pickle=o["trust_pickle"],
                preprocessing=preprocessing, training_data=o["training_data"],
                description=o["description"], random_init=o["random_init"],
            )  # fmt: skip
        except PipelineError as exc:
            raise CommandError(str(exc)) from exc
        untrained = ", UNTRAINED (random weights)" if network.is_untrained else ""
        self.stdout.write(
            f"network {network.name}{untrained}: {network.arch}, {len(network.class_names)} classes, "
            f"weights sha256 {network.weights_sha256[:12]}, layers: "
            f"{', '.join(network.layer_aliases) or '(module paths: manage.py layers ' + network.name + ')'}"
        )
