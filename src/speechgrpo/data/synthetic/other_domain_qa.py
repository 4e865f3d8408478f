"""Text question answering from another domain: short narratives, a wh-question, its answer as a sentence.

The demo's base must answer questions before it sees the demo's spoken QA, as Granite Speech's LLM had
learnt question answering in general, not LibriSQA's answers. Its QA data therefore differs from the demo's
``sqa`` task (facts about one or two people: age, job, pets, purchases ...; answers reworded in a few set
phrasings, *she*/*he* resolved to the name) in:

- **passages**: 2-3 event sentences of the translation grammar, in present, past and future, never a
  personal-fact passage: half of them unrelated (*The old teacher read the book yesterday. Three dogs
  sleep in the garden.*), half about one named person, *she*/*he* after the first sentence (*Anna read
  the book yesterday. She will swim.*; no other name of that gender in it, though a person noun of that
  gender may be: *a queen*), where some later sentences tell of the person's animal (*Her dog slept.*,
  asked and answered as *Anna's dog*) and *my*/*our* are the person's (*She fed her cat.*), so the
  sentence that answers is not always one that names the person or says *she*/*he*; never with the verbs
  of the demo's facts (*live*, *work*, *travel*), whose questions would be the demo's (*Where does Anna
  live?*);
- **questions**: *who*/*which animal* for the subject, *what*/*who* for the object, *where* for the place
  (or city: :func:`clause_questions` asks it, the passages' verbs never take one), *when* for a time
  adverb, *who ... with* for the company, *what ... do* for the action, *how many* for a counted subject
  or object, *how often* for a frequency adverb, formed with *do*/*does*/*did*/*will* (*What did the old
  teacher read yesterday?*, *What will Anna do?*, *How many donkeys did Erik feed?*); each of
  the sentence's other optional parts (adverb, place, company) is left out of the question half the time
  (*When did Anna read the book?* of *Anna read the book in the garden yesterday.*); a question another
  sentence would also answer (with any of its adverb, place or company left out) is never asked, nor a
  *how many* or *how often* question another sentence answers in part (*Anna feeds the black cats.*,
  *every day*);
- **answers**: the question restated with the asked part filled in and nothing else, in the sentence's
  plain order (*Anna read the book yesterday.*; for *what ... do* the verb with its objects and company),
  the form an instruction-tuned LLM answers in; its words are the passage sentence's, but *she*/*he* and
  a subject's *her*/*his* are given as the name (*Anna*, *Anna's*).

Only the text is generated (there is no audio of it: the base never hears a question asked).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace

from speechgrpo.data.synthetic.english_german import (
    _NAMES,
    TENSES,
    Clause,
    Complexity,
    NounPhrase,
    Sentence,
    complexity,
    english_clause,
    english_np,
    sample_clause,
)
from speechgrpo.data.synthetic.english_german import (
    _capitalize as capitalize,
)
from speechgrpo.data.synthetic.lexicon import NAMES
from speechgrpo.data.synthetic.other_domain import english_question


@dataclass(frozen=True)
class OtherQA:
    """A passage, one question about it, and its answer (the question restated with the asked part)."""

    passage: str
    question: str
    answer: str
    focus: str  # subject, object, place, city, time, company, action, subject count, object count or frequency
    clauses: tuple[Clause, ...]  # the passage's sentences
    index: int  # the sentence that answers
    asked: Clause  # that sentence with the parts the question leaves out removed (the answer says it unfronted)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _asked(word: str, clause: Clause) -> str:
    """*What* + the yes/no question of ``clause`` (whose asked part was removed): *What did Anna read?*"""
    return f"{word} {_lower_first(english_question(clause))}"


def clause_questions(clause: Clause) -> dict[str, str]:
    """The wh-questions one clause answers, by focus (a clause may answer none)."""
    plain = replace(clause, fronted=False, negated=False)
    questions: dict[str, str] = {}
    kind = plain.subject.animate_kind
    asker = "who" if kind == "person" else "which animal" if kind == "animal" else "what"
    singular = replace(plain.subject, plural=False, det="the", count=0)  # *Who reads books?* for any subject
    questions["subject"] = capitalize(english_clause(replace(plain, subject=singular), subject_text=asker)) + "?"
    if plain.accusative is not None:
        word = "Who" if plain.accusative.animate_kind == "person" else "What"
        questions["object"] = _asked(word, replace(plain, accusative=None))
    if plain.place_np is not None:
        questions["place"] = _asked("Where", replace(plain, place=None, place_np=None))
    if plain.city:
        questions["city"] = _asked("Where", replace(plain, city=""))
    if plain.adverb is not None and plain.adverb.kind == "time":
        questions["time"] = _asked("When", replace(plain, adverb=None))
    if plain.company is not None:
        questions["company"] = _asked("Who", replace(plain, company=None))[:-1] + " with?"
    for role, focus in (("subject", "subject count"), ("accusative", "object count")):
        counted = getattr(plain, role)
        if counted is not None and counted.det == "num":  # *How many donkeys did Erik feed?*
            how_many = f"how many {english_np(replace(counted, det='bare', plural=True, count=0))}"
            if role == "subject":
                questions[focus] = capitalize(english_clause(plain, subject_text=how_many)) + "?"
            else:
                questions[focus] = _asked(capitalize(how_many), replace(plain, accusative=None))
    if plain.adverb is not None and plain.adverb.kind == "freq":  # *How often do these girls see Hugo?*
        questions["frequency"] = _asked("How often", replace(plain, adverb=None))
    if plain.verb is not None:  # *What did Anna do in the garden yesterday?*: the verb and its objects asked
        doing = replace(plain, verb=replace(plain.verb, en_base="do"), accusative=None, dative=None, company=None,
                        city="")
        questions["action"] = _asked("What", doing)
    return questions


#: the optional parts a question may leave out, and the foci whose questions keep each: the part asked, and
#: the company for *what ... do* too (*What did the cook do?* -> *The cook sang with the scientist.*: the
#: action question never says it, so leaving it out would give one question two answers)
OPTIONAL_PARTS = {"adverb": ("time", "frequency"), "place": ("place",), "company": ("company", "action")}
#: every combination of them, none left out first
_LEFT_OUT = [parts for n in range(len(OPTIONAL_PARTS) + 1) for parts in itertools.combinations(OPTIONAL_PARTS, n)]


def without(clause: Clause, parts: tuple[str, ...]) -> Clause:
    """The clause with the named optional parts left out (see :data:`OPTIONAL_PARTS`)."""
    unknown = set(parts) - set(OPTIONAL_PARTS)
    if unknown:
        raise ValueError(f"not an optional part: {sorted(unknown)} (the optional parts: {list(OPTIONAL_PARTS)})")
    if "adverb" in parts:
        clause = replace(clause, adverb=None)
    if "place" in parts:
        clause = replace(clause, place=None, place_np=None)
    if "company" in parts:
        clause = replace(clause, company=None)
    return clause


def _answerable(clause: Clause) -> set[str]:
    """Every question the clause answers, also with any of its optional parts left out (*What does Emily
    do?* is answered by *Emily orders the bread in front of this church.*)."""
    return {question for parts in _LEFT_OUT for question in clause_questions(without(clause, parts)).values()}


#: the foci of *how many* and *how often* questions, and the parts of the clause they count
_COUNTED = {"subject count": "subject", "object count": "accusative"}


def _event(clause: Clause, focus: str) -> str | None:
    """What a *how many* or *how often* ``focus`` question of ``clause`` is about: its event without adverb,
    place or company, the count or frequency unsaid, as a yes/no question (*Does Anna feed the cats?*);
    None if the clause has no such part. Another sentence of the same event answers the question in part
    (*Anna feeds the black cats in the garden.* for *How many cats does Anna feed?*, *Anna reads every
    day.* for *How often does Anna read?*)."""
    core = replace(without(clause, tuple(OPTIONAL_PARTS)), fronted=False, negated=False)
    if focus == "frequency":
        return english_question(core)
    counted = getattr(core, _COUNTED[focus])
    if counted is None or counted.noun is None:
        return None
    vague = NounPhrase(counted.noun, "the", plural=True)  # *the cats*: neither how many nor which
    vaguely = replace(core, subject=vague) if focus == "subject count" else replace(core, accusative=vague)
    return english_question(vaguely)


def _also_answered(clauses: list[Clause], index: int, focus: str, asked: Clause) -> bool:
    """Whether another clause answers the ``focus`` question of ``asked`` (clause ``index`` as asked) in part:
    only *how many* and *how often* questions can be (see :func:`_event`)."""
    if focus != "frequency" and focus not in _COUNTED:
        return False
    event = _event(asked, focus)
    return any(_event(clause, focus) == event for j, clause in enumerate(clauses) if j != index)


def _asked_of(clauses: list[Clause], answerable: list[set[str]], index: int, focus: str,
              parts: tuple[str, ...]) -> tuple[str, Clause] | None:
    """The ``focus`` question of clause ``index`` with ``parts`` (never the asked one) left out, and the
    clause it restates; None if another clause answers it too, or in part."""
    asked = without(clauses[index], parts)
    question = clause_questions(asked)[focus]
    if any(question in answers for j, answers in enumerate(answerable) if j != index):
        return None
    if _also_answered(clauses, index, focus, asked):
        return None
    return question, asked


def _options(clauses: list[Clause], answerable: list[set[str]]) -> list[tuple[str, int, str]]:
    """:func:`unique_questions`, with the clauses' answerable questions given."""
    options = []
    for i, clause in enumerate(clauses):
        for focus in clause_questions(clause):
            found = _asked_of(clauses, answerable, i, focus, ())
            if found is not None:
                options.append((found[0], i, focus))
    return options


