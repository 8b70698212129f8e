"""The paper's six concept categories, shared by the demo world, automatic labels and the crowd task."""

CATEGORIES: list[tuple[str, str]] = [
    ("scene", "scene"),
    ("object", "object"),
    ("region", "region or surface"),
    ("part", "object part"),
    ("material", "texture or material"),
    ("color", "simple elements or colors"),
]
CATEGORY_SLUGS: tuple[str, ...] = tuple(slug for slug, _ in CATEGORIES)
CATEGORY_NAMES: dict[str, str] = dict(CATEGORIES)
