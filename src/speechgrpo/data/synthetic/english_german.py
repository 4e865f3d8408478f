"""An English grammar with a German twin: sentences sampled once, rendered in both languages.

A :class:`Sentence` is a tree (noun phrases, clauses, connectives) built from the lexicon; rendering it
gives the English source and its German translation. The German side applies the rules a translator
must get right:

- gender, number and case of articles and determiners (*der/den/dem*, *ein/einen/einem*, *dieser*,
  *jeder*, *mein*, *unser*, *kein*), weak masculine nouns (*den Jungen*), dative plural *-n*;
- adjective endings after definite, indefinite and no determiners (*der alte Mann*, *ein alter Mann*,
  *mit zwei kleinen Katzen*), irregular stems (*ein teures Auto*);
- verbs governing the dative (*hilft dem Mann*), dative + accusative (*gibt dem Jungen ein Buch*),
  dative after prepositions of place with contractions (*im Garten*, *am See*, *auf dem Markt*);
- conjugation in the 3rd person singular and plural, perfect with *haben* or *sein* (*ist gelaufen*),
  future with *werden*, *war/waren*;
- word order: verb second (*Gestern hat der Mann ...*), participle and infinitive last, verb-final in
  *weil*/*dass*/relative clauses, *nicht* vs *kein* in negation.

Word order in the middle field is fixed (time/frequency adverb, dative object, definite accusative
object, *mit* phrase, place, indefinite accusative object), so that every English sentence has exactly
one reference.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from speechgrpo.data.synthetic.lexicon import (
    ADJECTIVES,
    ADVERBS,
    CITIES,
    NAMES,
    NOUNS,
    NUMBERS_DE,
    NUMBERS_EN,
    PLACES,
    VERBS,
    Adjective,
    Adverb,
    Noun,
    Place,
    Verb,
)

CASES = ("nom", "acc", "dat")
_DEFINITE = {"m": ("der", "den", "dem"), "f": ("die", "die", "der"), "n": ("das", "das", "dem"),
             "pl": ("die", "die", "den")}
_DER_WORD = {"m": ("er", "en", "em"), "f": ("e", "e", "er"), "n": ("es", "es", "em"), "pl": ("e", "e", "en")}
_EIN_WORD = {"m": ("", "en", "em"), "f": ("e", "e", "er"), "n": ("", "", "em"), "pl": ("e", "e", "en")}
# adjective endings: after der-words (weak), after ein-words (mixed), without a determiner (strong)
_WEAK = {"m": ("e", "en", "en"), "f": ("e", "e", "en"), "n": ("e", "e", "en"), "pl": ("en", "en", "en")}
_MIXED = {"m": ("er", "en", "en"), "f": ("e", "e", "en"), "n": ("es", "es", "en"), "pl": ("en", "en", "en")}
_STRONG = {"m": ("er", "en", "em"), "f": ("e", "e", "er"), "n": ("es", "es", "em"), "pl": ("e", "e", "en")}
_CONTRACTIONS = {("in", "dem"): "im", ("an", "dem"): "am", ("zu", "dem"): "zum", ("zu", "der"): "zur",
                 ("bei", "dem"): "beim", ("von", "dem"): "vom"}
# determiner -> (English singular, English plural, German stem or "" , German declension)
DETERMINERS = {
    "the": ("the", "the", "", "definite"),
    "a": ("a", "", "ein", "ein"),
    "my": ("my", "my", "mein", "ein"),
    "our": ("our", "our", "unser", "ein"),
    "her": ("her", "her", "ihr", "ein"),
    "his": ("his", "his", "sein", "ein"),
    "this": ("this", "these", "dies", "der"),
    "every": ("every", "", "jed", "der"),
    "no": ("", "", "kein", "ein"),  # only from negating an indefinite object
    "bare": ("", "", "", "none"),  # plural or mass noun without an article
    "num": ("", "", "", "none"),
}
INDEFINITE = frozenset({"a", "bare", "num", "no"})
TENSES = ("present", "past", "future")


@dataclass(frozen=True)
class NounPhrase:
    """A noun (or a name, with ``noun=None``) with determiner, number and adjectives; ``relative`` is a
    subject relative clause (*who lives in Rome*) whose own subject is this phrase."""

    noun: Noun | None
    det: str = "the"
    plural: bool = False
    count: int = 0  # for det "num"
    adjectives: tuple[Adjective, ...] = ()
    name: str = ""
    relative: Clause | None = None
    owner: str = ""  # English only: the named person whose it is, said in place of the determiner (*Anna's dog*)

    @property
    def gender(self) -> str:
        if self.plural or self.det == "num":
            return "pl"
        if self.noun is None:
            return NAMES[self.name]
        return self.noun.gender

    @property
    def animate_kind(self) -> str:
        if self.noun is None:
            return "person"
        return "person" if "person" in self.noun.kinds else "animal" if "animal" in self.noun.kinds else "thing"


@dataclass(frozen=True)
class Clause:
    """One clause. ``verb=None`` with ``predicate`` set is a copula clause (*the dog is tired*)."""

    subject: NounPhrase
    verb: Verb | None
    tense: str = "present"
    dative: NounPhrase | None = None  # dative object, or the recipient of a ditransitive verb
    accusative: NounPhrase | None = None
    predicate: Adjective | None = None
    place: Place | None = None
    place_np: NounPhrase | None = None
    city: str = ""  # *in Rome* (lives), *to Rome* (travels)
    company: NounPhrase | None = None  # *with my friend*
    adverb: Adverb | None = None
    fronted: bool = False
    negated: bool = False


@dataclass(frozen=True)
class Sentence:
    """``connective``: "" (one clause), "and", "but", "because" (second clause verb-final in German),
    or "that" (``first`` is the reporting clause: *Maria says that ...*)."""

    first: Clause
    second: Clause | None = None
    connective: str = ""

    @property
    def english(self) -> str:
        return render_english(self)

    @property
    def german(self) -> str:
        return render_german(self)


# ---------------------------------------------------------------------------------------------- English

def _article_a(next_word: str) -> str:
    return "an" if next_word[:1].lower() in "aeiou" else "a"  # the lexicon has no "uni-"/"eu-" words


def english_np(np: NounPhrase) -> str:
    if np.noun is None:
        words = [np.name]
    else:
        head = np.noun.en_plural if _is_plural(np) else np.noun.en
        words = [a.en for a in np.adjectives] + [head]
        if np.owner:
            words.insert(0, f"{np.owner}'s")
        elif np.det == "num":
            words.insert(0, NUMBERS_EN[np.count])
        elif np.det == "a" and not np.plural:
            words.insert(0, _article_a(words[0]))
        elif np.det == "no":
            raise ValueError("'no' is a German negation form; English keeps 'a'")
        elif np.det != "bare":
            sg, pl, _, _ = DETERMINERS[np.det]
            words.insert(0, pl if np.plural else sg)
    text = " ".join(words)
    if np.relative is not None:
        pronoun = "who" if np.animate_kind == "person" else "that"
        text += " " + english_clause(np.relative, subject_text=pronoun)
    return text


def _english_verb(clause: Clause, plural: bool) -> list[str]:
    """Auxiliaries, negation, frequency adverb and verb form, in English order."""
    freq = [clause.adverb.en] if clause.adverb and clause.adverb.kind == "freq" and not clause.fronted else []
    neg = ["not"] if clause.negated else []
    if clause.verb is None:
        be = {"present": "are" if plural else "is", "past": "were" if plural else "was", "future": "will"}
        if clause.tense == "future":
            return ["will", *neg, *freq, "be"]
        return [be[clause.tense], *neg, *freq]
    verb = clause.verb
    if clause.tense == "future":
        return ["will", *neg, *freq, verb.en_base]
    if clause.negated:
        aux = "did" if clause.tense == "past" else "do" if plural else "does"
        return [aux, "not", verb.en_base]
    form = verb.en_past if clause.tense == "past" else verb.en_base if plural else verb.en_3sg
    return [*freq, form]


def english_clause(clause: Clause, subject_text: str | None = None) -> str:
    words = []
    time = clause.adverb.en if clause.adverb and (clause.adverb.kind == "time" or clause.fronted) else ""
    if time and clause.fronted:
        words.append(time)
    words.append(subject_text if subject_text is not None else english_np(clause.subject))
    words += _english_verb(clause, _is_plural(clause.subject))
    if clause.predicate is not None:
        words.append(clause.predicate.en)
    words += english_complements(clause)
    if time and not clause.fronted:
        words.append(time)
    return " ".join(words)


def english_complements(clause: Clause) -> list[str]:
    """The objects, *with* phrase, city and place after the verb (and predicate), in English order."""
    words = []
    if clause.dative is not None:
        words.append(english_np(clause.dative))
    if clause.accusative is not None:
        words.append(english_np(clause.accusative))
    if clause.company is not None:
        words += ["with", english_np(clause.company)]
    if clause.city:
        words += ["to" if clause.verb is not None and clause.verb.frame == "travel" else "in", clause.city]
    if clause.place is not None and clause.place_np is not None:
        words += [clause.place.en_prep, english_np(clause.place_np)]
    return words


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def render_english(sentence: Sentence) -> str:
    first = english_clause(sentence.first)
    if sentence.second is None:
        return _capitalize(first) + "."
    second = english_clause(sentence.second)
    joiner = {"and": " and ", "but": ", but ", "because": " because ", "that": " that "}[sentence.connective]
    return _capitalize(first + joiner + second) + "."


# ----------------------------------------------------------------------------------------------- German

def _is_plural(np: NounPhrase) -> bool:
    return np.plural or np.det == "num"


def german_determiner(det: str, gender: str, case: str) -> str:
    """The determiner word for ``det`` in ``gender`` ("m", "f", "n", "pl") and ``case`` ('' when none)."""
    i = CASES.index(case)
    _, _, stem, kind = DETERMINERS[det]
    if kind == "definite":
        return _DEFINITE[gender][i]
    if kind == "der":
        return stem + _DER_WORD[gender][i]
    if kind == "ein":
        if det == "a" and gender == "pl":
            return ""
        return stem + _EIN_WORD[gender][i]
    return ""


def adjective_ending(det: str, gender: str, case: str) -> str:
    """The ending of an attributive adjective after ``det`` (weak / mixed / strong declension)."""
    i = CASES.index(case)
    kind = DETERMINERS[det][3]
    if kind in ("definite", "der"):
        return _WEAK[gender][i]
    if kind == "ein" and not (det == "a" and gender == "pl"):
        return _MIXED[gender][i]
    return _STRONG[gender][i]


def german_noun(noun: Noun, plural: bool, case: str) -> str:
    if plural:
        if case == "dat" and not noun.de_plural.endswith(("n", "s")):
            return noun.de_plural + "n"
        return noun.de_plural
    return noun.weak if noun.weak and case != "nom" else noun.de


def german_np(np: NounPhrase, case: str, preposition: str = "") -> str:
    """The noun phrase in ``case``, with ``preposition`` in front (contracted: *in dem* -> *im*)."""
    if np.owner:
        raise ValueError(f"{english_np(np)}: an owner is said in English only")
    if np.noun is None:
        words = [np.name]
    else:
        gender = "pl" if _is_plural(np) else np.noun.gender
        det = german_determiner(np.det, gender, case)
        ending = adjective_ending(np.det, gender, case)
        words = [a.de_stem + ending for a in np.adjectives] + [german_noun(np.noun, _is_plural(np), case)]
        if np.det == "num":
            words.insert(0, NUMBERS_DE[np.count])
        elif det:
            words.insert(0, det)
    if preposition:
        if np.noun is not None and (preposition, words[0]) in _CONTRACTIONS and np.det == "the":
            words[0] = _CONTRACTIONS[(preposition, words[0])]
        else:
            words.insert(0, preposition)
    text = " ".join(words)
    if np.relative is not None:
        pronoun = _DEFINITE[np.gender][0]
        text += ", " + german_clause(np.relative, "sub", subject_text=pronoun) + ","
    return text


def _finite_and_rest(clause: Clause, plural: bool, animal: bool) -> tuple[str, str]:
    """(finite verb, non-finite verb or '') of the clause."""
    if clause.verb is None:
        if clause.tense == "future":
            return ("werden" if plural else "wird"), "sein"
        if clause.tense == "past":
            return ("waren" if plural else "war"), ""
        return ("sind" if plural else "ist"), ""
    verb = clause.verb
    sg, pl, participle = verb.de_3sg, verb.de_plural, verb.de_participle
    if animal and verb.de_animal is not None:
        sg, pl, participle = verb.de_animal
    if clause.tense == "present":
        return (pl if plural else sg), ""
    if clause.tense == "past":
        aux = {"haben": ("hat", "haben"), "sein": ("ist", "sind")}[verb.aux]
        return (aux[1] if plural else aux[0]), participle
    return ("werden" if plural else "wird"), pl


def _middle_field(clause: Clause) -> list[str]:
    """Everything between the finite verb (or subject, in a verb-final clause) and the verb cluster."""
    words: list[str] = []
    if clause.adverb is not None and not clause.fronted:
        words.append(clause.adverb.de)
    acc = clause.accusative
    nicht_done = not clause.negated
    if clause.negated and acc is not None and acc.det in ("a", "bare"):
        acc, nicht_done = replace(acc, det="no"), True
    dat = clause.dative
    if clause.negated and acc is None and dat is not None and dat.det in ("a", "bare"):
        dat, nicht_done = replace(dat, det="no"), True
    if dat is not None:
        words.append(german_np(dat, "dat"))
    if acc is not None and acc.det not in INDEFINITE:
        words.append(german_np(acc, "acc"))
    if not nicht_done and (clause.company or clause.place or clause.city or clause.predicate):
        words.append("nicht")
        nicht_done = True
    if clause.company is not None:
        words.append(german_np(clause.company, "dat", "mit"))
    if clause.city:
        city = CITIES[clause.city]
        words.append(f"nach {city}" if clause.verb is not None and clause.verb.frame == "travel" else f"in {city}")
    if clause.place is not None and clause.place_np is not None:
        words.append(german_np(clause.place_np, "dat", clause.place.de_prep))
    if acc is not None and acc.det in INDEFINITE:
        words.append(german_np(acc, "acc"))
    if clause.predicate is not None:
        words.append(clause.predicate.de)
    if not nicht_done:
        words.append("nicht")
    return words


def german_clause(clause: Clause, order: str = "main", subject_text: str | None = None) -> str:
    """``order="main"``: verb second; ``"sub"``: verb last (after *weil*, *dass*, a relative pronoun)."""
    subject = subject_text if subject_text is not None else german_np(clause.subject, "nom")
    animal = clause.subject.animate_kind == "animal"
    finite, rest = _finite_and_rest(clause, _is_plural(clause.subject), animal)
    middle = _middle_field(clause)
    tail = [rest] if rest else []
    if order == "sub":
        return " ".join([subject, *middle, *tail, finite])
    if clause.fronted and clause.adverb is not None:
        return " ".join([clause.adverb.de, finite, subject, *middle, *tail])
    return " ".join([subject, finite, *middle, *tail])


def render_german(sentence: Sentence) -> str:
    first = german_clause(sentence.first)
    if sentence.second is None:
        return _capitalize(first) + "."
    if sentence.connective in ("because", "that"):
        conj = "weil" if sentence.connective == "because" else "dass"
        text = f"{first}, {conj} {german_clause(sentence.second, 'sub')}"
    else:
        conj = " und " if sentence.connective == "and" else ", aber "
        text = first + conj + german_clause(sentence.second)
    return _capitalize(text) + "."


# --------------------------------------------------------------------------------------------- sampling

@dataclass(frozen=True)
class Complexity:
    """Probabilities that shape sentences; :func:`complexity` gives them per difficulty level."""

    compound: float  # two clauses (and / but / because / that)
    relative: float  # a relative clause on the subject
    adjective: float  # each adjective slot filled (two slots)
    adverb: float
    fronted: float
    place: float
    company: float
    negation: float
    name: float  # a name as subject or object
    plural: float
    tenses: tuple[str, ...]


def complexity(difficulty: int) -> Complexity:
    """1: short single clauses in present/past; 2: all tenses, adverbs, some compound sentences and
    negation; 3: mostly long sentences with relative and subordinate clauses."""
    if difficulty == 1:
        return Complexity(0.0, 0.0, 0.25, 0.25, 0.3, 0.25, 0.0, 0.0, 0.15, 0.25, ("present", "past"))
    if difficulty == 2:
        return Complexity(0.25, 0.1, 0.35, 0.5, 0.35, 0.4, 0.08, 0.1, 0.15, 0.3, TENSES)
    if difficulty == 3:
        return Complexity(0.55, 0.25, 0.45, 0.6, 0.35, 0.5, 0.12, 0.15, 0.15, 0.3, TENSES)
    raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty}")


_REPORTING = (  # (English 3sg, English plural, German 3sg, German plural) for "X says that ..."
    ("says", "say", "sagt", "sagen"), ("thinks", "think", "glaubt", "glauben"),
    ("knows", "know", "weiß", "wissen"), ("hopes", "hope", "hofft", "hoffen"),
)
REPORTING_VERBS: dict[str, Verb] = {
    en: Verb(en, base, en, de, de_pl, "", "haben", "report", frozenset({"person"}))
    for en, base, de, de_pl in _REPORTING
}
_NOUNS_BY_KIND: dict[str, list[Noun]] = {}
for _noun in NOUNS.values():
    for _kind in _noun.kinds:
        _NOUNS_BY_KIND.setdefault(_kind, []).append(_noun)
_NAMES = sorted(NAMES)
_CITIES = sorted(CITIES)
_VERB_LIST = list(VERBS.values())


def _choose_noun(rng: random.Random, kinds: frozenset[str], avoid: Sequence[Noun]) -> Noun:
    pool = sorted({n.en: n for k in sorted(kinds) for n in _NOUNS_BY_KIND.get(k, []) if n not in avoid}.items())
    return rng.choice(pool)[1]


def _adjectives_for(rng: random.Random, noun: Noun, cx: Complexity, *, place: bool = False) -> tuple[Adjective, ...]:
    """Up to two adjectives that fit the noun (one for a place), of different kinds (size, age, colour ...)."""
    kinds = frozenset({"place"}) if place else noun.kinds - {"place"}
    chosen: list[Adjective] = []
    pool = [a for a in ADJECTIVES.values() if a.kinds & kinds]
    slots = 1 if place else 2
    for _ in range(slots):
        if not pool or rng.random() >= cx.adjective:
            break
        adjective = rng.choice(pool)
        chosen.append(adjective)
        pool = [a for a in pool if a.order != adjective.order and a.de_stem != adjective.de_stem]
    return tuple(sorted(chosen, key=lambda a: a.order))


def sample_np(rng: random.Random, kinds: frozenset[str], cx: Complexity, *, role: str,
              avoid: Sequence[Noun] = ()) -> NounPhrase:
    """A noun phrase whose noun has one of ``kinds``; ``role`` ("subject", "object", "company") restricts
    determiners (*every* only on subjects)."""
    if "person" in kinds and rng.random() < cx.name:
        return NounPhrase(noun=None, det="name", name=rng.choice(_NAMES))
    noun = _choose_noun(rng, kinds, avoid)
    adjectives = _adjectives_for(rng, noun, cx)
    if noun.mass:
        det = rng.choices(["the", "my", "this", "bare"], [3, 1, 1, 4])[0]
        return NounPhrase(noun, det, adjectives=adjectives)
    possessive = 0 if "stranger" in noun.kinds else 1
    if rng.random() < cx.plural and "single" not in noun.kinds:
        det = rng.choices(["the", "my", "our", "this", "bare", "num"], [4, possessive, possessive, 1, 2, 3])[0]
        count = rng.randint(2, 12) if det == "num" else 0
        return NounPhrase(noun, det, plural=det != "num", count=count, adjectives=adjectives)
    weights = [5, 4, possessive, possessive, 1, 1 if role == "subject" else 0]
    det = rng.choices(["the", "a", "my", "our", "this", "every"], weights)[0]
    return NounPhrase(noun, det, adjectives=adjectives)


def _head(np: NounPhrase | None) -> list[Noun]:
    return [np.noun] if np is not None and np.noun is not None else []


def sample_clause(rng: random.Random, cx: Complexity, *, tense: str | None = None, allow_relative: bool = True,
                  subject_kind: str | None = None) -> Clause:
    """One clause: a subject, a verb that fits it, its objects, and optional adverb, place and negation."""
    kind = subject_kind or rng.choices(["person", "animal"], [7, 3])[0]
    tense = tense or rng.choice(cx.tenses)
    subject = sample_np(rng, frozenset({kind}), cx, role="subject")
    if rng.random() < 0.1:
        predicates = [a for a in ADJECTIVES.values() if kind in a.kinds and a.order == 1]
        clause = Clause(subject, None, tense, predicate=rng.choice(predicates))
    else:
        verb = rng.choice([v for v in _VERB_LIST if kind in v.subjects])
        clause = Clause(subject, verb, tense)
        used = _head(subject)
        if verb.frame in ("acc", "ditr"):
            obj = sample_np(rng, verb.objects, cx, role="object", avoid=used)
            if any(a.en == verb.en_base for a in obj.adjectives):  # not "cleans the clean cups"
                obj = replace(obj, adjectives=())
            clause = replace(clause, accusative=obj)
            used += _head(obj)
        if verb.frame == "dat":
            clause = replace(clause, dative=sample_np(rng, verb.objects, cx, role="object", avoid=used))
        elif verb.frame == "ditr":
            clause = replace(clause, dative=sample_np(rng, verb.recipients, cx, role="object", avoid=used))
        used += _head(clause.dative)
        if verb.frame in ("live", "travel"):
            if verb.frame == "live" and rng.random() < 0.5:
                place = rng.choice([p for p in PLACES if p.en_prep == "in" and p.noun.en in ("village", "city",
                                                                                             "house")])
                clause = replace(clause, place=place, place_np=_place_np(rng, place, cx))
            else:
                clause = replace(clause, city=rng.choice(_CITIES))
        elif verb.frame != "ditr" and rng.random() < cx.place:
            places = [p for p in PLACES if (kind == "person" or p.animals) and p.noun not in used]
            place = rng.choice(places)
            clause = replace(clause, place=place, place_np=_place_np(rng, place, cx))
        if kind == "person" and verb.frame in ("intr", "acc", "travel") and rng.random() < cx.company:
            company = sample_np(rng, frozenset({"person"}), replace(cx, plural=0.0), role="company",
                                avoid=used + _head(subject))
            if company.det != "every" and (company.name != subject.name or not company.name):
                clause = replace(clause, company=company)
    if rng.random() < cx.adverb:
        adverb = rng.choice([a for a in ADVERBS if tense in a.tenses])
        clause = replace(clause, adverb=adverb, fronted=adverb.frontable and rng.random() < cx.fronted)
    if rng.random() < cx.negation and _negatable(clause):
        clause = replace(clause, negated=True)
    if allow_relative and not clause.fronted and rng.random() < cx.relative:
        inner = sample_clause(rng, replace(cx, relative=0.0, negation=0.0, fronted=0.0, adverb=cx.adverb / 2),
                              allow_relative=False, subject_kind=kind)
        head = replace(subject, det="the" if subject.det in ("a", "every", "name") else subject.det,
                       noun=subject.noun if subject.noun is not None else _choose_noun(rng, frozenset({kind}), ()),
                       name="")
        inner = replace(inner, subject=head)
        clause = replace(clause, subject=replace(head, relative=inner))
    return clause


def _place_np(rng: random.Random, place: Place, cx: Complexity) -> NounPhrase:
    adjectives = _adjectives_for(rng, place.noun, cx, place=True)
    det = rng.choices(["the", "a", "my", "our", "this"], [8, 2, 1, 1, 1])[0]
    if place.noun.en in ("lake", "river", "beach", "station", "airport", "market", "street", "zoo", "cinema",
                         "farm", "field") and det != "the":
        det = "the"  # "at a lake" reads oddly in a habitual sentence; keep the common phrase
    return NounPhrase(place.noun, det, adjectives=adjectives)


def _negatable(clause: Clause) -> bool:
    """Negation reads naturally and has one German form: no frequency adverbs, no *every* subject,
    no numeral objects, no relative clauses inside."""
    if clause.adverb is not None and clause.adverb.kind == "freq":
        return False
    nps = [clause.subject, clause.accusative, clause.dative]
    if clause.subject.det == "every" or any(np is not None and np.det == "num" for np in nps[1:]):
        return False
    return not (clause.verb is not None and clause.verb.frame == "ditr" and clause.accusative is not None
                and clause.accusative.det not in ("a", "bare") and clause.dative is not None
                and clause.dative.det in ("a", "bare"))


def sample_sentence(rng: random.Random, difficulty: int = 2) -> Sentence:
    """A random sentence at ``difficulty`` (see :func:`complexity`)."""
    cx = complexity(difficulty)
    if rng.random() >= cx.compound:
        return Sentence(sample_clause(rng, cx))
    return sample_two_clauses(rng, cx)


def sample_two_clauses(rng: random.Random, cx: Complexity) -> Sentence:
    """Two clauses joined by *and*, *but*, *because* or *that* (a reporting clause: *Maria says that ...*)."""
    connective = rng.choices(["and", "but", "because", "that"], [3, 2, 3, 2])[0]
    if connective == "that":
        reporter = sample_np(rng, frozenset({"person"}), replace(cx, adjective=cx.adjective / 2), role="subject")
        verb = rng.choice(sorted(REPORTING_VERBS.values(), key=lambda v: v.en_3sg))
        first = Clause(reporter, verb, "present")
        second = sample_clause(rng, replace(cx, fronted=0.0), allow_relative=False)
        return Sentence(first, second, "that")
    first = sample_clause(rng, cx, allow_relative=connective != "because")
    second = sample_clause(rng, replace(cx, fronted=0.0, relative=0.0), allow_relative=False)
    return Sentence(first, second, connective)
