"""The demo world's vocabulary: every label with its category, and what each scene and object is made of.

Everything here is data. The renderer (``render.py``) reads it; the Broden-like writer turns it into
``labels.csv``. Label numbers are global across categories (0 means "no label"), as in Broden, so one
label table serves every label map. Categories use the slugs of ``core.concepts``.
"""

from dataclasses import dataclass, field

GENERATOR_VERSION = "1"

# Named colors (the "simple elements or colors" category). Rendered pixels are jittered around them.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40),
    "orange": (235, 130, 30),
    "yellow": (235, 210, 50),
    "green": (60, 150, 60),
    "blue": (50, 90, 200),
    "purple": (120, 60, 160),
    "pink": (235, 150, 175),
    "brown": (120, 80, 45),
    "white": (235, 235, 235),
    "gray": (128, 128, 128),
    "black": (30, 30, 30),
}

SCENES: tuple[str, ...] = (
    "street",
    "forest",
    "beach",
    "harbor",
    "farm",
    "bedroom",
    "kitchen",
    "living_room",
    "bathroom",
    "office",
)
REGIONS: tuple[str, ...] = (
    "sky",
    "mountain",
    "grass",
    "water",
    "sand",
    "road",
    "wall",
    "floor",
    "ceiling",
)
MATERIALS: tuple[str, ...] = ("striped", "dotted", "checkered", "wood", "brick", "tile", "metal")


@dataclass(frozen=True)
class Prim:
    """One filled shape of an object, in the object's box coordinates (0..1 both ways).

    shape: "rect", "ellipse", "top_ellipse" (upper half), "bottom_ellipse" (lower half), or
    "triangle" (apex at the top centre). color: "main" (the object's sampled main color) or a tuple
    of color names to choose from. materials: texture/material choices (None in the tuple means plain);
    left unset, "main" shapes take the object's main material and other shapes are plain.
    """

    shape: str
    box: tuple[float, float, float, float]
    part: str | None = None
    color: str | tuple[str, ...] = "main"
    materials: tuple[str | None, ...] | None = None


@dataclass(frozen=True)
class ObjectSpec:
    """An object class: aspect ratio (width / height), main colors, where it stands, its shapes."""

    aspect: float
    colors: tuple[str, ...]
    prims: tuple[Prim, ...]
    place: str = "ground"  # "ground", "wall" (hangs on the wall) or "sky", "water"
    materials: tuple[str | None, ...] = (None,)  # choices for the "main" shapes


def _legs(y0: float, xs: tuple[float, ...], width: float, color="main") -> tuple[Prim, ...]:
    return tuple(Prim("rect", (x, y0, x + width, 1.0), "leg", color) for x in xs)


GLASS = ("blue", "white")
SKIN = ("pink", "brown", "orange")

