"""Issue 12, points 8 and 9: answers in every script yield a concept (NFKC + casefold, letters
and marks of every script kept, composed = decomposed), the crowd validator and the normaliser
agree, and hostile concepts get a message under the concept field.

Corpora: tests/data/unicode_concepts.txt (accepted, with the concept each yields) and
tests/data/hostile_concepts.txt (refused)."""

import unicodedata

import pytest

from annotate.crowd.concepts import concept_key
from annotate.crowd.services import validate_answer
from core.concepts.text import clean_text, normalize_text
from tests.security.corpus import lines

UNICODE = [tuple(line.split("\t")) for line in lines("unicode_concepts.txt")]
HOSTILE = lines("hostile_concepts.txt") + ["x" * 10_000, "dog " * 2_500]


@pytest.mark.parametrize(("raw", "expected"), UNICODE)
def test_answers_in_every_script_yield_their_concept(raw, expected):
    assert concept_key(raw) == expected
    assert validate_answer(concept=raw, category="object") == {}


def test_composed_and_decomposed_forms_are_one_concept():
    composed, decomposed = "\u00e9cole", "e\u0301cole"
    assert composed != decomposed
    assert unicodedata.normalize("NFC", decomposed) == composed
    assert concept_key(composed) == concept_key(decomposed) == "école"
    assert validate_answer(concept=decomposed, category="object") == {}


def test_the_issue_inputs():
    # Before: "stra e", "i stanbul", "" (an empty concept on the unit's label).
    assert normalize_text("straße") == "strasse"
    assert normalize_text("İstanbul") == "istanbul"
    assert normalize_text("١٢٣") == "١٢٣"


def test_english_behaviour_is_kept():
    assert clean_text("  Black/White ") == "black and white"
    assert normalize_text("The Dogs") == "dog"
    assert normalize_text("some leaves of trees") == "leaf tree"


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_concepts_are_refused_under_the_concept_field(raw):
    errors = validate_answer(concept=raw, category="object")
    assert list(errors) == ["concept"], errors
    assert errors["concept"][0].startswith("Concept: ")


@pytest.mark.parametrize("raw", [r for r, _ in UNICODE] + HOSTILE)
def test_validator_and_normaliser_agree(raw):
    """Whatever the validator accepts has a non-empty concept."""
    if not validate_answer(concept=raw, category="object"):
        assert concept_key(raw)
