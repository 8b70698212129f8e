"""The crowd side's one door to concept normalization (owned by core.concepts).

Everything in annotate.crowd that compares or stores concept names goes through these functions,
so a change in how the reports part normalizes or merges concepts is picked up everywhere at once.
"""

from collections.abc import Callable, Mapping
from functools import cache, lru_cache

from django.utils.html import format_html_join

from core.concepts import store
from core.concepts.normalize import normalize_concept
from core.models import Concept


def concept_key(text: str, *, merges: Mapping[str, str] | None = None) -> str:
    """The normalized concept name of a free-text answer ("Trees " -> "tree"), after `merges`."""
    return normalize_concept(text or "", merges=merges or {}).name


def concept_merges() -> dict[str, str]:
    """Researcher merges (concept name -> the name it was merged into), read once per caller."""
    return store.merge_table()


def concept_keyer() -> Callable[[str], str]:
    """``concept_key`` with the merges read once and each distinct text normalised once: for
    loops over many answers (reliability, simulations)."""
    merges = concept_merges()

    @cache
    def key(text: str) -> str:
        return concept_key(text, merges=merges)

    return key


def concept_for_text(text: str) -> Concept | None:
    """The Concept row an answer is stored with (created for new free text), or None for empty text."""
    return store.concept_for_text(text=text)


@lru_cache(maxsize=1)
def vocabulary_datalist() -> str:
    """The task page's autocomplete options as ready, escaped HTML (built once per process)."""
    from core.concepts.vocabulary import default_vocabulary

    names = sorted({entry.name for entry in default_vocabulary().entries})
    return format_html_join("", '<option value="{}">', ((name,) for name in names))
