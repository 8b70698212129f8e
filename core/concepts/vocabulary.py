"""The concept vocabulary shipped as data (data/vocabulary.json).

Each entry is a canonical concept name with its kind (object, part, scene, material, texture,
color, surface, element), its default category in the ICLR'15 six-way taxonomy and its synonyms.
Entries are looked up by `text.normalize_text`, so synonyms are matched after case, punctuation,
spelling and plural have been normalized. The JSON names the sources the names were drawn from.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core.concepts import CATEGORY_NAMES, CATEGORY_SLUGS
from core.concepts.text import normalize_text

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "vocabulary.json"

# The six categories of the ICLR'15 crowd task, in the paper's order (its codes 1..6).
CATEGORY_KEYS: tuple[str, ...] = CATEGORY_SLUGS
CATEGORY_LABELS: dict[str, str] = CATEGORY_NAMES


@dataclass(frozen=True)
class VocabularyEntry:
    """One canonical concept: `name`, its `kind`, default `category` and `synonyms`."""

    name: str
    kind: str
    category: str
    synonyms: tuple[str, ...] = ()


@dataclass
class Vocabulary:
    """Canonical concepts indexed by their normalized name and normalized synonyms."""

    entries: list[VocabularyEntry]
    misspellings: dict[str, str] = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)
    index: dict[str, VocabularyEntry] = field(default_factory=dict, init=False)
    conflicts: list[tuple[str, str, str]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        # Canonical names first, so a synonym never shadows another entry's own name.
        for entry in self.entries:
            self._add(self.key(entry.name), entry)
        for entry in self.entries:
            for synonym in entry.synonyms:
                self._add(self.key(synonym), entry)

    def _add(self, key: str, entry: VocabularyEntry) -> None:
        existing = self.index.get(key)
        if existing is not None and existing.name != entry.name:
            self.conflicts.append((key, existing.name, entry.name))
            return
        self.index[key] = entry

    def key(self, text: str) -> str:
        """The lookup key of `text` (see `text.normalize_text`)."""
        return normalize_text(text, misspellings=self.misspellings)

    def lookup(self, text: str) -> VocabularyEntry | None:
        """The entry whose name or synonym normalizes like `text`, or None."""
        return self.index.get(self.key(text))

    def lookup_key(self, key: str) -> VocabularyEntry | None:
        """The entry for an already normalized `key`, or None."""
        return self.index.get(key)

    def by_kind(self, kind: str) -> list[VocabularyEntry]:
        """All entries of one kind, in file order."""
        return [e for e in self.entries if e.kind == kind]


def vocabulary_from_dict(data: dict) -> Vocabulary:
    """Build a Vocabulary from the JSON layout of data/vocabulary.json."""
    entries = []
    for position, raw in enumerate(data.get("entries", [])):
        try:
            category = raw["category"]
            if category not in CATEGORY_KEYS:
                raise ValueError(f"unknown category {category!r} (expected one of {CATEGORY_KEYS})")
            entries.append(
                VocabularyEntry(
                    name=raw["name"],
                    kind=raw["kind"],
                    category=category,
                    synonyms=tuple(raw.get("synonyms", ())),
                )
            )
        except (KeyError, ValueError) as error:
            raise ValueError(f"vocabulary entry #{position} ({raw!r}): {error}") from error
    return Vocabulary(
        entries=entries,
        misspellings=dict(data.get("misspellings", {})),
        sources=list(data.get("sources", [])),
    )


def load_vocabulary(path: Path | str = DEFAULT_PATH) -> Vocabulary:
    """Read a vocabulary JSON file."""
    with open(path, encoding="utf-8") as handle:
        return vocabulary_from_dict(json.load(handle))


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    """The vocabulary shipped with CrowdDissect (read once per process)."""
    return load_vocabulary(DEFAULT_PATH)


def names(entries: Iterable[VocabularyEntry]) -> list[str]:
    """The canonical names of `entries`."""
    return [e.name for e in entries]