def unique_questions(clauses: list[Clause]) -> list[tuple[str, int, str]]:
    """(question, index of the clause that answers it, focus) for every question, all of the clause's parts
    kept, that no other clause answers."""
    return _options(clauses, [_answerable(clause) for clause in clauses])


#: verbs of the demo's own facts (home, work, travel): their questions would be the demo's (*Where does
#: Anna live?*), so the other domain never uses them
DEMO_FACT_VERBS = frozenset({"live", "work", "travel"})


def _other_clause(rng: random.Random, cx: Complexity, subject_kind: str | None = None) -> Clause:
    while True:
        clause = sample_clause(rng, cx, allow_relative=False, subject_kind=subject_kind)
        if clause.verb is None or clause.verb.en_base not in DEMO_FACT_VERBS:
            return clause


#: in passages about one person, the share of the sentences after the first whose subject is the person's
#: animal (*Her dog sleeps.*, asked as *Where does Anna's dog sleep?*): the sentence that answers a question
#: about the person is then not always one that names her or says *she*
POSSESSED_SUBJECTS = 0.4


def _owned_by(clause: Clause, det: str) -> Clause:
    """The clause with *my*/*our* of its objects, company and place said as the person's (*her*/*his*)."""
    def own(np: NounPhrase | None) -> NounPhrase | None:
        return replace(np, det=det) if np is not None and np.det in ("my", "our") else np
    return replace(clause, accusative=own(clause.accusative), dative=own(clause.dative),
                   company=own(clause.company), place_np=own(clause.place_np))


