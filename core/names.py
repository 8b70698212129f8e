"""Names people give things (networks, image sets): slugs, checked at every door.

A name ends up in URLs (``/reports/network/<slug>/``), file names (exports, manifests), CSV cells
and shell commands, so it is held to Django's slug alphabet: ASCII letters, digits, hyphens and
underscores, starting with a letter or a digit, at most 100 characters (the model fields). No
space, ``/``, ``..``, quote, ``=`` or control character can get in, so a name never breaks a URL,
reaches a path outside its folder, or becomes a spreadsheet formula.
"""

from __future__ import annotations

import re

NAME_MAX = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def name_error(value, *, field: str = "name", what: str = "name") -> str | None:
    """None for a valid name; otherwise the message that says what to type instead."""
    text = value if isinstance(value, str) else ""
    if not text:
        return f"{field}: give the {what} (letters, digits, - and _)."
    if len(text) > NAME_MAX:
        return f"{field}: a {what} has at most {NAME_MAX} characters (got {len(text)})."
    if not _NAME.fullmatch(text):
        shown = text.encode("unicode_escape").decode("ascii")[:60]
        return (
            f"{field}: {shown!r} is not a valid {what}; use letters, digits, hyphens and "
            "underscores, starting with a letter or digit (e.g. alexnet-places365)."
        )
    return None


def suggest_name(value: str, *, default: str = "item") -> str:
    """A valid name made from ``value`` (spaces and other characters become hyphens)."""
    from django.utils.text import slugify

    return (slugify(value)[:NAME_MAX].strip("-_") or default)[:NAME_MAX]
