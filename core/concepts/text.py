"""Text-level normalization of free-text concept names: case, punctuation, spelling, plural.

These functions know nothing about the vocabulary; `normalize.normalize_concept` adds the lookup.
"""

import re
import unicodedata
from collections.abc import Mapping

# Joiners that mean "and" in a concept ("black/white", "red & green").
_AND_RE = re.compile(r"\s*[/&+]\s*")
_SPACE_RE = re.compile(r"\s+")

# Words dropped wherever they stand: they never change which concept is meant.
STOP_WORDS = frozenset({"the", "a", "an", "some", "of"})

# Plural forms that do not follow the suffix rules below.
_IRREGULAR = {
    "people": "person",
    "peoples": "person",
    "men": "man",
    "women": "woman",
    "children": "child",
    "feet": "foot",
    "teeth": "tooth",
    "mice": "mouse",
    "geese": "goose",
    "oxen": "ox",
    "leaves": "leaf",
    "shelves": "shelf",
    "halves": "half",
    "loaves": "loaf",
    "wolves": "wolf",
    "calves": "calf",
    "knives": "knife",
    "wives": "wife",
    "lives": "life",
    "scarves": "scarf",
    "hooves": "hoof",
    "thieves": "thief",
    "buses": "bus",
    "gases": "gas",
    "lenses": "lens",
    "canvases": "canvas",
    "irises": "iris",
    "cactuses": "cactus",
    "viruses": "virus",
    "campuses": "campus",
    "tomatoes": "tomato",
    "potatoes": "potato",
    "heroes": "hero",
    "volcanoes": "volcano",
    "echoes": "echo",
    "mosquitoes": "mosquito",
    "dominoes": "domino",
    "menus": "menu",
    "niches": "niche",
    "caches": "cache",
    "aches": "ache",
    "moustaches": "moustache",
    "mustaches": "mustache",
    "avalanches": "avalanche",
}
# Words that end in "s" but are not plurals (or whose plural we keep as the concept).
_NOT_PLURAL = frozenset(
    {
        "gas",
        "bus",
        "lens",
        "canvas",
        "atlas",
        "christmas",
        "xmas",
        "texas",
        "bias",
        "alias",
        "pancreas",
        "series",
        "species",
        "news",
        "clothes",
        "pants",
        "jeans",
        "trousers",
        "shorts",
        "scissors",
        "glasses",
        "billiards",
        "sideways",
        "always",
        "perhaps",
        "towards",
        "upwards",
        "downwards",
        "afterwards",
        "across",
        "this",
        "its",
        "his",
        "has",
        "was",
        "yes",
        "is",
        "as",
        "us",
        "physics",
        "athletics",
        "mathematics",
        "economics",
        "electronics",
        "graphics",
        "outdoors",
        "indoors",
        "ruins",
        "dunes",
    }
)
_IES_KEEP = frozenset(
    {"movies", "cookies", "pies", "ties", "lies", "dies", "zombies", "brownies", "calories"}
)


def fold(text: str) -> str:
    """Unicode-aware case folding in a canonical form: NFKC, casefold, NFKC again. Composed and
    decomposed spellings ("école" as one code point or as e + U+0301), full-width letters and
    ligatures compare equal; "Straße" -> "strasse"; "İstanbul" -> "istanbul" (the dot that
    casefold leaves on a dotted capital I is dropped, as in every other spelling of the word)."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    text = text.replace("i\u0307", "i")
    return unicodedata.normalize("NFKC", text)


def is_word_char(ch: str) -> bool:
    """Letters, marks (accents, vowel signs of Indic scripts) and digits of every script."""
    return unicodedata.category(ch)[0] in "LMN"


def _words_only(text: str) -> str:
    return "".join(ch if is_word_char(ch) else " " for ch in text)


def clean_text(text: str) -> str:
    """Fold `text` (``fold``), turn '/', '&', '+' into 'and', drop other punctuation and extra
    spaces. Letters and digits of every script are kept: "١٢٣" stays "١٢٣", "猫" stays "猫"."""
    text = fold(text)
    text = text.replace("'", "").replace("\u2019", "")  # "dog's" -> "dogs", not "dog s"
    text = _AND_RE.sub(" and ", text)
    text = text.replace("-", " ").replace("_", " ")
    text = _words_only(text)
    return _SPACE_RE.sub(" ", text).strip()


def singularize(word: str) -> str:
    """The singular of the English noun `word` (lower case); other words come back unchanged."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 3 or word in _NOT_PLURAL or not word.endswith("s"):
        return word
    if word.endswith(("ss", "us", "is", "ous")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word if word in _IES_KEEP else word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return word[:-2]
    return word[:-1]


def normalize_text(text: str, *, misspellings: Mapping[str, str] | None = None) -> str:
    """Clean `text`, fix known misspellings word by word, drop stop words and singularize each word.

    This is the key under which concepts are compared and looked up: two answers naming the same
    thing with different case, punctuation or number end up equal.
    """
    misspellings = misspellings or {}
    words = []
    for word in clean_text(text).split():
        word = misspellings.get(word, word)
        if word in STOP_WORDS:
            continue
        # The plural rules are English: words in other scripts or with accents stay as typed.
        words.append(singularize(word) if word.isascii() else word)
    return " ".join(words)
