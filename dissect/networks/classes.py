"""Class-name files: one name per line, or the Places365 'categories_places365.txt' format."""

from __future__ import annotations

import re
from pathlib import Path

from .base import NetworkLoadError

__all__ = ["read_class_names", "parse_class_names"]

# '/a/airfield 0', '/a/apartment_building/outdoor 8'
_PLACES_LINE = re.compile(r"^/[a-z]/(?P<name>\S+)\s+(?P<index>\d+)$")


def parse_class_names(text: str, *, source: str = "<text>") -> list[str]:
    """Class names from file text. Places365 lines ('/a/airfield 0') give 'airfield', placed at
    their index; any other non-empty line is one name, in file order."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise NetworkLoadError(f"{source}: the class-name file is empty; put one name per line")
    matches = [_PLACES_LINE.match(line) for line in lines]
    if all(matches):
        names: dict[int, str] = {}
        for lineno, m in enumerate(matches, 1):
            index = int(m["index"])
            if index in names:
                raise NetworkLoadError(f"{source}: line {lineno}: class index {index} repeated")
            names[index] = m["name"]
        if sorted(names) != list(range(len(names))):
            missing = sorted(set(range(len(names))) - set(names))[:5]
            raise NetworkLoadError(f"{source}: class indices are not 0..{len(names) - 1} "
                                   f"(missing e.g. {missing})")  # fmt: skip
        return [names[i] for i in range(len(names))]
    return lines


def read_class_names(path: str | Path) -> list[str]:
    """Read a class-name file (UTF-8); see ``parse_class_names`` for the formats."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NetworkLoadError(f"{path}: cannot read the class-name file ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise NetworkLoadError(f"{path}: not UTF-8 text; save it as UTF-8") from exc
    return parse_class_names(text, source=str(path))