OBJECTS: dict[str, ObjectSpec] = {
    "car": ObjectSpec(
        2.0,
        ("red", "blue", "white", "black", "gray", "yellow"),
        (
            Prim("rect", (0.0, 0.35, 1.0, 0.8)),
            Prim("rect", (0.2, 0.0, 0.8, 0.4)),
            Prim("rect", (0.26, 0.07, 0.47, 0.33), "window", GLASS),
            Prim("rect", (0.53, 0.07, 0.74, 0.33), "window", GLASS),
            Prim("ellipse", (0.08, 0.55, 0.34, 1.0), "wheel", ("black",)),
            Prim("ellipse", (0.66, 0.55, 0.92, 1.0), "wheel", ("black",)),
        ),
        materials=(None, None, "metal"),
    ),
    "bicycle": ObjectSpec(
        1.6,
        ("red", "blue", "green", "black", "yellow"),
        (
            Prim("ellipse", (0.0, 0.4, 0.4, 1.0), "wheel", ("black",)),
            Prim("ellipse", (0.6, 0.4, 1.0, 1.0), "wheel", ("black",)),
            Prim("rect", (0.2, 0.55, 0.8, 0.66)),
            Prim("rect", (0.36, 0.2, 0.44, 0.62)),
            Prim("rect", (0.28, 0.15, 0.5, 0.24), None, ("black", "brown")),
            Prim("rect", (0.72, 0.12, 0.79, 0.62)),
        ),
    ),
    "house": ObjectSpec(
        1.0,
        ("white", "yellow", "red", "brown", "pink", "gray"),
        (
            Prim("rect", (0.1, 0.4, 0.9, 1.0)),
            Prim(
                "triangle",
                (0.0, 0.0, 1.0, 0.42),
                "roof",
                ("red", "brown", "gray", "black"),
                (None, "tile"),
            ),
            Prim("rect", (0.42, 0.64, 0.58, 1.0), "door", ("brown", "black", "blue"), ("wood",)),
            Prim("rect", (0.17, 0.5, 0.34, 0.68), "window", GLASS),
            Prim("rect", (0.66, 0.5, 0.83, 0.68), "window", GLASS),
        ),
        materials=(None, "brick", "wood"),
    ),
    "tree": ObjectSpec(
        0.7,
        ("green", "green", "orange", "yellow"),
        (
            Prim("rect", (0.4, 0.55, 0.6, 1.0), "trunk", ("brown", "black"), ("wood", None)),
            Prim("ellipse", (0.0, 0.0, 1.0, 0.72)),
        ),
    ),
    "person": ObjectSpec(
        0.4,
        ("red", "blue", "green", "yellow", "white", "purple", "orange"),
        (
            Prim("rect", (0.2, 0.6, 0.45, 1.0), "leg", ("blue", "black", "gray", "brown")),
            Prim("rect", (0.55, 0.6, 0.8, 1.0), "leg", ("blue", "black", "gray", "brown")),
            Prim("rect", (0.1, 0.2, 0.9, 0.64), "torso"),
            Prim("ellipse", (0.25, 0.0, 0.75, 0.22), "head", SKIN),
        ),
        materials=(None, None, "striped", "dotted"),
    ),
    "dog": ObjectSpec(
        1.5,
        ("brown", "white", "black", "yellow", "gray"),
        (
            *_legs(0.55, (0.18, 0.3, 0.62, 0.74), 0.08),
            Prim("ellipse", (0.1, 0.25, 0.82, 0.72)),
            Prim("ellipse", (0.68, 0.0, 1.0, 0.42), "head"),
        ),
        materials=(None, None, "dotted"),
    ),
    "cow": ObjectSpec(
        1.6,
        ("white", "brown", "black"),
        (
            *_legs(0.6, (0.12, 0.24, 0.6, 0.72), 0.08),
            Prim("rect", (0.08, 0.2, 0.84, 0.68)),
            Prim("rect", (0.8, 0.05, 1.0, 0.45), "head"),
        ),
        materials=(None, "dotted", "dotted"),
    ),
    "bird": ObjectSpec(
        1.5,
        ("black", "white", "red", "yellow", "blue"),
        (
            Prim("ellipse", (0.0, 0.35, 0.78, 1.0)),
            Prim("triangle", (0.2, 0.0, 0.6, 0.6), "wing"),
            Prim("ellipse", (0.62, 0.1, 1.0, 0.55), "head"),
        ),
        place="sky",
    ),
    "boat": ObjectSpec(
        1.6,
        ("white", "red", "blue", "brown"),
        (
            Prim("rect", (0.33, 0.0, 0.37, 0.62), None, ("brown", "gray")),
            Prim(
                "triangle",
                (0.38, 0.0, 0.9, 0.58),
                "sail",
                ("white", "yellow", "red"),
                (None, "striped"),
            ),
            Prim("rect", (0.0, 0.6, 1.0, 0.82)),
            Prim("rect", (0.12, 0.82, 0.88, 1.0)),
        ),
        place="water",
        materials=(None, "wood", "striped"),
    ),
    "umbrella": ObjectSpec(
        1.0,
        ("red", "yellow", "blue", "orange", "pink", "green"),
        (
            Prim("rect", (0.47, 0.35, 0.53, 1.0), None, ("gray", "white")),
            Prim("top_ellipse", (0.0, 0.0, 1.0, 0.8)),
        ),
        materials=(None, "striped", "striped"),
    ),
    "fence": ObjectSpec(
        2.5,
        ("white", "brown"),
        (
            *(Prim("rect", (x, 0.0, x + 0.07, 1.0)) for x in (0.0, 0.19, 0.38, 0.57, 0.76, 0.93)),
            Prim("rect", (0.0, 0.2, 1.0, 0.32)),
            Prim("rect", (0.0, 0.62, 1.0, 0.74)),
        ),
        materials=(None, "wood"),
    ),
    "bed": ObjectSpec(
        1.7,
        ("white", "blue", "red", "pink", "purple", "green"),
        (
            *_legs(0.85, (0.02, 0.9), 0.07, ("brown", "black")),
            Prim("rect", (0.0, 0.05, 0.1, 0.88), None, ("brown",), ("wood",)),
            Prim("rect", (0.0, 0.45, 1.0, 0.87)),
            Prim("ellipse", (0.1, 0.28, 0.38, 0.5), "pillow", ("white", "yellow")),
        ),
        place="floor",
        materials=(None, "striped", "checkered", "dotted"),
    ),
    "lamp": ObjectSpec(
        0.5,
        ("yellow", "white", "orange", "red"),
        (
            Prim("rect", (0.45, 0.3, 0.55, 0.92), None, ("gray", "black")),
            Prim("rect", (0.2, 0.9, 0.8, 1.0), None, ("black", "gray")),
            Prim("triangle", (0.0, 0.0, 1.0, 0.34), "shade"),
        ),
        place="floor",
    ),
    "table": ObjectSpec(
        1.6,
        ("brown", "white", "black", "gray"),
        (*_legs(0.3, (0.05, 0.87), 0.08), Prim("rect", (0.0, 0.2, 1.0, 0.34))),
        place="floor",
        materials=("wood", "wood", None),
    ),
    "chair": ObjectSpec(
        0.7,
        ("brown", "black", "red", "blue", "green"),
        (
            *_legs(0.6, (0.0, 0.88), 0.12),
            Prim("rect", (0.0, 0.0, 0.16, 0.62)),
            Prim("rect", (0.0, 0.5, 1.0, 0.63)),
        ),
        place="floor",
        materials=(None, "wood"),
    ),
    "sofa": ObjectSpec(
        2.0,
        ("red", "blue", "green", "gray", "brown", "purple"),
        (
            *_legs(0.85, (0.05, 0.9), 0.05, ("black", "brown")),
            Prim("rect", (0.05, 0.05, 0.95, 0.5)),
            Prim("rect", (0.0, 0.42, 1.0, 0.87)),
            Prim("rect", (0.0, 0.3, 0.12, 0.87), "arm"),
            Prim("rect", (0.88, 0.3, 1.0, 0.87), "arm"),
        ),
        place="floor",
        materials=(None, None, "checkered", "striped", "dotted"),
    ),
    "tv": ObjectSpec(
        1.5,
        ("black", "gray"),
        (
            Prim("rect", (0.4, 0.82, 0.6, 1.0), None, ("black",)),
            Prim("rect", (0.0, 0.0, 1.0, 0.84)),
            Prim("rect", (0.06, 0.06, 0.94, 0.78), "screen", ("blue", "white", "green")),
        ),
        place="floor",
    ),
    "computer": ObjectSpec(
        1.2,
        ("gray", "black", "white"),
        (
            Prim("rect", (0.1, 0.0, 0.9, 0.62)),
            Prim("rect", (0.16, 0.05, 0.84, 0.56), "screen", ("blue", "white", "green")),
            Prim("rect", (0.45, 0.62, 0.55, 0.84), None, ("black", "gray")),
            Prim(
                "rect",
                (0.0, 0.84, 1.0, 1.0),
                "keyboard",
                ("black", "gray", "white"),
                (None, "dotted"),
            ),
        ),
        place="floor",
    ),
    "fridge": ObjectSpec(
        0.55,
        ("white", "gray"),
        (
            Prim("rect", (0.0, 0.0, 1.0, 0.38), "door"),
            Prim("rect", (0.0, 0.38, 1.0, 0.41), None, ("black",)),
            Prim("rect", (0.0, 0.41, 1.0, 1.0), "door"),
            Prim("rect", (0.8, 0.12, 0.88, 0.32), "handle", ("black", "gray")),
            Prim("rect", (0.8, 0.48, 0.88, 0.7), "handle", ("black", "gray")),
        ),
        place="floor",
        materials=(None, "metal"),
    ),
    "stove": ObjectSpec(
        1.0,
        ("white", "gray", "black"),
        (
            Prim("rect", (0.0, 0.15, 1.0, 1.0)),
            Prim("ellipse", (0.08, 0.0, 0.42, 0.2), "burner", ("black", "red")),
            Prim("ellipse", (0.58, 0.0, 0.92, 0.2), "burner", ("black", "red")),
            Prim("rect", (0.1, 0.4, 0.9, 0.9), "door", ("black",)),
        ),
        place="floor",
        materials=(None, "metal"),
    ),
    "sink": ObjectSpec(
        1.6,
        ("white", "gray"),
        (
            Prim("rect", (0.44, 0.0, 0.56, 0.4), "faucet", ("gray",), ("metal",)),
            Prim("bottom_ellipse", (0.0, 0.0, 1.0, 1.0)),
        ),
        place="floor",
        materials=(None, "metal"),
    ),
    "toilet": ObjectSpec(
        0.7,
        ("white",),
        (
            Prim("rect", (0.3, 0.72, 0.7, 1.0)),
            Prim("rect", (0.1, 0.0, 0.9, 0.36), "tank"),
            Prim("bottom_ellipse", (0.0, 0.2, 1.0, 0.82)),
        ),
        place="floor",
    ),
    "bathtub": ObjectSpec(
        2.2,
        ("white", "pink", "blue", "yellow"),
        (
            *_legs(0.88, (0.06, 0.88), 0.06, ("gray", "black")),
            Prim("rect", (0.0, 0.2, 1.0, 0.9)),
            Prim("rect", (0.85, 0.0, 0.9, 0.2), "faucet", ("gray",), ("metal",)),
        ),
        place="floor",
        materials=(None, "tile"),
    ),
    "mirror": ObjectSpec(
        0.75,
        ("brown", "yellow", "black", "white"),
        (
            Prim("ellipse", (0.0, 0.0, 1.0, 1.0)),
            Prim("ellipse", (0.12, 0.09, 0.88, 0.91), "glass", ("white", "blue"), ("metal",)),
        ),
        place="wall",
    ),
    "painting": ObjectSpec(
        1.3,
        ("brown", "yellow", "black"),
        (
            Prim("rect", (0.0, 0.0, 1.0, 1.0), None, "main", ("wood", None)),
            Prim(
                "rect",
                (0.1, 0.12, 0.9, 0.88),
                "canvas",
                tuple(PALETTE),
                (None, "striped", "dotted", "checkered"),
            ),
        ),
        place="wall",
    ),
    "bookshelf": ObjectSpec(
        0.8,
        ("brown", "black", "white"),
        (
            Prim("rect", (0.0, 0.0, 1.0, 1.0)),
            *(
                Prim(
                    "rect",
                    (0.08, y, 0.92, y + 0.22),
                    "shelf",
                    ("red", "blue", "green", "yellow"),
                    ("striped",),
                )
                for y in (0.06, 0.38, 0.7)
            ),
        ),
        place="floor",
        materials=("wood", "wood", None),
    ),
    "cabinet": ObjectSpec(
        1.0,
        ("brown", "white", "gray"),
        (
            Prim("rect", (0.0, 0.0, 1.0, 1.0)),
            Prim("rect", (0.08, 0.08, 0.92, 0.45), "drawer"),
            Prim("rect", (0.08, 0.55, 0.92, 0.92), "drawer"),
            Prim("rect", (0.42, 0.22, 0.58, 0.3), "handle", ("black", "gray", "yellow")),
            Prim("rect", (0.42, 0.7, 0.58, 0.78), "handle", ("black", "gray", "yellow")),
        ),
        place="floor",
        materials=("wood", "wood", None),
    ),
    "plant": ObjectSpec(
        0.6,
        ("green",),
        (
            Prim("ellipse", (0.0, 0.0, 1.0, 0.76)),
            Prim("rect", (0.25, 0.68, 0.75, 1.0), "pot", ("brown", "orange", "red", "white")),
        ),
        place="floor",
    ),
}

