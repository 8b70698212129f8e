"""The layer direction holds for imports (lint-imports, in .ci/run) and for ORM lookups: no lower
layer reads a higher layer's models through a relation's name, which an import contract cannot see."""

import re
import subprocess
import sys
from pathlib import Path

from django.apps import apps

REPO = Path(__file__).resolve().parents[2]
# Lowest first, as in pyproject's import contract.
LAYERS = {"core": 0, "dissect": 1, "crowd": 2, "labels": 3, "explain": 4}
SOURCES = {
    "core": REPO / "core",
    "dissect": REPO / "dissect",
    "crowd": REPO / "annotate" / "crowd",
    "labels": REPO / "annotate" / "labels",
    "explain": REPO / "annotate" / "explain",
}


def _upward_relations() -> list[tuple[int, int, str]]:
    """(layer of the model, layer of the related model, lookup name) for every reverse relation
    by which a model reaches one of a higher layer."""
    found = []
    for model in apps.get_models():
        low = LAYERS.get(model._meta.app_label)
        for rel in model._meta.related_objects:
            high = LAYERS.get(rel.related_model._meta.app_label)
            if low is not None and high is not None and high > low:
                found.append((low, high, rel.field.related_query_name()))
    return found


def _source_files(app: str):
    for path in SOURCES[app].rglob("*.py"):
        if "migrations" not in path.parts:
            yield path


def test_the_relation_list_knows_what_to_look_for():
    # The check below is only worth something if it knows the relations that cross layers.
    names = {name for _, _, name in _upward_relations()}
    assert {"labels", "tasks", "campaigns", "answers"} <= names


def test_no_lower_layer_follows_a_relation_into_a_higher_layer():
    relations = _upward_relations()
    offences = []
    for app, level in LAYERS.items():
        # Relations from this layer or below into a layer above it.
        names = {name for low, high, name in relations if low <= level < high}
        if not names:
            continue
        words = "|".join(sorted(map(re.escape, names)))
        lookup = re.compile(rf"[\"'](?:\w+__)*(?:{words})__\w+|__(?:{words})[\"']")
        access = re.compile(rf"\.(?:{words})\.(?:all|filter|exclude|count|exists|values)\(")
        for path in _source_files(app):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if lookup.search(line) or access.search(line):
                    offences.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offences, "\n".join(offences)


def test_no_code_outside_migrations_looks_models_up_by_name():
    offences = [
        f"{path.relative_to(REPO)}"
        for app in LAYERS
        for path in _source_files(app)
        if "apps.get_model(" in path.read_text()
    ]
    assert not offences


def test_the_import_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
