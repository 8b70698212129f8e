"""The AlexNet-style network of the demo world, sized for 128x128 inputs.

Five conv layers with AlexNet's kernel sizes and strides (11/4, 5, 3, 3, 3) and its three max-pools,
so the spatial sizes are AlexNet's scaled to 128 px: conv1 32x32, pool1 16x16, conv2 16x16,
pool2 8x8, conv3-conv5 8x8, pool5 4x4. Batch norm (instead of AlexNet's LRN) lets it train in
minutes on a CPU. Every module has a name, so layers resolve by module path; the ``convN``
aliases point at the rectified outputs (``features.reluN``), as Caffe's in-place ReLU blobs did.
"""

from collections import OrderedDict

import torch
from torch import nn

DEFAULT_WIDTHS: tuple[int, int, int, int, int] = (48, 96, 144, 144, 128)
FC_WIDTH = 512

LAYER_ALIASES: dict[str, str] = {
    "conv1": "features.relu1",
    "pool1": "features.pool1",
    "conv2": "features.relu2",
    "pool2": "features.pool2",
    "conv3": "features.relu3",
    "conv4": "features.relu4",
    "conv5": "features.relu5",
    "pool5": "features.pool5",
}


def _conv(name: str, cin: int, cout: int, kernel: int, stride: int = 1) -> list:
    return [
        (f"conv{name}", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)),
        (f"bn{name}", nn.BatchNorm2d(cout)),
        (f"relu{name}", nn.ReLU()),  # not in-place: hooks may keep the conv output
    ]


class DemoAlexNet(nn.Module):
    """AlexNet-style CNN: ``features`` (conv1..pool5) then ``classifier`` (fc6, fc7, fc8)."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = DEFAULT_WIDTHS):
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.widths = tuple(widths)
        pool = lambda: nn.MaxPool2d(3, 2, 1)  # noqa: E731
        self.features = nn.Sequential(
            OrderedDict(
                [
                    *_conv("1", 3, w1, 11, 4),
                    ("pool1", pool()),
                    *_conv("2", w1, w2, 5),
                    ("pool2", pool()),
                    *_conv("3", w2, w3, 3),
                    *_conv("4", w3, w4, 3),
                    *_conv("5", w4, w5, 3),
                    ("pool5", pool()),
                ]
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("flatten", nn.Flatten()),
                    ("drop6", nn.Dropout(0.25)),
                    ("fc6", nn.Linear(w5 * 4 * 4, FC_WIDTH)),
                    ("relu6", nn.ReLU()),
                    ("drop7", nn.Dropout(0.25)),
                    ("fc7", nn.Linear(FC_WIDTH, FC_WIDTH)),
                    ("relu7", nn.ReLU()),
                    ("fc8", nn.Linear(FC_WIDTH, num_classes)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