PARTS: tuple[str, ...] = tuple(
    dict.fromkeys(p.part for spec in OBJECTS.values() for p in spec.prims if p.part)
)


@dataclass(frozen=True)
class SceneSpec:
    """A scene class: its surfaces and which objects it holds.

    objects: (object class, probability that it is present, max count). The first one is the
    scene's key object: every image of the scene holds it (it is added when the draw left it out;
    the list is then cut to 7 objects, which drops it in ~0.1% of images), so the scene can be named from object evidence while the surfaces alone stay
    ambiguous between scenes; the others also appear in other scenes.
    grounds: the possible ground layouts, each a tuple of regions from the horizon down.
    """

    indoor: bool
    grounds: tuple[tuple[str, ...], ...]
    objects: tuple[tuple[str, float, int], ...] = field(default_factory=tuple)


_INDOOR = (("floor",),)

SCENE_SPECS: dict[str, SceneSpec] = {
    "street": SceneSpec(
        False,
        (("road",), ("road",), ("grass", "road"), ("grass",)),
        (
            ("car", 0.8, 3),
            ("house", 0.55, 2),
            ("person", 0.5, 2),
            ("bicycle", 0.35, 2),
            ("tree", 0.3, 2),
            ("dog", 0.15, 1),
            ("umbrella", 0.1, 1),
            ("fence", 0.1, 1),
        ),
    ),
    "forest": SceneSpec(
        False,
        (("grass",), ("grass",), ("road", "grass")),
        (
            ("tree", 0.97, 6),
            ("bird", 0.35, 2),
            ("person", 0.2, 1),
            ("dog", 0.15, 1),
            ("cow", 0.1, 1),
            ("bicycle", 0.1, 1),
            ("plant", 0.2, 2),
        ),
    ),
    "beach": SceneSpec(
        False,
        (("water", "sand"), ("water", "sand"), ("sand",)),
        (
            ("umbrella", 0.75, 3),
            ("person", 0.6, 3),
            ("boat", 0.3, 1),
            ("bird", 0.3, 2),
            ("dog", 0.15, 1),
            ("tree", 0.1, 1),
        ),
    ),
    "harbor": SceneSpec(
        False,
        (("water", "road"), ("water",), ("water", "sand")),
        (
            ("boat", 0.92, 4),
            ("bird", 0.3, 2),
            ("person", 0.3, 2),
            ("car", 0.25, 1),
            ("house", 0.3, 2),
            ("fence", 0.1, 1),
        ),
    ),
    "farm": SceneSpec(
        False,
        (("grass",), ("grass",), ("grass", "road"), ("water", "grass")),
        (
            ("cow", 0.8, 3),
            ("fence", 0.55, 1),
            ("house", 0.35, 1),
            ("tree", 0.35, 2),
            ("dog", 0.25, 1),
            ("person", 0.2, 1),
            ("bird", 0.15, 1),
        ),
    ),
    "bedroom": SceneSpec(
        True,
        _INDOOR,
        (
            ("bed", 0.95, 1),
            ("lamp", 0.45, 2),
            ("cabinet", 0.35, 1),
            ("painting", 0.35, 1),
            ("mirror", 0.15, 1),
            ("tv", 0.15, 1),
            ("chair", 0.15, 1),
            ("computer", 0.1, 1),
            ("bathtub", 0.03, 1),
        ),
    ),
    "kitchen": SceneSpec(
        True,
        _INDOOR,
        (
            ("stove", 0.8, 1),
            ("fridge", 0.65, 1),
            ("sink", 0.45, 1),
            ("table", 0.4, 1),
            ("chair", 0.35, 2),
            ("cabinet", 0.4, 2),
            ("plant", 0.15, 1),
            ("toilet", 0.02, 1),
        ),
    ),
    "living_room": SceneSpec(
        True,
        _INDOOR,
        (
            ("sofa", 0.9, 2),
            ("tv", 0.55, 1),
            ("table", 0.4, 1),
            ("lamp", 0.35, 1),
            ("painting", 0.4, 2),
            ("plant", 0.3, 2),
            ("bookshelf", 0.2, 1),
            ("bed", 0.05, 1),
            ("stove", 0.05, 1),
        ),
    ),
    "bathroom": SceneSpec(
        True,
        _INDOOR,
        (
            ("toilet", 0.8, 1),
            ("bathtub", 0.6, 1),
            ("sink", 0.65, 1),
            ("mirror", 0.55, 1),
            ("plant", 0.2, 1),
            ("cabinet", 0.2, 1),
        ),
    ),
    "office": SceneSpec(
        True,
        _INDOOR,
        (
            ("computer", 0.9, 2),
            ("chair", 0.6, 2),
            ("table", 0.5, 1),
            ("bookshelf", 0.45, 1),
            ("lamp", 0.25, 1),
            ("plant", 0.3, 1),
            ("painting", 0.2, 1),
            ("fridge", 0.08, 1),
            ("sofa", 0.08, 1),
        ),
    ),
}

