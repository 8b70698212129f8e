"""The .mat reader on the authors' released files (packaged in annotate/labels/data/iclr15/)."""

import hashlib

import numpy as np
import pytest

from annotate.labels.iclr15 import (
    PACKAGED_DIR,
    SCORED_IMAGES,
    category_distribution,
    network_name_from_path,
    read_iclr15,
)

# The released files, byte for byte (data/iclr15/PROVENANCE.md lists the same checksums).
RELEASED_SHA256 = {
    "unitAnnotation_places205-alexnet.mat": "32ebdec494736a32baa2ac9e31e1e4ae3aaa5f80a7d6d8941c6649289c711b4f",
    "unitAnnotation_imagenet-alexnet.mat": "976e3cc22dc41dfc0f09ad568205d8dd428ea25d1bd1045608aa22109651f958",
}


def test_packaged_files_are_the_released_ones_with_license_and_provenance(iclr15_paths):
    assert {p.name for p in iclr15_paths} == set(RELEASED_SHA256)
    for path in iclr15_paths:
        assert path.parent == PACKAGED_DIR
        assert hashlib.sha256(path.read_bytes()).hexdigest() == RELEASED_SHA256[path.name]
    assert "MIT License" in (PACKAGED_DIR / "LICENSE").read_text()
    assert "Bolei Zhou" in (PACKAGED_DIR / "LICENSE").read_text()
    provenance = (PACKAGED_DIR / "PROVENANCE.md").read_text()
    assert "zhoubolei/cnnvisualizer" in provenance
    assert all(digest in provenance for digest in RELEASED_SHA256.values())
    assert (PACKAGED_DIR / "UPSTREAM-README.md").is_file()


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
