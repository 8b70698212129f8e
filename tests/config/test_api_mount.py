"""One API mount: every DRF endpoint lives under /api/<app>/ (config.urls.API_APPS) and the
schema lists every one of them, with the error bodies of core.errors."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from config.urls import API_APPS


def _drf_routes(patterns, prefix=""):
    """(path, view class) of every DRF view in the URL tree (format-suffix duplicates left out)."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _drf_routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "cls", None)
            route = prefix + str(entry.pattern)
            if view_class is not None and "format" not in route:
                yield route, view_class


def _schema_path(route: str) -> str:
    """A Django route as the schema writes it: /api/crowd/assignments/{id}/submit/."""
    route = route.replace("^", "").replace("$", "").replace("\\.", ".")
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return "/" + route.replace("{pk}", "{id}")


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_every_drf_view_is_under_one_api_mount_and_in_the_schema(schema):
    routes = [
        (_schema_path(route), view) for route, view in _drf_routes(get_resolver().url_patterns)
    ]
    docs = ("/api/schema/", "/api/docs/", "/api/redoc/")  # the schema and its two readers
    routes = [(path, view) for path, view in routes if path not in docs]
    routes = [(path, view) for path, view in routes if path != "/api/crowd/"]  # the router's root
    assert routes
    for path, view in routes:
        app = path.split("/")[2] if path.startswith("/api/") else None
        assert app in API_APPS, f"{view.__name__} at {path}: mount it under /api/<app>/"
        assert path in schema["paths"], f"{path} missing from the schema"
    for app in API_APPS:
        assert any(p.startswith(f"/api/{app}/") for p in schema["paths"]), app


def test_the_schema_documents_errors_nullable_fields_and_the_run_status(schema):
    submit = schema["paths"]["/api/crowd/assignments/{id}/submit/"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "429"} <= set(submit)
    assert submit["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    status = schema["paths"]["/api/dissect/runs/{id}/status/"]["get"]["responses"]["200"]
    assert status["content"]["application/json"]["schema"]["$ref"].endswith("/RunStatus")
    cancel = schema["paths"]["/api/dissect/runs/{id}/cancel/"]["post"]["responses"]
    assert "409" in cancel
    campaign = schema["components"]["schemas"]["CampaignCreate"]["properties"]
    assert campaign["max_tasks_per_worker"]["nullable"] is True
    assert campaign["redundancy"]["maximum"] == 50 and campaign["seed"]["maximum"] == 2**63 - 1


def test_the_schema_generates_without_warnings_and_validates(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))
