"""The English-German lexicon of the synthetic spoken tasks: nouns with gender, plurals and weak
(n-declension) forms, adjectives with their inflection stems, verbs with both languages' forms and the
case they govern, prepositions of place, time and frequency adverbs, names and cities.

Entries are ``|``-separated rows of the data files in ``lexicon_tables/`` (``nouns.psv``, ``verbs.psv``, ...),
parsed at import. German forms are spelled out wherever they are
irregular (``teuer`` inflects on ``teur-``, ``der Junge`` is ``den Jungen``, an animal ``frisst``), so
the grammar in :mod:`speechgrpo.data.synthetic.english_german` only applies regular endings. Kind tags say which
nouns a verb or adjective goes with, so that generated sentences make sense (``single``: no plural,
*my fathers*; ``stranger``: no possessive, *our woman*).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True)
class Noun:
    """``weak`` is the singular accusative/dative form of an n-declension noun (``Jungen``), else ''.
    ``mass`` nouns (``milk``) have no plural and take no indefinite article."""

    en: str
    en_plural: str
    de: str
    de_plural: str
    gender: str  # "m", "f", "n"
    kinds: frozenset[str]
    weak: str = ""

    @property
    def mass(self) -> bool:
        return "mass" in self.kinds


@dataclass(frozen=True)
class Adjective:
    """``de_stem`` takes the endings (``teur`` + ``es``); ``order`` sorts stacked adjectives
    (1 opinion, 2 size, 3 age, 5 colour), as both languages do."""

    en: str
    de: str
    de_stem: str
    order: int
    kinds: frozenset[str]


@dataclass(frozen=True)
class Verb:
    """``frame``: "intr" (no object), "acc" (accusative object), "dat" (dative object), "ditr" (dative
    + accusative), "live" (needs a place: *lives in*), "travel" (needs a city: *travels to*).
    ``de_animal`` holds the 3sg/plural/participle used with an animal subject (*frisst*)."""

    en_3sg: str
    en_base: str
    en_past: str
    de_3sg: str
    de_plural: str
    de_participle: str
    aux: str  # "haben" or "sein"
    frame: str
    subjects: frozenset[str]
    objects: frozenset[str] = frozenset()
    recipients: frozenset[str] = frozenset()
    de_animal: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Place:
    """A place phrase: English preposition + German preposition (dative) + noun."""

    en_prep: str
    de_prep: str
    noun: Noun
    animals: bool  # an animal may be there


@dataclass(frozen=True)
class Adverb:
    en: str
    de: str
    tenses: frozenset[str]
    kind: str  # "time" or "freq"
    frontable: bool


def _kinds(text: str) -> frozenset[str]:
    return frozenset(k.strip() for k in text.split(",") if k.strip())


def _rows(table: str) -> list[list[str]]:
    """The ``|``-separated rows of ``lexicon_tables/<table>.psv`` (``#`` lines are comments)."""
    text = (files("speechgrpo.data.synthetic") / "lexicon_tables" / f"{table}.psv").read_text(encoding="utf-8")
    return [[cell.strip() for cell in line.split("|")] for line in text.strip().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


# German forms with an animal subject (English "eats" is German "frisst" for animals)
_ANIMAL_FORMS = {"eats": ("frisst", "fressen", "gefressen")}


NOUNS: dict[str, Noun] = {}
for _r in _rows("nouns"):
    NOUNS[_r[0]] = Noun(_r[0], _r[1], _r[2], _r[3], _r[4], _kinds(_r[5]), _r[6] if len(_r) > 6 else "")

ADJECTIVES: dict[str, Adjective] = {r[0]: Adjective(r[0], r[1], r[2], int(r[3]), _kinds(r[4]))
                                    for r in _rows("adjectives")}

VERBS: dict[str, Verb] = {}
for _r in _rows("verbs"):
    VERBS[_r[0]] = Verb(_r[0], _r[1], _r[2], _r[3], _r[4], _r[5], _r[6], _r[7], subjects=_kinds(_r[8]),
                        objects=_kinds(_r[9]) if len(_r) > 9 else frozenset(),
                        recipients=_kinds(_r[10]) if len(_r) > 10 else frozenset(),
                        de_animal=_ANIMAL_FORMS.get(_r[0]))

PLACES: tuple[Place, ...] = tuple(Place(r[0], r[1], NOUNS[r[2]], r[3] == "y") for r in _rows("places"))

_TENSES = {"p": "present", "s": "past", "f": "future"}
ADVERBS: tuple[Adverb, ...] = tuple(Adverb(r[0], r[1], frozenset(_TENSES[c] for c in r[2]), r[3], r[4] == "y")
                                    for r in _rows("adverbs"))

NAMES: dict[str, str] = {r[0]: r[1] for r in _rows("names")}  # name -> gender
CITIES: dict[str, str] = {r[0]: r[1] for r in _rows("cities")}  # English -> German

NUMBERS_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
              "twelve")
NUMBERS_DE = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn", "elf",
              "zwölf")

_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
          "nineteen")


def number_words(n: int) -> str:
    """English words for 0 <= n < 100 (``34`` -> ``thirty-four``), as a speaker reads them."""
    if not 0 <= n < 100:
        raise ValueError(f"number_words covers 0-99, got {n}")
    if n < 10:
        return NUMBERS_EN[n]
    if n < 20:
        return _TEENS[n - 10]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{NUMBERS_EN[ones]}" if ones else "")


def english_vocabulary() -> set[str]:
    """Every English word form of the lexicon (lower-cased), for reporting its size."""
    words: set[str] = set()
    for noun in NOUNS.values():
        words.update((noun.en + " " + noun.en_plural).lower().replace("-", " ").split())
    for adjective in ADJECTIVES.values():
        words.add(adjective.en)
    for verb in VERBS.values():
        words.update((verb.en_3sg, verb.en_base, verb.en_past))
    for adverb in ADVERBS:
        words.update(adverb.en.lower().split())
    words.update(n.lower() for n in NAMES)
    words.update(c.lower() for c in CITIES)
    return words
