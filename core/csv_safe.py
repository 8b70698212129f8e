"""CSV cells that a spreadsheet will not run as formulas (CSV / formula injection).

Every CSV a person opens (exports, report tables, the report command) goes through ``writer`` or
``safe_cell``: a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
gets a leading apostrophe, which spreadsheets show as text and never evaluate. Numbers (also
negative ones, as int, float or plain numeric text such as ``-0.25``) are left alone: a number
is never a formula. Machine manifests that are read back as paths (image-set CSVs) do not use it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value`` unchanged, or with an apostrophe in front when a spreadsheet would evaluate it."""
    if not isinstance(value, str) or not value.startswith(TRIGGERS):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in row]


class _SafeWriter:
    def __init__(self, out, **kwargs):
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class _SafeDictWriter(csv.DictWriter):
    def writerow(self, rowdict):
        return super().writerow({k: safe_cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts):
        for row in rowdicts:
            self.writerow(row)


def writer(out, **kwargs) -> _SafeWriter:
    """``csv.writer`` whose cells are neutralised (same arguments)."""
    return _SafeWriter(out, **kwargs)


def dict_writer(out, fieldnames, **kwargs) -> csv.DictWriter:
    """``csv.DictWriter`` whose cells are neutralised (the header is written as given)."""
    return _SafeDictWriter(out, fieldnames=fieldnames, **kwargs)
