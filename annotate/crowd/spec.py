"""A campaign's parameters, once: type, range, default and help of each. ``campaign_create``
checks them with ``CAMPAIGN_SPEC.clean``; ``CampaignForm``, ``CampaignCreateSerializer`` and
``manage.py create_campaign`` build their fields from the same entries, so every door refuses
a bad value with one message."""

from __future__ import annotations

from core.errors import MAX_INT64
from core.parameters import Param, ParamSet

# A task shows at least this many of the unit's own tiles besides its controls.
MIN_UNMARKED_UNIT_TILES = 10

CAMPAIGN_SPEC = ParamSet((
    Param("name", str, "", "Shown to researchers (default: network and layers).",
          max_length=200),
    Param("tiles_per_task", int, 60, "Tiles per task, controls included.", low=11, high=200,
          cli="tiles"),
    Param("controls_per_task", int, 3, "Planted control tiles per task.", low=1, high=20,
          cli="controls"),
    Param("allow_fewer_controls", bool, False,
          "Accept units with fewer rendered control tiles than controls_per_task (their tasks "
          "show fewer controls); without it such a campaign is refused."),
    Param("redundancy", int, 3,
          "Answers per unit; with max_answers above it, the minimum of adaptive redundancy.",
          low=1, high=50),
    Param("max_answers", int, None,
          "Adaptive redundancy: most answers per unit; a unit whose label is confident after "
          "redundancy answers stops, one where workers disagree gets more up to this "
          "(empty: exactly redundancy).", low=1, high=50, nullable=True),
    Param("target_confidence", float, 0.9,
          "Adaptive redundancy: posterior of a unit's label at which it stops receiving workers.",
          low=0.5, high=1.0, open_high=True),
    Param("fill_order", str, "complete",
          "complete: finish units to their redundancy before opening new ones (labels early); "
          "spread: the fewest-answered unit first.", choices=("complete", "spread")),
    Param("lease_minutes", int, 20, "How long a worker holds a task.", low=1, high=24 * 60),
    Param("reward_cents", int, 0, "Reward per task (outside crowds).", low=0, high=100_000),
    Param("instructions", str, "", "Extra instructions shown on every task.",
          max_length=10_000),
    Param("gold_rate", float, 0.0, "Share of tasks that are gold units.", low=0.0, high=1.0),
    Param("max_tasks_per_worker", int, None, "Tasks one worker may answer (empty: no limit).",
          low=1, high=1_000_000, nullable=True),
    Param("min_gold_accuracy", float, 0.5,
          "Gold accuracy below which a worker's answers stop counting.", low=0.0, high=1.0),
    Param("auto_approve_hours", int, 72, "Submitted answers are approved after this long.",
          low=1, high=24 * 365),
    Param("completion_url", str, "",
          "Link-out studies: where a worker goes after the session's last answer, e.g. "
          "https://app.prolific.com/submissions/complete?cc=CODE (empty: the code is shown).",
          max_length=500),
    Param("completion_code", str, "",
          "Link-out studies: the study's completion code shown after the last answer (empty: "
          "a code per assignment).", max_length=40),
    Param("tasks_per_session", int, 1, "Link-out studies: tasks one session answers.",
          low=1, high=500),
    Param("seed", int, 0, "Random seed of tile order and gold choice.", low=0, high=MAX_INT64),
))  # fmt: skip

# Verification tasks (issue 16), added by ``verification.campaign_create_with_verification``
# after the campaign's labeling tasks; the same doors (form, API, command) show these too.
VERIFICATION_SPEC = ParamSet((
    Param("verify_source", str, "",
          "Add verification tasks for the units labeled by: crowd (their crowd label) or auto "
          "(their automatic label); empty: none.", choices=("", "crowd", "auto")),
    Param("verify_images", int, 40,
          "Images per verification task, sampled over the unit's whole activation range.",
          low=5, high=500),
    Param("verify_checks", int, 2,
          "Planted checks of each kind per verification task (where the image set has label "
          "maps).", low=0, high=20),
))  # fmt: skip
