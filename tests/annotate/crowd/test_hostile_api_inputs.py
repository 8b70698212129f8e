"""The hostile API inputs of tests/data/hostile_api_inputs.json (issue 12, point 4): each gets
its 4xx with a ``{"detail", "field"}`` body naming the field, never a 500."""

import json
from pathlib import Path

import pytest
from rest_framework.test import APIClient

CORPUS = json.loads(
    (Path(__file__).parents[2] / "data" / "hostile_api_inputs.json").read_text(encoding="utf-8")
)["cases"]

pytestmark = pytest.mark.django_db


def _fill(value, names: dict):
    """The case's placeholders ({run}, {network}, {image_set}) replaced by the run's values."""
    if isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_hostile_input_is_refused_with_its_field(case, make_user, crowd_run):
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(make_user(case["role"]))
    names = {
        "{run}": crowd_run.pk,
        "{network}": crowd_run.network.name,
        "{image_set}": crowd_run.image_set.name,
    }
    body = _fill(case["body"], names)
    if case["method"] == "get":
        response = api.get(case["path"])
    else:
        fmt = case.get("format", "json")
        response = getattr(api, case["method"])(case["path"], body, format=fmt)
    assert response.status_code == case["status"], response.content[:500]
    if case["field"] is not None:
        data = response.json()
        assert data["field"] == case["field"], data
        assert data["detail"].split(":")[0] in (case["field"], case["field"].split(".")[-1]), data


def test_the_corpus_covers_the_issue(make_user):
    paths = " ".join(c["path"] for c in CORPUS)
    for needle in ("assignments/abc/submit", "assignments/abc/return", "assignments/abc/skip",
                   "units/?run=abc", "%00"):  # fmt: skip
        assert needle in paths
    fields = {(c["field"], json.dumps(c["body"])) for c in CORPUS}
    assert any(f == "seed" and str(2**63) in b for f, b in fields)
    assert any(f == "max_tasks_per_worker" and "-1" in b for f, b in fields)
    assert any(f == "redundancy" and str(10**9) in b for f, b in fields)
    assert any(f == "lease_minutes" and str(10**7) in b for f, b in fields)


@pytest.mark.parametrize("value", ["abc", str(2**63), "-1", "1%20OR%201=1"])
def test_every_schema_endpoint_answers_bad_ids_and_filters_without_a_500(
    value, make_user, crowd_run
):
    """A sweep: every path and method of the schema, its path parameters and the common
    filters set to a bad value, as an admin (who passes every permission)."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(make_user("admin"))
    for path, operations in schema["paths"].items():
        url = path.replace("{id}", value).replace("{network}", value)
        for method in operations:
            if method not in ("get", "post"):
                continue
            query = f"?run={value}&campaign={value}&page={value}" if method == "get" else ""
            response = getattr(api, method)(url + query, {}, format="json")
            assert response.status_code < 500, (method, url, response.content[:300])
