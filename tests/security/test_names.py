"""Issue 12, point 5: network and image-set names are slugs at every door; CSV cells that a
spreadsheet would evaluate are neutralised. Inputs: tests/data/hostile_names.txt."""

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from core import csv_safe
from core.names import name_error
from tests.security.corpus import lines

HOSTILE = lines("hostile_names.txt")
GOOD = lines("good_names.txt")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_with_a_reason(name):
    message = name_error(name, field="name", what="network name")
    assert message and message.startswith("name: ")
    assert "\x00" not in message and "\n" not in message  # shown safely


@pytest.mark.parametrize("name", GOOD)
def test_slugs_stay_valid(name):
    assert name_error(name) is None


@pytest.mark.parametrize("name", HOSTILE)
def test_network_register_refuses_the_name_before_loading(db, name):
    from dissect.models import Network
    from dissect.services import PipelineError, network_register

    with pytest.raises(PipelineError) as refused:
        network_register(name=name, arch="no-such-arch")
    assert refused.value.field == "name"
    assert "not a valid network name" in str(refused.value) or "at most" in str(refused.value)
    assert not Network.objects.exists()


@pytest.mark.parametrize("name", ["Bad Name!", '=HYPERLINK("http://x")', "a/b"])
def test_image_set_doors_refuse_the_name(db, tmp_path, name):
    from dissect.models import ImageSet
    from dissect.services import PipelineError, image_set_scan, import_broden

    with pytest.raises(PipelineError) as refused:
        image_set_scan(name=name, root=tmp_path)
    assert refused.value.field == "name"
    with pytest.raises(PipelineError):
        import_broden(root=tmp_path, name=name)  # refused before any manifest file is named
    assert not ImageSet.objects.exists()
    assert not any(tmp_path.rglob("*.csv"))


def test_the_command_shows_the_field_message(db):
    with pytest.raises(CommandError) as refused:
        call_command("register_network", "Bad Name!", "--arch", "demo-places")
    assert "not a valid network name" in str(refused.value)


def test_iclr15_import_refuses_a_bad_network_name(db, tmp_path):
    from annotate.labels.importers import iclr15_import

    with pytest.raises(ValueError, match="not a valid network name"):
        iclr15_import(path=tmp_path / "x.txt", network_name="a/b")


FORMULAS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", '=HYPERLINK("http://x")']


@pytest.mark.parametrize("cell", FORMULAS)
def test_formula_cells_are_neutralised(cell):
    assert csv_safe.safe_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-0.25", "+3", "-1e-05", "0.5", "dog", "", None, -0.5, 3])
def test_numbers_and_plain_text_are_left_alone(cell):
    assert csv_safe.safe_cell(cell) == cell


def test_writers_neutralise_every_row():
    out = io.StringIO()
    w = csv_safe.writer(out, lineterminator="\n")
    w.writerow(["layer", "label"])
    w.writerows([["conv5", "=cmd"], ["conv5", "-0.3"]])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["layer", "label"], ["conv5", "'=cmd"], ["conv5", "-0.3"]]
    out = io.StringIO()
    d = csv_safe.dict_writer(out, ["a"], lineterminator="\n")
    d.writeheader()
    d.writerow({"a": "@x"})
    assert out.getvalue() == "a\n'@x\n"
