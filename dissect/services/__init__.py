"""Writes of the dissection pipeline: networks, image sets, runs, shards, merge, render, resume,
cancel, and the README's demo runs.

The numeric work is the engine's (``dissect.engine``, ``dissect.networks``, ``dissect.images``);
this package turns it into rows and files and keeps every run's status row current. torch is only
imported inside the functions that compute, so the web process can import it.

- ``common``: ``PipelineError`` / ``PipelineConflict``, code version, a run's folder;
- ``networks``: register and load networks;
- ``image_sets``: scan folders of images;
- ``runs``: create, start, resume, cancel, fail, finish and wait for runs;
- ``extraction``: one shard's forward pass, the merge, the empirical receptive field;
- ``rendering``: tiles (in parts) and montages;
- ``demo``: the README's demo runs.
"""

from dissect.parameters import DEFAULTS, DEVICES, RUN_OPTIONS, RUN_PARAMETERS, SEGMENTATIONS
from dissect.services.common import (
    PipelineConflict,
    PipelineError,
    code_version,
)
from dissect.services.demo import demo_runs_create
from dissect.services.extraction import (
    load_shard_stats,
    merge_stats,
    run_merge,
    run_receptive_field,
    shard_extract,
    shard_state_path,
)
from dissect.services.image_sets import image_set_refresh_summary, image_set_scan, import_broden
from dissect.services.networks import network_load, network_register
from dissect.services.rendering import render_parts, run_montages, run_render
from dissect.services.runs import (
    options_clean,
    run_cancel,
    run_create,
    run_fail,
    run_finish,
    run_resume,
    run_start,
    run_wait,
)

__all__ = [
    "DEFAULTS",
    "DEVICES",
    "RUN_OPTIONS",
    "RUN_PARAMETERS",
    "SEGMENTATIONS",
    "PipelineConflict",
    "PipelineError",
    "code_version",
    "demo_runs_create",
    "image_set_refresh_summary",
    "image_set_scan",
    "import_broden",
    "load_shard_stats",
    "merge_stats",
    "network_load",
    "network_register",
    "options_clean",
    "render_parts",
    "run_cancel",
    "run_create",
    "run_fail",
    "run_finish",
    "run_merge",
    "run_montages",
    "run_receptive_field",
    "run_render",
    "run_resume",
    "run_start",
    "run_wait",
    "shard_extract",
    "shard_state_path",
]
