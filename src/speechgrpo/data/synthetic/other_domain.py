"""Spoken translation from another domain: English questions and statements with their German translations.

The demo's base must translate speech before it sees the demo's own translation task, as Granite Speech
had been trained on speech translation but not on CoVoST2. Its translation data therefore differs from the
demo's ``ast`` split (affirmative one-clause statements in present or past at the demo's difficulty 1) in
three ways:

- **form**: a third are yes/no questions (*Did the old teacher read the book yesterday?*), where German puts
  the finite verb first (*Hat der alte Lehrer gestern das Buch gelesen?*) and English uses *do/does/did/will*
  or an inverted *be*; a third are statements of two clauses joined by *and*, *but*, *because* or *that*
  (*Maria says that the dog slept.* -> *Maria sagt, dass der Hund geschlafen hat.*); a third are one-clause
  statements that are negated (*A man does not laugh.*) or in the future tense (*Our mice will run.*);
  all in present, past and future;
- **sentences**: never one of the demo's (a question, two clauses, a negation or a future is never a demo
  sentence), no negation in questions, no relative clause;
- **vocabulary**: a third of the demo's nouns, verbs, adjectives, names and cities (chosen by a stable hash,
  :func:`reserved_for_the_demo`) never occur, so the demo's test sentences hold words the base has heard and
  read but never translated from speech.

The clauses come from the demo's own grammar (:func:`~speechgrpo.data.synthetic.english_german.sample_clause`)
and are rendered with its noun phrases and German middle field, so the translations follow the same rules.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, replace

from speechgrpo.data.synthetic.english_german import (
    TENSES,
    Clause,
    NounPhrase,
    Sentence,
    complexity,
    english_complements,
    english_np,
    german_np,
    sample_clause,
    sample_two_clauses,
)
from speechgrpo.data.synthetic.english_german import (
    _capitalize as capitalize,
)
from speechgrpo.data.synthetic.english_german import (
    _finite_and_rest as finite_and_rest,
)
from speechgrpo.data.synthetic.english_german import (
    _is_plural as is_plural,
)
from speechgrpo.data.synthetic.english_german import (
    _middle_field as middle_field,
)

#: one lexeme in RESERVED_SHARE (by a stable hash of its English form) occurs only in the demo's domain
RESERVED_SHARE = 3


def reserved_for_the_demo(lexeme: str) -> bool:
    """Whether a noun, verb, adjective, name or city (its English form) is kept out of this domain."""
    return zlib.crc32(f"speechgrpo-questions:{lexeme}".encode()) % RESERVED_SHARE == 0


def _np_lexemes(np: NounPhrase | None) -> list[str]:
    if np is None:
        return []
    words = [np.name] if np.noun is None else [np.noun.en]
    return words + [a.en for a in np.adjectives]


def clause_lexemes(clause: Clause) -> list[str]:
    """The English forms of the clause's nouns, adjectives, verb, names and city (what the share counts)."""
    words = [*_np_lexemes(clause.subject), *_np_lexemes(clause.dative), *_np_lexemes(clause.accusative),
             *_np_lexemes(clause.place_np), *_np_lexemes(clause.company)]
    if clause.verb is not None:
        words.append(clause.verb.en_base)
    if clause.predicate is not None:
        words.append(clause.predicate.en)
    if clause.city:
        words.append(clause.city)
    return words


@dataclass(frozen=True)
class Question:
    """A yes/no question: one clause, asked."""

    clause: Clause

    @property
    def english(self) -> str:
        return english_question(self.clause)

    @property
    def german(self) -> str:
        return german_question(self.clause)


def english_question(clause: Clause) -> str:
    """*Does the dog sleep in the garden?*, *Did Anna often read?*, *Will the boys be tired?*, *Is it old?*"""
    plural = is_plural(clause.subject)
    freq = [clause.adverb.en] if clause.adverb is not None and clause.adverb.kind == "freq" else []
    time = [clause.adverb.en] if clause.adverb is not None and clause.adverb.kind == "time" else []
    subject = english_np(clause.subject)
    if clause.verb is None:  # copula: inverted *be*, or *will ... be*
        if clause.tense == "future":
            head, after = "will", [*freq, "be"]
        else:
            head = {"present": "are" if plural else "is", "past": "were" if plural else "was"}[clause.tense]
            after = freq
        assert clause.predicate is not None
        words = [head, subject, *after, clause.predicate.en]
    else:
        head = {"future": "will", "past": "did", "present": "do" if plural else "does"}[clause.tense]
        words = [head, subject, *freq, clause.verb.en_base]
    return capitalize(" ".join([*words, *english_complements(clause), *time])) + "?"


def german_question(clause: Clause) -> str:
    """Verb first: *Schläft der Hund im Garten?*, *Hat Anna oft gelesen?*, *Werden die Jungen müde sein?*"""
    finite, rest = finite_and_rest(clause, is_plural(clause.subject), clause.subject.animate_kind == "animal")
    words = [finite, german_np(clause.subject, "nom"), *middle_field(clause), *([rest] if rest else [])]
    return capitalize(" ".join(words)) + "?"


def _free_of_reserved(clauses: list[Clause], reserve: bool) -> bool:
    return not reserve or not any(reserved_for_the_demo(lexeme) for clause in clauses
                                  for lexeme in clause_lexemes(clause))


def sample_question(rng: random.Random, reserve: bool = True) -> Question:
    """A question of the out-of-domain register, none of whose lexemes is reserved for the demo (any
    lexeme with ``reserve=False``)."""
    cx = replace(complexity(1), tenses=TENSES, fronted=0.0, negation=0.0, relative=0.0)
    while True:
        clause = replace(sample_clause(rng, cx, allow_relative=False), fronted=False, negated=False)
        if _free_of_reserved([clause], reserve):
            return Question(clause)


def sample_statement(rng: random.Random, reserve: bool = True) -> Sentence:
    """A two-clause statement (any tense), none of whose lexemes is reserved for the demo (unless not
    ``reserve``)."""
    cx = replace(complexity(1), tenses=TENSES, relative=0.0)
    while True:
        sentence = sample_two_clauses(rng, cx)
        assert sentence.second is not None
        if _free_of_reserved([sentence.first, sentence.second], reserve):
            return sentence


def sample_negated_or_future(rng: random.Random, reserve: bool = True) -> Sentence:
    """A one-clause statement that is negated (*The dog did not sleep.*) or in the future tense (*The dog
    will sleep.*), so never one of the demo's affirmative present and past sentences; none of its lexemes
    is reserved for the demo (unless not ``reserve``)."""
    cx = replace(complexity(1), tenses=TENSES, negation=0.5, relative=0.0)
    while True:
        clause = sample_clause(rng, cx, allow_relative=False)
        if (clause.negated or clause.tense == "future") and _free_of_reserved([clause], reserve):
            return Sentence(clause)


def sample_other_domain(rng: random.Random, reserve: bool = True) -> Question | Sentence:
    """A third each: questions (:func:`sample_question`), two-clause statements (:func:`sample_statement`)
    and negated or future one-clause statements (:func:`sample_negated_or_future`). ``reserve=False``
    lifts the vocabulary restriction: the same register over the whole lexicon (the base's text
    translation, ``mt_other``, as an LLM reads far more text than its speech data holds)."""
    kind = rng.randrange(3)
    if kind == 0:
        return sample_question(rng, reserve)
    return sample_statement(rng, reserve) if kind == 1 else sample_negated_or_future(rng, reserve)
