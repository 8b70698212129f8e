"""Read the hostile-input corpora kept under tests/data/ (one input per line; ASCII lines
may use Python escapes such as \\t, \\x00, \\u202e)."""

import codecs
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"


def lines(name: str) -> list[str]:
    """The inputs of ``tests/data/<name>``: comment and empty lines skipped, escapes decoded."""
    out = []
    for raw in (DATA / name).read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        if "\\" in raw and raw.isascii():  # escaped lines are ASCII; others are taken as written
            raw = codecs.decode(raw, "unicode_escape")
        out.append(raw)
    return out
