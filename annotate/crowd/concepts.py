"""The crowd side's one door to concept normalization (owned by annotate.labels).

Everything in annotate.crowd that compares or stores concept names goes through these two functions,
so a change in how the reports part normalizes is picked up everywhere at once.
"""

from functools import lru_cache

from django.utils.html import format_html_join

from annotate.labels.normalize import normalize_concept
from annotate.models import Concept

# The labels vocabulary names the sixth category "element"; the data model calls it "color".
_CATEGORY_TO_MODEL = {"element": "color"}


def concept_key(text: str) -> str:
    """The normalized concept name of a free-text answer ("Trees " -> "tree")."""
    return normalize_concept(text or "").name


def concept_for_text(text: str) -> Concept | None:
    """The Concept row an answer counts as (created for new free text), or None for empty text."""
    normalized = normalize_concept(text or "")
    if not normalized.name:
        return None
    category = normalized.category or ""
    concept, _ = Concept.objects.get_or_create(
        name=normalized.name[:100],
        defaults={
            "category": _CATEGORY_TO_MODEL.get(category, category),
            "source": Concept.Source.VOCABULARY if normalized.known else Concept.Source.FREE,
        },
    )
    return concept


@lru_cache(maxsize=1)
def vocabulary_datalist() -> str:
    """The task page's autocomplete options as ready, escaped HTML (built once per process)."""
    from annotate.labels.vocabulary import default_vocabulary

    names = sorted({entry.name for entry in default_vocabulary().entries})
    return format_html_join("", '<option value="{}">', ((name,) for name in names))
