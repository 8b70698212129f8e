"""Concept normalization: free text from a worker -> the concept name we count.

Steps, in order (each recorded in `NormalizedConcept.steps` so a researcher can see why):
1. text: case, whitespace, punctuation ("black/white" -> "black and white"), misspellings from
   the vocabulary's list ("stripped" -> "striped"), stop words, plural -> singular
   (`text.normalize_text`);
2. vocabulary: the key matches an entry's name or synonym -> the entry's name and category;
   failing that, the key without filler words ("color green", "grid pattern") is tried;
3. merges: researcher-made merges (concept A is concept B) are applied last, following chains.
Unknown concepts stay as free text (the normalized key), with no category.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from core.concepts.text import clean_text
from core.concepts.vocabulary import Vocabulary, default_vocabulary

# Words that qualify a concept without changing it: "color green", "checkered pattern".
FILLER_WORDS = frozenset({"color", "pattern", "shape", "colored", "tone", "hue"})


@dataclass(frozen=True)
class NormalizedConcept:
    """Result of normalizing one raw answer."""

    raw: str
    name: str
    category: str | None
    kind: str | None
    known: bool
    steps: tuple[str, ...]


def resolve_merge(name: str, merges: Mapping[str, str] | None) -> str:
    """Follow researcher merges from `name` (A -> B -> C gives C); cycles stop where they close."""
    if not merges:
        return name
    seen = {name}
    while name in merges:
        target = merges[name]
        if target in seen:
            break
        seen.add(target)
        name = target
    return name


def normalize_concept(
    raw: str,
    *,
    vocabulary: Vocabulary | None = None,
    merges: Mapping[str, str] | None = None,
) -> NormalizedConcept:
    """Normalize one answer's concept text; see the module docstring for the steps."""
    vocabulary = vocabulary or default_vocabulary()
    steps: list[str] = []
    cleaned = clean_text(raw)
    if cleaned != (raw or "").strip():
        steps.append("case/punctuation")
    key = vocabulary.key(raw)
    if key != cleaned:
        steps.append("spelling/plural/stop words")

    entry = vocabulary.lookup_key(key)
    if entry is None:
        stripped = " ".join(w for w in key.split() if w not in FILLER_WORDS)
        if stripped and stripped != key:
            entry = vocabulary.lookup_key(stripped)
            if entry is not None:
                steps.append("filler words")
    if entry is not None:
        name, category, kind = entry.name, entry.category, entry.kind
        if name != key and "filler words" not in steps:
            steps.append("synonym")
    else:
        name, category, kind = key, None, None

    merged = resolve_merge(name, merges)
    if merged != name:
        steps.append("merge")
        name = merged
        merged_entry = vocabulary.lookup_key(merged)
        if merged_entry is not None:
            category, kind = merged_entry.category, merged_entry.kind
    return NormalizedConcept(
        raw=raw,
        name=name,
        category=category,
        kind=kind,
        known=entry is not None or vocabulary.lookup_key(name) is not None,
        steps=tuple(steps),
    )


def normalize_many(
    raws: list[str],
    *,
    vocabulary: Vocabulary | None = None,
    merges: Mapping[str, str] | None = None,
) -> list[NormalizedConcept]:
    """Normalize a list of answers with one vocabulary and one merge table."""
    vocabulary = vocabulary or default_vocabulary()
    return [normalize_concept(r, vocabulary=vocabulary, merges=merges) for r in raws]
