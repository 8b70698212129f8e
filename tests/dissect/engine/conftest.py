"""Small torchvision-free networks for engine tests."""

import pytest
import torch
from torch import nn

from dissect.networks import LoadedNetwork, default_preprocessing


def tiny_net(seed: int = 0, input_size: int = 32) -> LoadedNetwork:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(inplace=True),  # in-place on purpose: hooks must still see the right values
        nn.MaxPool2d(2),
        nn.Conv2d(6, 5, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 4),
    ).eval()
    return LoadedNetwork(
        model=model,
        arch="tiny",
        class_names=[f"c{i}" for i in range(4)],
        preprocessing=default_preprocessing(input_size),
        layer_aliases={"conv1": "1", "pool1": "2", "conv2": "4"},
        weights_sha256="",
    )


@pytest.fixture
def net():
    return tiny_net()
