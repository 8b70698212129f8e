"""Every page works offline: no page loads or links anything from another host.

The test walks the URL conf for every GET route without parameters, then follows the links of
each HTML page it renders (as an admin, a researcher and an annotator, over a small world with a
run, a campaign, answers and unit labels), so detail pages are reached the way a user reaches
them. Each page must answer below 500 and name no other host in any src / href / action /
srcset / poster / CSS url(); the static files a page names must exist. Swagger UI and Redoc come
from drf-spectacular-sidecar (our static files), never from a CDN.
"""

import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

from tests.annotate.crowd.conftest import build_run

LOCAL_HOSTS = {"", "testserver", "localhost", "127.0.0.1", "[::1]"}
URL_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "xlink:href"}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""")
# Not followed: ends the session, or answers with a file rather than a page.
NOT_FOLLOWED = ("/accounts/logout/", "/files/", "/tasks/tile/", "/explain/images/", "/download/")
MAX_PAGES_PER_USER = 400


class _References(HTMLParser):
    """Every URL a page loads or links: attributes, srcset candidates, inline CSS url()."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str]] = []  # (what, url)
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name in URL_ATTRIBUTES:
                self.urls.append((f"<{tag} {name}>", value.strip()))
            elif name in {"srcset", "imagesrcset"}:
                for candidate in value.split(","):
                    if candidate.strip():
                        self.urls.append((f"<{tag} {name}>", candidate.split()[0]))
            elif name == "style":
                self.urls += [(f"<{tag} style>", u) for u in CSS_URL.findall(value)]
            elif name == "content" and "url=" in value.lower():  # <meta http-equiv=refresh>
                self.urls.append((f"<{tag} content>", value.split("=", 1)[1].strip()))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.urls += [("<style>", u) for u in CSS_URL.findall(data)]


def foreign_host(url: str) -> str | None:
    """The other host a URL points to, or None when it stays on this site."""
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob", "javascript", "mailto", "about"}:
        return None
    if parts.scheme and parts.scheme not in {"http", "https"}:
        return f"{parts.scheme}:"
    host = (parts.hostname or "").lower()
    return None if host in LOCAL_HOSTS else host


def get_routes() -> list[str]:
    """Paths of the GET routes that take no parameters (admin: only its index)."""

    def walk(resolver, prefix):
        for p in resolver.url_patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                if route.startswith("admin/"):
                    continue
                yield from walk(p, route)
            elif isinstance(p, URLPattern):
                yield route

    paths = ["/admin/"]
    for route in walk(get_resolver(), ""):
        route = route.replace("^", "").replace("$", "")
        if "<" in route or "(?P" in route or "\\" in route:
            continue
        if not ("/" + route).startswith(NOT_FOLLOWED):
            paths.append("/" + route)
    return sorted(set(paths))


