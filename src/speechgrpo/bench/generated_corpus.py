"""Generated text for benchmarks and tests: GRPO-shaped groups of references and hypotheses.

References are news-like English or German sentences (entities, numbers such as ``3.5``, ``10,000``
and ``1990-1995``, quotes, parentheses, abbreviations, HTML entities, accented and CJK words); each
group holds ``group_size`` hypotheses made from its reference by the perturbations an MT/ASR system
or a sampled policy produces (dropped, replaced, swapped and inserted words, truncation, case and
punctuation changes), the first hypothesis being lightly perturbed. Everything is deterministic given
the seed. Its small vocabulary and repeated phrases overstate speedups several times: the default
benchmark corpus is real text (:mod:`speechgrpo.bench.manpage_corpus`); this one is for machines
without it and for shapes real text lacks.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from speechgrpo.bench.corpus import STYLES, Corpus

_SUBJECTS = ["the government", "the committee", "a spokesman", "the company", "researchers", "the mayor",
             "Angela Müller", "the central bank", "President Obama", "the U.S. army", "police", "the court",
             "der Minister", "die Regierung", "the team from São Paulo", "the Zürich office", "Dr. Smith",
             "the EU", "the UN's agency", "voters in New York"]
_VERBS = ["said", "announced", "reported", "denied", "confirmed", "warned", "expects", "has approved",
          "will review", "rejected", "is considering", "sagte", "hat bestätigt"]
_OBJECTS = ["a new plan", "the budget", "higher taxes", "the agreement", "an investigation", "the results",
            "the proposal", "new rules", "the decision", "a price increase", "the merger", "the report",
            "einen neuen Plan", "das Ergebnis", "the naïve approach", "the café's licence"]
_TAILS = ["on Monday", "last week", "in 2014", "by 3.5 percent", "for $10,000", "in the 1990-1995 period",
          "(according to officials)", "after a long debate", "at 10:30 a.m.", "despite protests",
          "with 52,3 % support", "on 12.03.2019", "in Düsseldorf", "in 北京", "at the Café Noir",
          "- not for the first time", "&amp; its partners", "&quot;as expected&quot;", "e.g. in Texas",
          "worth €2.5bn", "... or so it seems", "with 1,000-2,000 people", "up 7-8%", "— again"]
_FILLER = ["however", "also", "still", "reportedly", "quickly", "finally", "very", "not", "now", "auch",
           "noch", "sehr", "the", "a", "and", "of", "in", "to", "it", "that"]
_ENDINGS = [".", ".", ".", "!", "?", "", " .", ":", ";"]


def make_sentence(rng: random.Random) -> str:
    """One news-like sentence of roughly 8-30 words."""
    parts = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)]
    for _ in range(rng.randint(1, 3)):
        parts.append(rng.choice(_TAILS))
    if rng.random() < 0.5:
        parts.insert(rng.randint(1, len(parts)), rng.choice(_FILLER))
    if rng.random() < 0.3:
        parts.append(", " + rng.choice(_SUBJECTS) + " " + rng.choice(_VERBS))
    sentence = " ".join(parts).replace(" , ", ", ")
    sentence = sentence[0].upper() + sentence[1:] + rng.choice(_ENDINGS)
    if rng.random() < 0.15:
        sentence = f'"{sentence}"'
    return sentence


def perturb(reference: str, rng: random.Random, strength: float) -> str:
    """A hypothesis made from ``reference`` with edit probability ``strength`` (0-1)."""
    words = reference.split()
    out: list[str] = []
    for word in words:
        u = rng.random()
        if u < strength / 3:
            continue
        if u < 2 * strength / 3:
            out.append(rng.choice(_FILLER + _OBJECTS[:4]))
            continue
        if rng.random() < strength / 6:
            word = word.lower() if rng.random() < 0.5 else word.upper()
        if rng.random() < strength / 6:
            word = word.rstrip(".,!?;:") + rng.choice(["", ",", ".", " .", "!"])
        out.append(word)
    for _ in range(int(strength * len(out) / 3)):
        if len(out) > 1:
            i = rng.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
    if out and rng.random() < strength / 2:
        out = out[: rng.randint(1, len(out))]
    if rng.random() < strength / 2:
        for _ in range(rng.randint(1, 4)):
            out.insert(rng.randint(0, len(out)), rng.choice(_FILLER))
    return " ".join(out)


_ANSWER_HEADS = ["twelve", "in 1990", "the harbour", "because of the rain", "Paris", "his brother John",
                 "about 3.5 million", "on Monday morning", "a red car", "yes", "no", "the U.S. army", "Dr. Smith"]


def make_short_answer(rng: random.Random) -> str:
    """A spoken-QA style short answer of 1-6 words."""
    answer = rng.choice(_ANSWER_HEADS)
    if rng.random() < 0.4:
        answer += " " + rng.choice(_TAILS[:6])
    return answer[0].upper() + answer[1:] + rng.choice(["", "", "."])


def make_generated_corpus(n_references: int = 1024, group_size: int = 8, seed: int = 1234, style: str = "news",
                          replacements: Sequence[str] = (), replaced_fraction: float = 0.0) -> Corpus:
    """``n_references`` groups of ``group_size`` hypotheses.

    ``style``: ``news`` (one 8-30-word sentence), ``long`` (3-5 sentences, 40-120 words) or ``short``
    (1-6-word answers, as in spoken question answering). ``replaced_fraction`` of the hypotheses, at
    random, are one of ``replacements`` instead (the exactness tests mix in edge-case strings).
    """
    if style not in STYLES:
        raise ValueError(f"unknown style={style!r}; use one of {STYLES}")
    if replaced_fraction > 0 and not replacements:
        raise ValueError("replaced_fraction > 0 needs replacements")
    rng = random.Random(seed)
    if style == "long":
        references = [" ".join(make_sentence(rng) for _ in range(rng.randint(3, 5))) for _ in range(n_references)]
    elif style == "short":
        references = [make_short_answer(rng) for _ in range(n_references)]
    else:
        references = [make_sentence(rng) for _ in range(n_references)]
    hypotheses = []
    for ref in references:
        for k in range(group_size):
            if rng.random() < replaced_fraction:
                hypotheses.append(rng.choice(replacements))
            else:
                hypotheses.append(perturb(ref, rng, 0.05 if k == 0 else rng.uniform(0.05, 0.6)))
    replaced = f", {replaced_fraction:.0%} replaced" if replaced_fraction else ""
    return Corpus(references, hypotheses, group_size, f"generated: make_generated_corpus({n_references}, "
                  f"{group_size}, seed={seed}, style={style!r}){replaced}")
