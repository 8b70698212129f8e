"""The API schema is true to the responses: real responses of the main read endpoints (and of
an error) validate against the schema's own response definitions (nullable fields included)."""

import pytest
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from annotate.crowd import services

pytestmark = pytest.mark.django_db


def _json_schema(node):
    """OpenAPI 3.0 -> JSON Schema: ``nullable: true`` becomes a null alternative."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _json_schema(v) for k, v in node.items() if k not in ("readOnly", "writeOnly")}
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    return node


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _check(schema, path: str, method: str, status: int, body) -> None:
    responses = schema["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method} {path}: {status} is not documented"
    content = responses[str(status)].get("content", {}).get("application/json")
    assert content is not None, f"{method} {path} {status}: no JSON body documented"
    definition = {
        **_json_schema(content["schema"]),
        "$defs": _json_schema(schema["components"]["schemas"]),
    }
    definition = _refs_to_defs(definition)
    errors = sorted(Draft202012Validator(definition).iter_errors(body), key=str)
    assert not errors, f"{method} {path}: {errors[0].message} at {list(errors[0].path)}"


def _refs_to_defs(node):
    if isinstance(node, list):
        return [_refs_to_defs(n) for n in node]
    if isinstance(node, dict):
        return {
            k: (v.replace("#/components/schemas/", "#/$defs/") if k == "$ref" else _refs_to_defs(v))
            for k, v in node.items()
        }
    return node


def test_real_responses_validate_against_the_schema(schema, make_user, crowd_run):
    researcher, annotator = make_user("researcher"), make_user("annotator")
    campaign = services.campaign_create(run=crowd_run, layers=["conv5"])
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    worker_api = APIClient()
    worker_api.force_authenticate(annotator)
    leased = worker_api.post(
        "/api/crowd/assignments/next/", {"campaign": campaign.pk}, format="json"
    )
    assert leased.status_code == 200
    _check(schema, "/api/crowd/assignments/next/", "post", 200, leased.json())

    api = APIClient()
    api.force_authenticate(researcher)
    run, unit = crowd_run.pk, crowd_run.layer_set.get().units.first().pk
    reads = [
        ("/api/dissect/runs/", "/api/dissect/runs/"),
        ("/api/dissect/runs/{id}/", f"/api/dissect/runs/{run}/"),
        ("/api/dissect/runs/{id}/status/", f"/api/dissect/runs/{run}/status/"),
        ("/api/dissect/units/", f"/api/dissect/units/?run={run}"),
        ("/api/dissect/units/{id}/", f"/api/dissect/units/{unit}/"),
        ("/api/dissect/layers/", f"/api/dissect/layers/?run={run}"),
        ("/api/dissect/networks/", "/api/dissect/networks/"),
        ("/api/dissect/image-sets/", "/api/dissect/image-sets/"),
        ("/api/crowd/campaigns/", "/api/crowd/campaigns/"),
        ("/api/crowd/campaigns/{id}/", f"/api/crowd/campaigns/{campaign.pk}/"),
        ("/api/crowd/tasks/", f"/api/crowd/tasks/?campaign={campaign.pk}"),
        ("/api/crowd/assignments/", "/api/crowd/assignments/"),
        ("/api/crowd/answers/", "/api/crowd/answers/"),
        ("/api/crowd/categories/", "/api/crowd/categories/"),
        ("/api/labels/unit-labels/", "/api/labels/unit-labels/"),
    ]
    for path, url in reads:
        response = api.get(url)
        assert response.status_code == 200, (url, response.content[:200])
        _check(schema, path, "get", 200, response.json())

    refused = api.post(
        "/api/crowd/campaigns/",
        {"run": run, "layers": ["conv5"], "redundancy": 10**9},
        format="json",
    )
    _check(schema, "/api/crowd/campaigns/", "post", 400, refused.json())
    gone = api.get("/api/dissect/runs/999999/")
    _check(schema, "/api/dissect/runs/{id}/", "get", 404, gone.json())
    conflict = api.post(f"/api/dissect/runs/{run}/cancel/")
    assert conflict.status_code == 409
    _check(schema, "/api/dissect/runs/{id}/cancel/", "post", 409, conflict.json())
