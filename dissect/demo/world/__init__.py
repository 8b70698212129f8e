"""The demo world: a procedural scene dataset with pixel labels (see docs/demo-world.md).

Public API: ``render`` / ``render_arrays`` (in memory), ``write_demo_world`` / ``read_demo_world``
(Broden-like files), ``class_names`` and the vocabulary (``LABELS``, ``SCENES``, ``OBJECT_NAMES``...).
"""

from dissect.demo.world.broden import (
    INDEX_COLUMNS,
    MAP_NAMES,
    DemoWorldFiles,
    read_demo_world,
    write_demo_world,
)
from dissect.demo.world.render import VARIANTS, Sample, class_names, render, render_arrays
from dissect.demo.world.vocabulary import (
    GENERATOR_VERSION,
    LABELS,
    OBJECT_NAMES,
    SCENES,
    Label,
    label_number,
)

__all__ = [
    "GENERATOR_VERSION",
    "INDEX_COLUMNS",
    "LABELS",
    "MAP_NAMES",
    "OBJECT_NAMES",
    "SCENES",
    "VARIANTS",
    "DemoWorldFiles",
    "Label",
    "Sample",
    "class_names",
    "label_number",
    "read_demo_world",
    "render",
    "render_arrays",
    "write_demo_world",
]