def crawl(client: Client, seeds: list[str]) -> tuple[dict[str, int], list[str], set[str]]:
    """Render the seeds and every same-site page they link to. Returns (status per page,
    problems, view names seen)."""
    queue = deque(seeds)
    seen: set[str] = set(seeds)
    statuses: dict[str, int] = {}
    problems: list[str] = []
    views: set[str] = set()
    while queue and len(statuses) < MAX_PAGES_PER_USER:  # breadth first
        url = queue.popleft()
        # Ask for HTML, so the API answers with its browsable pages (their links are followed too).
        response = client.get(url, HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
        statuses[url] = response.status_code
        if response.status_code >= 500:
            problems.append(f"{url}: HTTP {response.status_code}")
            continue
        try:
            views.add(resolve(urlsplit(url).path).view_name)
        except Resolver404:
            pass
        if response.status_code in (301, 302, 303, 307, 308):
            target = urljoin(url, response["Location"])
            if not foreign_host(target):
                parts = urlsplit(target)
                target = parts.path + (f"?{parts.query}" if parts.query else "")
            if foreign_host(target):
                problems.append(f"{url}: redirects to {target}")
            elif target not in seen and not target.startswith(NOT_FOLLOWED):
                seen.add(target)
                queue.append(target)
            continue
        if "text/html" not in response.get("Content-Type", ""):
            continue
        parser = _References()
        parser.feed(response.content.decode("utf-8", "replace"))
        for what, ref in parser.urls:
            host = foreign_host(ref)
            if host:
                problems.append(f"{url}: {what} {ref!r} points to another host ({host})")
                continue
            parts = urlsplit(urljoin(url, ref))
            path = parts.path
            target = path + (f"?{parts.query}" if parts.query else "")
            if path.startswith(
                settings.STATIC_URL
                if settings.STATIC_URL.startswith("/")
                else "/" + settings.STATIC_URL
            ):
                name = path.split("/static/", 1)[1]
                if finders.find(name) is None:
                    problems.append(f"{url}: {what} names a missing static file {name}")
                continue
            if what.startswith(("<a ", "<link ")) or what == "<iframe src>":
                # Django's own admin: its index only (its pages are Django's, not ours).
                if path.startswith("/admin/") and path != "/admin/":
                    continue
                if target and target not in seen and not path.startswith(NOT_FOLLOWED):
                    if "format=" not in target:  # CSV / SVG twins of a page
                        seen.add(target)
                        queue.append(target)
    return statuses, problems, views


@pytest.fixture
def world(db, make_user):
    """A done run with two units, a running campaign, one submitted answer and unit labels."""
    from annotate.crowd import services as crowd
    from annotate.labels.aggregation import run_labels_recompute
    from dissect.models import UnitImage

    run = build_run(units=2, tops=14, controls=3)
    admin, researcher, annotator = (make_user(r) for r in ("admin", "researcher", "annotator"))
    campaign = crowd.campaign_create(
        run=run, layers=["conv5"], tiles_per_task=17, controls_per_task=3, redundancy=2
    )
    campaign = crowd.campaign_set_status(campaign=campaign, status="live", actor=researcher)
    worker = crowd.worker_for_user(user=annotator)
    assignment = crowd.assignment_next(worker=worker, campaign=campaign)
    control_ids = set(
        UnitImage.objects.filter(unit_id=assignment.task.unit_id, kind="control").values_list(
            "pk", flat=True
        )
    )
    controls = [i for i, tile in enumerate(assignment.task.tile_order) if tile in control_ids]
    crowd.assignment_submit(
        assignment=assignment,
        worker=worker,
        concept="sky",
        category="region",
        flagged_positions=controls,
    )
    crowd.assignment_next(worker=worker, campaign=campaign)  # an open task for the annotator
    run_labels_recompute(run_id=run.pk)
    return {"admin": admin, "researcher": researcher, "annotator": annotator, "run": run}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin", "researcher", "annotator"])
def test_every_page_renders_with_nothing_from_another_host(world, role):
    client = Client()
    client.force_login(world[role])
    statuses, problems, views = crawl(client, get_routes())
    assert not problems, "\n".join(problems)
    assert len(statuses) < MAX_PAGES_PER_USER, "the crawl hit its page cap: raise it or prune links"
    if role != "annotator":
        # The crawl reached the detail pages, not only the pages without parameters.
        for name in (
            "api-docs",
            "api-redoc",
            "dissect:run-detail",
            "dissect:layer-detail",
            "dissect:unit-detail",
            "crowd:campaign-detail",
            "labels:unit",
        ):
            assert name in views, f"{name} was never reached; seen: {sorted(views)}"
    else:
        assert "crowd:task" in views, sorted(views)


@pytest.mark.django_db
def test_api_docs_load_swagger_ui_and_redoc_from_our_static_files(make_user):
    client = Client()
    client.force_login(make_user("researcher"))
    swagger = client.get("/api/docs/").content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in swagger
    assert "cdn" not in swagger.lower()
    redoc = client.get("/api/redoc/").content.decode()
    assert "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in redoc
    for name in (
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js",
    ):
        assert finders.find(name), name
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/docs/" not in schema.content and b"/api/redoc/" not in schema.content
    # A CSP lets the browser fetch nothing from another host (Redoc's bundle asks for a CDN logo).
    for path in ("/api/docs/", "/api/redoc/"):
        csp = client.get(path)["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "img-src 'self' data:" in csp


def test_foreign_host_tells_other_hosts_from_this_site():
    assert foreign_host("/static/site.css") is None
    assert foreign_host("http://testserver/runs/") is None
    assert foreign_host("data:image/png;base64,AAAA") is None
    assert (
        foreign_host("https://cdn.jsdelivr.net/npm/swagger-ui-dist@latest/x.js")
        == "cdn.jsdelivr.net"
    )
    assert foreign_host("//fonts.googleapis.com/css") == "fonts.googleapis.com"