def _about_one(rng: random.Random, cx: Complexity, count: int) -> list[Clause]:
    """``count`` clauses about one named person: the person, or after the first clause sometimes the
    person's animal (``owner`` set), is the subject; *my*/*our* become the person's. No other name of that
    gender occurs; a person noun of that gender may (*a queen*, *the son*: about 8% of these passages), so
    *she*/*he*/*her*/*his* are unambiguous by name only (the data the bases were built from; kept as is)."""
    name = rng.choice(_NAMES)
    det = "her" if NAMES[name] == "f" else "his"
    person = NounPhrase(None, "name", name=name)
    clauses: list[Clause] = []
    while len(clauses) < count:
        if clauses and rng.random() < POSSESSED_SUBJECTS:
            clause = _other_clause(rng, cx, subject_kind="animal")
            animal = clause.subject
            subject = NounPhrase(animal.noun, det, plural=animal.plural or animal.det == "num",
                                 adjectives=animal.adjectives, owner=name)
        else:
            clause, subject = _other_clause(rng, cx, subject_kind="person"), person
        clause = _owned_by(replace(clause, subject=subject), det)
        if all(np is None or not np.name or NAMES[np.name] != NAMES[name]
               for np in (clause.accusative, clause.dative, clause.company)):
            clauses.append(clause)
    return clauses


def _told(clause: Clause, pronoun: bool) -> str:
    """The clause as the passage says it: its subject, *she*/*he* for the named person, *her*/*his* for the
    person's (the questions and answers say the name: *Anna's dog*)."""
    if clause.subject.owner:
        return capitalize(english_clause(replace(clause, subject=replace(clause.subject, owner="")))) + "."
    if not pronoun:
        return Sentence(clause).english
    return capitalize(english_clause(clause, subject_text="she" if NAMES[clause.subject.name] == "f" else "he")) + "."


def sample_other_qa(rng: random.Random) -> OtherQA:
    """A passage of 2-3 sentences (unrelated, or about one person) and one question that exactly one of
    them answers (its focus drawn first, uniformly among those the passage offers; each optional part but
    the asked one left out of it with probability 1/2, redrawn until no other sentence answers it)."""
    cx = replace(complexity(1), tenses=TENSES, negation=0.0, relative=0.0, place=0.5, company=0.2)
    while True:
        count = rng.choice([2, 3])
        about_one = rng.random() < 0.5
        clauses = _about_one(rng, cx, count) if about_one else [_other_clause(rng, cx) for _ in range(count)]
        answers = [Sentence(c).english for c in clauses]
        answerable = [_answerable(clause) for clause in clauses]
        options = _options(clauses, answerable)
        if len(set(answers)) == len(answers) and options:
            focus = rng.choice(sorted({f for _, _, f in options}))  # a focus first: subjects are not the most asked
            _, index, _ = rng.choice([o for o in options if o[2] == focus])
            optional = [part for part, keepers in OPTIONAL_PARTS.items() if focus not in keepers]
            while (found := _asked_of(clauses, answerable, index, focus,
                                      tuple(part for part in optional if rng.random() < 0.5))) is None:
                pass  # terminates: with nothing left out, the question is one of the options
            question, asked = found
            passage = " ".join(_told(c, about_one and i > 0) for i, c in enumerate(clauses))
            answer = Sentence(replace(asked, fronted=False)).english
            return OtherQA(passage, question, answer, focus, tuple(clauses), index, asked)