WALL_MATERIALS: tuple[str | None, ...] = (None, None, "brick", "tile", "striped", "wood")
FLOOR_MATERIALS: tuple[str | None, ...] = (None, "wood", "wood", "tile", "checkered")
REGION_COLORS: dict[str, tuple[str, ...]] = {
    "sky": ("blue", "blue", "blue", "white", "gray", "orange"),
    "mountain": ("gray", "purple", "brown", "blue"),
    "grass": ("green", "green", "yellow"),
    "water": ("blue", "blue", "green", "gray"),
    "sand": ("yellow", "yellow", "orange", "white"),
    "road": ("gray", "gray", "black"),
    "wall": ("white", "yellow", "pink", "blue", "green", "gray"),
    "floor": ("brown", "gray", "white", "red", "blue"),
    "ceiling": ("white", "white", "gray"),
}

OBJECT_NAMES: tuple[str, ...] = tuple(OBJECTS)
CATEGORY_OF_GROUP = {
    "scene": SCENES,
    "object": OBJECT_NAMES,
    "region": REGIONS,
    "part": PARTS,
    "material": MATERIALS,
    "color": tuple(PALETTE),
}


@dataclass(frozen=True)
class Label:
    number: int
    name: str
    category: str


def _label_table() -> tuple[Label, ...]:
    labels = [Label(0, "-", "")]
    for category, names in CATEGORY_OF_GROUP.items():
        for name in names:
            labels.append(Label(len(labels), name, category))
    return tuple(labels)


LABELS: tuple[Label, ...] = _label_table()
LABEL_NUMBER: dict[tuple[str, str], int] = {(lab.category, lab.name): lab.number for lab in LABELS}


def label_number(category: str, name: str) -> int:
    """Global label number of ``name`` in ``category`` (e.g. ``label_number("part", "wheel")``)."""
    return LABEL_NUMBER[(category, name)]


def scenes_of_object(name: str) -> tuple[str, ...]:
    """Scene classes whose spec may hold object ``name``."""
    return tuple(s for s, spec in SCENE_SPECS.items() if any(o == name for o, _, _ in spec.objects))
