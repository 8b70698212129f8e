"""What annotators read: the six categories with examples, and worked examples of whole answers."""

from dataclasses import dataclass

from core.concepts import CATEGORIES


@dataclass(frozen=True)
class CategoryHelp:
    slug: str
    name: str
    examples: str
    worked_example: str


_HELP = {
    "scene": (
        "kitchen, street, forest path, bedroom, stadium",
        "Most images show the inside of a kitchen -> concept 'kitchen', category scene.",
    ),
    "object": (
        "car, dog, bed, person, lamp, tree",
        "The highlighted region is a car in almost every image -> 'car', category object.",
    ),
    "region": (
        "sky, road, water, floor, grass, ceiling",
        "Every image highlights the sky above the horizon -> 'sky', category region or surface.",
    ),
    "part": (
        "wheel, face, window, leg, roof, screen",
        "Cars, bikes and buses, always at their wheels -> 'wheel', category object part.",
    ),
    "material": (
        "wood, grass texture, brick, stripes, metal, fur",
        "Walls, floors and tables, all wooden -> 'wood', category texture or material.",
    ),
    "color": (
        "red, blue sky color, circles, vertical lines, bright spot",
        "Many different things, all bright yellow -> 'yellow', category simple elements or colors.",
    ),
}

CATEGORY_HELP: list[CategoryHelp] = [
    CategoryHelp(slug=slug, name=name, examples=_HELP[slug][0], worked_example=_HELP[slug][1])
    for slug, name in CATEGORIES
]
