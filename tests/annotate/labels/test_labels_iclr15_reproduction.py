"""The ICLR'15 reproduction: import both released files, then the report reproduces the authors'
per-layer category distribution (layerAverageCount) within 0.1 percentage points."""

import json
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command

from annotate.labels.importers import iclr15_import
from annotate.labels.reports import layer_report, network_comparison, run_for_network
from core.concepts.normalize import normalize_concept


def independent_detector_count(layer) -> int:
    """The detector rule computed straight from the file, without the database: mean precision of
    the three answers >= 0.75 and at least two answers naming the same normalized concept (the
    plurality concept)."""
    count = 0
    for unit in layer.units:
        names = Counter(normalize_concept(a.description).name for a in unit)
        precision = sum(a.precision for a in unit) / len(unit)
        if precision >= 0.75 and names.most_common(1)[0][1] >= 2:
            count += 1
    return count


@pytest.mark.django_db
def test_import_both_files_and_reproduce_the_authors_distribution(iclr15_paths, iclr15_files):
    from annotate.crowd.models import Answer
    from annotate.labels.models import UnitLabel
    from dissect.models import DissectionRun, Layer, Unit

    results = [iclr15_import(path=path) for path in iclr15_paths]
    names = ["places205-alexnet", "imagenet-alexnet"]
    for result, name, data in zip(results, names, iclr15_files, strict=True):
        run = run_for_network(network=name)
        assert run.pk == result.run_id
        assert run.status == DissectionRun.Status.IMPORTED and run.image_set is None
        assert list(Layer.objects.filter(run=run).values_list("name", "unit_count")) == [
            ("pool1", 96),
            ("pool2", 256),
            ("conv3", 384),
            ("conv4", 384),
            ("pool5", 256),
        ]
        assert Unit.objects.filter(layer__run=run).count() == 1376
        assert Answer.objects.filter(assignment__task__unit__layer__run=run).count() == 3 * 1376
        assert UnitLabel.objects.filter(unit__layer__run=run).count() == 1376

        reference = data.reference_distribution()
        rows = layer_report(run=run)
        assert [r.layer for r in rows] == list(reference)
        for row in rows:
            for category, percent in reference[row.layer].items():
                assert row.category_percent[category] == pytest.approx(percent, abs=0.1), (
                    name,
                    row.layer,
                    category,
                )
        # Detector counts agree with the rule applied straight to the file.
        for row, layer in zip(rows, data.layers, strict=True):
            assert row.detectors == independent_detector_count(layer), (name, row.layer)

    # Side by side: Places205 vs ImageNet on the same five layers.
    comparison = network_comparison(runs=[run_for_network(network=n) for n in names])
    assert comparison["layers"] == ["pool1", "pool2", "conv3", "conv4", "pool5"]
    places, imagenet = (comparison["networks"][n] for n in names)
    # The paper's finding: the scene-trained network has more object answers in pool5.
    assert places[-1]["category_percent"]["object"] > imagenet[-1]["category_percent"]["object"]

    # The command prints the same numbers.
    out = StringIO()
    call_command("report", network="places205-alexnet", format="json", stdout=out)
    payload = json.loads(out.getvalue())
    reference = iclr15_files[0].reference_distribution()
    for layer in payload["layers"]:
        for category, percent in reference[layer["layer"]].items():
            assert layer["category_percent"][category] == pytest.approx(percent, abs=0.1)
    out = StringIO()
    call_command("report", network="imagenet-alexnet", layer=["pool5"], format="csv", stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("pool5,256,768,")
    out = StringIO()
    call_command("report", network="imagenet-alexnet", stdout=out)
    assert "pool5" in out.getvalue() and "object %" in out.getvalue()


def write_small_mat(path):
    """A two-layer file in the released layout (cell arrays), 2 and 3 units, three answers each."""
    import numpy as np
    from scipy.io import savemat

    layers = [("conv1", 2), ("conv2", 3)]
    cells = np.empty((len(layers), 2), dtype=object)
    for i, (name, units) in enumerate(layers):
        table = np.empty((units, 9), dtype=object)
        for u in range(units):
            for k, (text, code) in enumerate([("Sky", 3), ("blue sky", 3), ("dogs", 2)]):
                table[u, 3 * k] = text
                table[u, 3 * k + 1] = np.array([[code]], dtype=float)
                table[u, 3 * k + 2] = np.array([[50 / 57]])
        cells[i, 0], cells[i, 1] = table, name
    average = np.tile(np.array([0, 1 / 3, 2 / 3, 0, 0, 0]), (len(layers), 1))
    savemat(path, {"layerAnnotation": cells, "layerAverageCount": average})


@pytest.mark.django_db
def test_import_refuses_duplicates_and_replaces_on_request(tmp_path):
    from django.core.management.base import CommandError

    from annotate.labels.models import UnitLabel
    from dissect.models import Network

    path = tmp_path / "unitAnnotation_tiny-alexnet.mat"
    write_small_mat(path)
    call_command("import_iclr15", str(path), verbosity=0, stdout=StringIO())
    network = Network.objects.get(name="tiny-alexnet")
    assert network.source == Network.Source.IMPORTED
    labels = UnitLabel.objects.filter(unit__layer__run__network=network)
    assert labels.count() == 5
    assert set(labels.values_list("concept_text", "category", "is_detector")) == {
        ("sky", "region", True)
    }
    with pytest.raises(CommandError, match="--replace"):
        call_command("import_iclr15", str(path), verbosity=0)
    call_command("import_iclr15", str(path), replace=True, verbosity=0, stdout=StringIO())
    assert Network.objects.filter(name="tiny-alexnet").count() == 1
    out = StringIO()
    call_command("report", network="tiny-alexnet", format="csv", stdout=out)
    rows = out.getvalue().strip().splitlines()
    assert rows[1].startswith("conv1,2,6,0.0,33.33,66.67,")
    with pytest.raises(CommandError, match="not found"):
        call_command("report", network="nope")
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_iclr15", str(tmp_path / "missing.mat"), verbosity=0)


@pytest.mark.django_db
def test_import_without_a_path_imports_the_packaged_files(monkeypatch):
    """`import_iclr15` alone imports both packaged files; --network needs exactly one file."""
    from django.core.management.base import CommandError

    import annotate.labels.management.commands.import_iclr15 as command
    from annotate.labels.iclr15 import packaged_paths
    from annotate.labels.importers import ImportResult

    seen = []

    def fake_import(*, path, network_name, replace, progress):
        seen.append((path, network_name, replace))
        return ImportResult(1, 1, 1, 5, 10, 30, 10)

    monkeypatch.setattr(command, "iclr15_import", fake_import)
    out = StringIO()
    call_command("import_iclr15", verbosity=0, stdout=out)
    assert seen == [(path, None, False) for path in packaged_paths()]
    assert all(path.is_file() for path in packaged_paths())
    assert "unitAnnotation_places205-alexnet.mat: imported 30 answers" in out.getvalue()
    with pytest.raises(CommandError, match="exactly one file"):
        call_command("import_iclr15", network="x", verbosity=0)


@pytest.mark.django_db
def test_report_footer_prints_the_detector_rule_with_its_values(tmp_path):
    path = tmp_path / "unitAnnotation_tiny-alexnet.mat"
    write_small_mat(path)
    call_command("import_iclr15", str(path), verbosity=0, stdout=StringIO())
    out = StringIO()
    call_command("report", network="tiny-alexnet", stdout=out)
    footer = out.getvalue().strip().splitlines()[-1]
    assert footer == (
        "detector: unit precision >= 0.75 and at least 2 answers naming the consensus concept"
    )


@pytest.mark.django_db
def test_an_imported_run_page_says_what_it_is_without_empty_fields(tmp_path, client, make_user):
    from dissect.models import DissectionRun

    path = tmp_path / "unitAnnotation_tiny-alexnet.mat"
    write_small_mat(path)
    call_command("import_iclr15", str(path), verbosity=0, stdout=StringIO())
    run = DissectionRun.objects.get(network__name="tiny-alexnet")
    client.force_login(make_user("researcher"))
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Imported labels, not a dissection" in page
    assert "unitAnnotation_tiny-alexnet.mat" in page and "top 60 images per unit" in page
    assert "None images" not in page and "shards of" not in page  # no empty dissection fields
    assert 'id="run-progress"' not in page and "Bad files skipped" not in page  # no 0/0 bars
    assert "/reports/network/tiny-alexnet/categories/" in page
