"""Concept rows: the vocabulary entries and free-text concepts answers are stored with, and the
researchers' merges. Every app reads and writes Concept rows through these functions."""

from core.concepts.normalize import normalize_concept
from core.concepts.vocabulary import default_vocabulary
from core.models import Concept

# Longest stored concept name; the crowd's answer form allows fewer (CONCEPT_MAX_CHARS below).
CONCEPT_MAX_LENGTH = 100
# Longest concept an annotator may type: "one or two words" with room for long compounds.
CONCEPT_MAX_CHARS = 40


def merge_table() -> dict[str, str]:
    """Researcher merges as {concept name: name it was merged into}."""
    return dict(
        Concept.objects.filter(merged_into__isnull=False).values_list("name", "merged_into__name")
    )


def concepts_get_or_create(*, names: dict[str, str | None]) -> dict[str, "object"]:
    """Concept rows for {name: category or None}, creating the missing ones (bulk, race-safe)."""
    vocabulary = default_vocabulary()
    existing = {c.name: c for c in Concept.objects.filter(name__in=list(names))}
    missing = []
    for name, category in names.items():
        if name in existing:
            continue
        entry = vocabulary.lookup_key(name)
        missing.append(
            Concept(
                name=name,
                category=(entry.category if entry else category) or "",
                synonyms=list(entry.synonyms) if entry else [],
                source=Concept.Source.VOCABULARY if entry else Concept.Source.FREE,
            )
        )
    if missing:
        Concept.objects.bulk_create(missing, ignore_conflicts=True)
        existing.update({c.name: c for c in Concept.objects.filter(name__in=list(names))})
    return existing


def concept_for_text(*, text: str):
    """The Concept a worker's free text normalizes to (created if new), before researcher merges.

    The crowd's submit service stores it on Response.concept. Merges are applied when labels are
    computed, not stored on answers, so a merge made later counts and an undone merge is undone.
    """
    normalized = normalize_concept(text, merges={})
    name = normalized.name[:CONCEPT_MAX_LENGTH]
    if not name:
        return None
    return concepts_get_or_create(names={name: normalized.category})[name]
