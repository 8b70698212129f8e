"""Issue 12, point 5: a network registered before names were checked ('Bad Name!', a formula,
a '/') no longer turns /reports/ into a 500 for every researcher, and its pages and exports work."""

import pytest

from annotate.labels.aggregation import run_labels_recompute
from annotate.labels.exports import export_create, export_run

ANSWERS = [
    (0, "a", "sky", "region", 0.9, [], "approved"),
    (0, "b", "sky", "region", 0.8, [], "approved"),
]


@pytest.mark.parametrize("name", ["Bad Name!", '=HYPERLINK("http://x")', "a/b"])
def test_reports_with_a_legacy_network_name(crowd_world, client, make_user, name):
    world = crowd_world(ANSWERS, name=name)
    run_labels_recompute(run_id=world["run"].pk)
    client.force_login(make_user("researcher"))
    index = client.get("/reports/")
    assert index.status_code == 200
    for page in ("categories", "detectors", "concepts", "precision"):
        from django.urls import reverse

        name_of = {"concepts": "concept-detectors"}.get(page, page)
        url = reverse(f"labels:{name_of}", args=[name])
        assert url in index.content.decode().replace("&amp;", "&") or page == "concepts"
        assert client.get(url).status_code == 200, url
    export = export_create(kind="csv", parameters={"network": name}, actor=None, enqueue=False)
    export = export_run(export_id=export.pk)
    assert export.status == "done", export.error
    assert "/" not in export.file_path.rsplit("/", 1)[1]
