"""The .mat reader on the authors' released files."""

import numpy as np
import pytest

from annotate.labels.iclr15 import (
    SCORED_IMAGES,
    category_distribution,
    network_name_from_path,
    read_iclr15,
)


def test_reader_layout(iclr15_files, iclr15_paths):
    for data, path in zip(iclr15_files, iclr15_paths, strict=True):
        assert [layer.name for layer in data.layers] == [
            "pool1",
            "pool2",
            "conv3",
            "conv4",
            "pool5",
        ]
        assert [len(layer.units) for layer in data.layers] == [96, 256, 384, 384, 256]
        assert all(len(unit) == 3 for layer in data.layers for unit in layer.units)
        precisions = np.array([a.precision for lay in data.layers for u in lay.units for a in u])
        # Every precision is a multiple of 1/57 (57 scored images per task).
        assert np.allclose(
            precisions * SCORED_IMAGES, np.round(precisions * SCORED_IMAGES), atol=1e-6
        )
        assert network_name_from_path(path) in {"places205-alexnet", "imagenet-alexnet"}


def test_reader_answers_reproduce_the_files_own_distribution(iclr15_files):
    for data in iclr15_files:
        reference = data.reference_distribution()
        for layer in data.layers:
            ours = category_distribution([a for unit in layer.units for a in unit])
            for category, percent in reference[layer.name].items():
                assert ours[category] == pytest.approx(percent, abs=0.1), (layer.name, category)


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_iclr15(tmp_path / "missing.mat")
    bad = tmp_path / "bad.mat"
    bad.write_text("not a mat file")
    with pytest.raises(ValueError, match="not a MATLAB"):
        read_iclr15(bad)
    from scipy.io import savemat

    other = tmp_path / "other.mat"
    savemat(other, {"something": np.zeros(3)})
    with pytest.raises(ValueError, match="layerAnnotation"):
        read_iclr15(other)
