"""Issue 12, point 5: answers that look like spreadsheet formulas leave every CSV as text."""

import csv
import io
from pathlib import Path

from django.core.files.storage import default_storage

from annotate.labels.aggregation import run_labels_recompute
from annotate.labels.exports import export_create, export_run

FORMULA = '=HYPERLINK("http://x")'
ANSWERS = [
    (0, "a", FORMULA, "object", 0.9, [], "approved"),
    (0, "b", "@SUM(A1)", "object", 0.8, [], "approved"),
    (1, "a", "+cmd", "region", 1.0, [], "approved"),
]


def test_csv_exports_neutralise_formula_cells(crowd_world):
    world = crowd_world(ANSWERS)
    run_labels_recompute(run_id=world["run"].pk)
    for kind in ("csv", "tally"):
        export = export_create(
            kind=kind, parameters={"network": "tiny-net"}, actor=None, enqueue=False
        )
        export = export_run(export_id=export.pk)
        assert export.status == "done", export.error
        rows = list(
            csv.reader(io.StringIO(Path(default_storage.path(export.file_path)).read_text()))
        )
        for row in rows[1:]:
            for cell in row:
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (kind, row)
                if cell.startswith("-"):
                    float(cell)  # only numbers may start with a minus
        if kind == "csv":
            header = rows[0]
            descriptions = [dict(zip(header, row, strict=True))["descriptions"] for row in rows[1:]]
            assert any(d.startswith("'" + FORMULA) for d in descriptions), descriptions
