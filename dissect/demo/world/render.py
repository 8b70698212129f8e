"""Procedural renderer of the demo world: one image and its pixel label maps from (seed, index).

Drawing is plain numpy on bounding-box slices, so a 128x128 scene with its four label maps takes a
few milliseconds on one core. Every shape writes its color into the image and its labels into the
maps in the same step, so the maps say exactly what was drawn where (later shapes occlude earlier
ones in both).
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dissect.demo.world.vocabulary import (
    FLOOR_MATERIALS,
    OBJECT_NAMES,
    OBJECTS,
    PALETTE,
    REGION_COLORS,
    SCENE_SPECS,
    SCENES,
    WALL_MATERIALS,
    ObjectSpec,
    label_number,
)

VARIANTS = ("scenes", "objects")
_VARIANT_CODE = {"scenes": 0, "objects": 1}
_COLOR_NAMES = tuple(PALETTE)
_RGB = {name: np.array(rgb, dtype=np.float32) for name, rgb in PALETTE.items()}
_COLOR_LABEL = {name: label_number("color", name) for name in PALETTE}
_SECOND_COLOR = {"brick": ("white", "gray"), "tile": ("gray", "white"), "metal": ("white", "gray")}


@dataclass
class Sample:
    """One rendered image: ``image`` (H, W, 3) uint8 and four (H, W) uint8 label maps holding global
    label numbers (0 = none): ``object`` (objects and regions, the visible whole thing at each pixel),
    ``part``, ``material`` and ``color``. ``class_index`` is the scene index for the scenes variant and
    the object index for the objects variant; ``scene`` is the scene name (the background's scene in
    the objects variant)."""

    image: np.ndarray
    object: np.ndarray
    part: np.ndarray
    material: np.ndarray
    color: np.ndarray
    class_index: int
    scene: str
    objects: list[str]


def sample_rng(seed: int, index: int, variant: str) -> np.random.Generator:
    """The random stream of one image: a pure function of (seed, variant, index)."""
    return np.random.Generator(np.random.PCG64([int(seed), _VARIANT_CODE[variant], int(index)]))


@lru_cache(maxsize=4)
def _textures(size: int) -> dict[str, list[np.ndarray]]:
    """Mixing tiles (2*size square, float32 in 0..1) per material: 0 = base color, 1 = second color."""
    n = 2 * size
    k = size / 128.0  # pattern scale follows image size
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    tiles: dict[str, list[np.ndarray]] = {}
    stripes = []
    for period in (6, 10):
        p = period * k
        for u in (x, y, (x + y) * 0.7071):
            stripes.append(((u // (p / 2)) % 2).astype(np.float32))
    tiles["striped"] = stripes
    dots = []
    for spacing, radius in ((8, 2.2), (11, 3.2)):
        s, r = spacing * k, radius * k
        dx = (x % s) - s / 2
        dy = (y % s) - s / 2
        dots.append((dx * dx + dy * dy <= r * r).astype(np.float32))
    tiles["dotted"] = dots
    tiles["checkered"] = [
        (((x // (c * k)) + (y // (c * k))) % 2).astype(np.float32) for c in (6, 10)
    ]
    grain = []
    for freq in (0.9, 0.6):
        g = 0.5 + 0.5 * np.sin(y * freq / k + 2.5 * np.sin(x * 0.07 / k))
        grain.append((g**3).astype(np.float32))
    tiles["wood"] = grain
    brick = []
    for bh in (6, 8):
        h, w = bh * k, 2 * bh * k
        row = y // h
        shift = (row % 2) * (w / 2)
        mortar = ((y % h) < max(1.0, k)) | (((x + shift) % w) < max(1.0, k))
        brick.append(mortar.astype(np.float32))
    tiles["brick"] = brick
    tiles["tile"] = [
        (((y % (t * k)) < max(1.0, k)) | ((x % (t * k)) < max(1.0, k))).astype(np.float32)
        for t in (10, 16)
    ]
    tiles["metal"] = [
        (0.6 * (0.5 + 0.5 * np.sin((x + 0.3 * y) * 0.09 / k)) ** 4).astype(np.float32),
        (0.6 * (0.5 + 0.5 * np.sin((0.3 * x + y) * 0.12 / k)) ** 4).astype(np.float32),
    ]
    return tiles


@lru_cache(maxsize=4)
def _noise(size: int) -> np.ndarray:
    """A fixed Gaussian noise tile (2*size square, 3 channels); crops of it add sensor noise."""
    return np.random.default_rng(12345).normal(0, 4.0, (2 * size, 2 * size, 3)).astype(np.float32)


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(size, dtype=np.float32) + 0.5
    return coords[:, None], coords[None, :]


class _Canvas:
    def __init__(self, size: int, rng: np.random.Generator):
        self.size = size
        self.rng = rng
        self.image = np.zeros((size, size, 3), np.float32)
        self.object = np.zeros((size, size), np.uint8)
        self.part = np.zeros((size, size), np.uint8)
        self.material = np.zeros((size, size), np.uint8)
        self.color = np.zeros((size, size), np.uint8)
        self.textures = _textures(size)
        self.ys, self.xs = _grid(size)

    def jittered(self, name: str) -> np.ndarray:
        rng = self.rng
        return _RGB[name] * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15, 3).astype(np.float32)

    def fill(
        self,
        box: tuple[float, float, float, float],
        shape: str,
        color: str,
        material: str | None,
        object_label: int,
        part_label: int = 0,
        second_color: str | None = None,
        rgb: np.ndarray | None = None,
    ) -> None:
        """Paint one shape inside ``box`` (x0, y0, x1, y1 in pixels) and write its labels."""
        size = self.size
        x0, y0, x1, y1 = box
        c0, r0 = max(int(round(x0)), 0), max(int(round(y0)), 0)
        c1, r1 = min(int(round(x1)), size), min(int(round(y1)), size)
        if c1 <= c0 or r1 <= r0:
            return
        rows, cols = slice(r0, r1), slice(c0, c1)
        mask = self._mask(shape, x0, y0, x1, y1, rows, cols)
        if mask is not None and not mask.any():
            return
        base = self.jittered(color) if rgb is None else rgb
        color_label = _COLOR_LABEL[color]
        if material is None:
            pixels: np.ndarray = np.broadcast_to(base, (r1 - r0, c1 - c0, 3))
            color_map: np.ndarray | int = color_label
        else:
            tiles = self.textures[material]
            tile = tiles[int(self.rng.integers(len(tiles)))]
            oy, ox = self.rng.integers(0, size, 2)
            mix = tile[oy : oy + r1 - r0, ox : ox + c1 - c0, None]
            second = second_color or color
            if material == "wood":
                other = base * 0.6
            else:
                other = self.jittered(second)
            pixels = base + (other - base) * mix
            color_map = np.where(mix[..., 0] > 0.5, _COLOR_LABEL[second], color_label).astype(
                np.uint8
            )
        material_label = label_number("material", material) if material else 0
        if mask is None:
            self.image[rows, cols] = pixels
            self.object[rows, cols] = object_label
            self.part[rows, cols] = part_label
            self.material[rows, cols] = material_label
            self.color[rows, cols] = color_map
        else:
            self.image[rows, cols][mask] = pixels[mask]
            self.object[rows, cols][mask] = object_label
            self.part[rows, cols][mask] = part_label
            self.material[rows, cols][mask] = material_label
            self.color[rows, cols][mask] = (
                color_map[mask] if isinstance(color_map, np.ndarray) else color_map
            )

    def _mask(self, shape, x0, y0, x1, y1, rows, cols) -> np.ndarray | None:
        if shape == "rect":
            return None
        ys, xs = self.ys[rows], self.xs[:, cols]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if shape in ("ellipse", "top_ellipse", "bottom_ellipse"):
            rx, ry = max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
            if shape == "top_ellipse":  # the box holds the upper half: centre on its bottom edge
                cy, ry = y1, max(y1 - y0, 0.5)
            elif shape == "bottom_ellipse":
                cy, ry = y0, max(y1 - y0, 0.5)
            inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0
            if shape == "top_ellipse":
                inside &= ys <= cy
            elif shape == "bottom_ellipse":
                inside &= ys >= cy
            return inside
        if shape == "triangle":  # apex at top centre, base along the bottom edge
            half = (x1 - x0) / 2
            height = max(y1 - y0, 0.5)
            t = (ys - y0) / height  # 0 at the apex, 1 at the base
            return (np.abs(xs - cx) <= half * t) & (t >= 0) & (t <= 1)
        raise ValueError(f"unknown shape {shape!r}")


def _choose(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _second_color(rng: np.random.Generator, material: str | None, base: str) -> str | None:
    if material in ("striped", "dotted", "checkered"):
        others = [c for c in _COLOR_NAMES if c != base]
        return _choose(rng, others)
    if material in _SECOND_COLOR:
        a, b = _SECOND_COLOR[material]
        return a if base != a else b
    return None


def draw_object(
    canvas: _Canvas, name: str, x0: float, y0: float, width: float, height: float
) -> None:
    """Draw object ``name`` filling the box at (x0, y0) of the given size, mirrored at random."""
    rng = canvas.rng
    spec: ObjectSpec = OBJECTS[name]
    object_label = label_number("object", name)
    main_color = _choose(rng, spec.colors)
    main_material = _choose(rng, spec.materials)
    main_rgb = canvas.jittered(main_color)
    main_second = _second_color(rng, main_material, main_color)
    mirrored = rng.random() < 0.5
    chosen: dict[tuple, tuple[str, str | None, str | None, np.ndarray]] = {}
    for prim in spec.prims:
        if prim.color == "main" and prim.materials is None:
            color, material, second, rgb = main_color, main_material, main_second, main_rgb
        else:
            key = (prim.color, prim.materials, prim.part)
            if key not in chosen:
                color = main_color if prim.color == "main" else _choose(rng, prim.color)
                material = _choose(rng, prim.materials) if prim.materials else None
                rgb = main_rgb if prim.color == "main" else canvas.jittered(color)
                chosen[key] = (color, material, _second_color(rng, material, color), rgb)
            color, material, second, rgb = chosen[key]
        fx0, fy0, fx1, fy1 = prim.box
        if mirrored:
            fx0, fx1 = 1.0 - fx1, 1.0 - fx0
        box = (x0 + fx0 * width, y0 + fy0 * height, x0 + fx1 * width, y0 + fy1 * height)
        part_label = label_number("part", prim.part) if prim.part else 0
        canvas.fill(box, prim.shape, color, material, object_label, part_label, second, rgb)


def _fill_region(
    canvas: _Canvas, region: str, top: float, bottom: float, material: str | None = None
) -> None:
    rng = canvas.rng
    size = canvas.size
    color = _choose(rng, REGION_COLORS[region])
    second = _second_color(rng, material, color)
    canvas.fill(
        (0, top, size, bottom),
        "rect",
        color,
        material,
        label_number("region", region),
        0,
        second,
    )
    # A soft vertical gradient so that regions are not flat.
    r0, r1 = max(int(round(top)), 0), min(int(round(bottom)), size)
    if r1 > r0:
        ramp = np.linspace(
            rng.uniform(0.85, 1.1), rng.uniform(0.9, 1.15), r1 - r0, dtype=np.float32
        )
        canvas.image[r0:r1] *= ramp[:, None, None]


@dataclass
class _Layout:
    indoor: bool
    horizon: float  # outdoor: sky/ground line; indoor: wall/floor line
    wall_top: float  # indoor: bottom of the ceiling band
    water: tuple[float, float] | None  # rows of the water band, if any


def _draw_background(canvas: _Canvas, scene: str) -> _Layout:
    rng = canvas.rng
    size = canvas.size
    spec = SCENE_SPECS[scene]
    if spec.indoor:
        wall_top = rng.uniform(0.06, 0.16) * size if rng.random() < 0.4 else 0.0
        horizon = rng.uniform(0.5, 0.72) * size
        if wall_top:
            _fill_region(canvas, "ceiling", 0, wall_top)
        _fill_region(canvas, "wall", wall_top, horizon, _choose(rng, WALL_MATERIALS))
        _fill_region(canvas, "floor", horizon, size, _choose(rng, FLOOR_MATERIALS))
        return _Layout(True, horizon, wall_top, None)
    horizon = rng.uniform(0.3, 0.6) * size
    _fill_region(canvas, "sky", 0, horizon)
    if rng.random() < 0.35:
        color = _choose(rng, REGION_COLORS["mountain"])
        rgb = canvas.jittered(color)
        for _ in range(int(rng.integers(1, 3))):
            width = rng.uniform(0.4, 0.9) * size
            height = rng.uniform(0.1, 0.25) * size
            left = rng.uniform(-0.3, 0.9) * size
            canvas.fill(
                (left, horizon - height, left + width, horizon + 1),
                "triangle",
                color,
                None,
                label_number("region", "mountain"),
                rgb=rgb,
            )
    grounds = _choose(rng, spec.grounds)
    water = None
    top = horizon
    for i, region in enumerate(grounds):
        bottom = size if i == len(grounds) - 1 else top + rng.uniform(0.35, 0.6) * (size - top)
        _fill_region(canvas, region, top, bottom)
        if region == "water":
            water = (top, bottom)
        top = bottom
    return _Layout(False, horizon, 0.0, water)


def _object_box(
    rng: np.random.Generator, name: str, layout: _Layout, size: int, area: float
) -> tuple[float, float, float, float]:
    """Place one object: returns (x0, y0, width, height) in pixels."""
    spec = OBJECTS[name]
    place = spec.place
    ground_top = layout.horizon
    if place == "water" and layout.water is None:
        place = "ground"
    if place == "wall" and not layout.indoor:
        place = "ground"
    if place == "sky" and (layout.indoor or rng.random() < 0.3):
        place = "ground"
    if place in ("ground", "floor"):
        t = rng.uniform(0.2, 1.0)
        bottom = ground_top + t * (size - ground_top) + rng.uniform(0, 0.05) * size
        area *= 0.6 + 0.7 * t  # nearer objects look larger
    elif place == "water":
        w0, w1 = layout.water
        t = rng.uniform(0.3, 1.0)
        bottom = w0 + t * (w1 - w0)
        area *= 0.6 + 0.7 * t
    height = np.sqrt(area * size * size / spec.aspect)
    width = spec.aspect * height
    shrink = min(1.0, 1.1 * size / width, 0.95 * size / height)
    width, height = width * shrink, height * shrink
    cx = rng.uniform(0.05, 0.95) * size
    if place == "wall":
        lo, hi = layout.wall_top + 0.55 * height, layout.horizon - 0.3 * height
        cy = rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2
        return cx - width / 2, cy - height / 2, width, height
    if place == "sky":
        cy = rng.uniform(0.1, 0.9) * layout.horizon
        return cx - width / 2, cy - height / 2, width, height
    return cx - width / 2, bottom - height, width, height


def _scene_objects(rng: np.random.Generator, scene: str) -> list[str]:
    spec = SCENE_SPECS[scene]
    names: list[str] = []
    for name, probability, most in spec.objects:
        if rng.random() < probability:
            names.extend([name] * int(rng.integers(1, most + 1)))
    key = spec.objects[0][0]
    if key not in names:
        names.append(key)
    rng.shuffle(names)
    return names[:7]


def _finish(canvas: _Canvas) -> np.ndarray:
    """Lighting (gain, tint, linear falloff) and sensor noise, then quantize."""
    rng = canvas.rng
    size = canvas.size
    image = canvas.image
    gain = rng.uniform(0.65, 1.25) * (1 + rng.uniform(-0.08, 0.08, 3)).astype(np.float32)
    slope = rng.uniform(-0.25, 0.25)
    ramp = 1 + slope * np.linspace(-1, 1, size, dtype=np.float32)
    if rng.random() < 0.5:
        light = ramp[:, None, None] * gain
    else:
        light = ramp[None, :, None] * gain
    oy, ox = rng.integers(0, size, 2)
    image *= light
    image += _noise(size)[oy : oy + size, ox : ox + size]
    return np.clip(image, 0, 255).astype(np.uint8)


def render_scene(seed: int, index: int, size: int = 128) -> Sample:
    """Render image ``index`` of the scenes variant: a scene of a class drawn uniformly at random."""
    rng = sample_rng(seed, index, "scenes")
    canvas = _Canvas(size, rng)
    scene_index = int(rng.integers(len(SCENES)))
    scene = SCENES[scene_index]
    layout = _draw_background(canvas, scene)
    names = _scene_objects(rng, scene)
    crowd = len(names)
    placed = []
    for name in names:
        if crowd >= 4:
            area = float(np.exp(rng.uniform(np.log(0.04), np.log(0.18))))
        else:
            area = float(np.exp(rng.uniform(np.log(0.05), np.log(0.4))))
        placed.append((name, _object_box(rng, name, layout, size, area)))
    if rng.random() < 0.25:  # clutter: one small object of any class, anywhere on the ground
        name = OBJECT_NAMES[int(rng.integers(len(OBJECT_NAMES)))]
        placed.append((name, _object_box(rng, name, layout, size, rng.uniform(0.02, 0.05))))
    # Far objects first so that near ones occlude them; wall and sky objects are farthest.
    placed.sort(key=lambda item: item[1][1] + item[1][3])
    for name, (x0, y0, w, h) in placed:
        draw_object(canvas, name, x0, y0, w, h)
    image = _finish(canvas)
    return Sample(
        image,
        canvas.object,
        canvas.part,
        canvas.material,
        canvas.color,
        scene_index,
        scene,
        [name for name, _ in placed],
    )


def render_object(seed: int, index: int, size: int = 128) -> Sample:
    """Render image ``index`` of the objects variant: one centred object on a random scene's surfaces."""
    rng = sample_rng(seed, index, "objects")
    canvas = _Canvas(size, rng)
    object_index = int(rng.integers(len(OBJECT_NAMES)))
    name = OBJECT_NAMES[object_index]
    scene = SCENES[int(rng.integers(len(SCENES)))]
    _draw_background(canvas, scene)
    spec = OBJECTS[name]
    area = rng.uniform(0.12, 0.5) * size * size
    height = np.sqrt(area / spec.aspect)
    width = spec.aspect * height
    shrink = min(1.0, 0.95 * size / width, 0.95 * size / height)
    width, height = width * shrink, height * shrink
    cx = size / 2 + rng.uniform(-0.06, 0.06) * size
    cy = size / 2 + rng.uniform(-0.06, 0.06) * size
    draw_object(canvas, name, cx - width / 2, cy - height / 2, width, height)
    image = _finish(canvas)
    return Sample(
        image,
        canvas.object,
        canvas.part,
        canvas.material,
        canvas.color,
        object_index,
        scene,
        [name],
    )


def render(seed: int, index: int, *, size: int = 128, variant: str = "scenes") -> Sample:
    """Render image ``index`` of ``variant`` ("scenes" or "objects"); same arguments, same bytes."""
    if variant == "scenes":
        return render_scene(seed, index, size)
    if variant == "objects":
        return render_object(seed, index, size)
    raise ValueError(f"unknown demo world variant {variant!r}; use one of {VARIANTS}")


def class_names(variant: str) -> tuple[str, ...]:
    """The class names a network trained on ``variant`` predicts."""
    if variant == "scenes":
        return SCENES
    if variant == "objects":
        return OBJECT_NAMES
    raise ValueError(f"unknown demo world variant {variant!r}; use one of {VARIANTS}")


def render_arrays(
    seed: int, start: int, count: int, *, size: int = 128, variant: str = "scenes"
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. start+count-1`` as one (count, H, W, 3) uint8 array, and their class indices."""
    images = np.empty((count, size, size, 3), np.uint8)
    classes = np.empty(count, np.int64)
    for i in range(count):
        sample = render(seed, start + i, size=size, variant=variant)
        images[i] = sample.image
        classes[i] = sample.class_index
    return images, classes
