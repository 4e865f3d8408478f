"""Benchmark corpora: GRPO-shaped groups of references and hypotheses, with the statistics a speed figure
depends on, and the choice between them that ``bench speed`` and ``benchmarks/`` offer.

- ``manpages``: real German text (:mod:`speechgrpo.bench.manpage_corpus`), the default;
- ``generated``: news-like generated sentences (:mod:`speechgrpo.bench.generated_corpus`), which overstate
  the speedups several times (small vocabulary, repeated phrases);
- a groups file (:mod:`speechgrpo.data.groups_file`), e.g. rollouts a trainer logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from speechgrpo.data.groups_file import Group, flatten

#: text shapes both corpora produce: one sentence, passages of 3-5 sentences, 1-6-word answers
STYLES = ("news", "long", "short")
CORPORA = ("auto", "manpages", "generated")


@dataclass(frozen=True)
class Corpus:
    """``references[g]`` is shared by ``hypotheses[g*group_size:(g+1)*group_size]``; ``source`` says where
    the text comes from."""

    references: list[str]
    hypotheses: list[str]
    group_size: int
    source: str = ""

    @property
    def pair_references(self) -> list[str]:
        """The reference of every hypothesis (each repeated ``group_size`` times)."""
        return [r for r in self.references for _ in range(self.group_size)]

    def statistics(self) -> dict[str, float]:
        """What a speed figure depends on: sizes, lengths, vocabulary, distinctness within groups."""
        words = [len(h.split()) for h in self.hypotheses]
        types = {w for text in (*self.references, *self.hypotheses) for w in text.split()}
        g = self.group_size
        distinct = sum(len(set(self.hypotheses[i:i + g])) for i in range(0, len(self.hypotheses), g))
        return {"references": len(self.references), "pairs": len(self.hypotheses), "group_size": g,
                "words_per_hypothesis": sum(words) / max(1, len(words)),
                "words_per_reference": sum(len(r.split()) for r in self.references) / max(1, len(self.references)),
                "word_types": len(types), "distinct_hypotheses": distinct / max(1, len(self.hypotheses))}

    def describe(self) -> str:
        s = self.statistics()
        return (f"{self.source}: {s['references']:,} references x {s['group_size']} hypotheses = {s['pairs']:,} "
                f"pairs, {s['words_per_reference']:.1f} words per reference, {s['words_per_hypothesis']:.1f} per "
                f"hypothesis, {s['word_types']:,} word types, {s['distinct_hypotheses']:.0%} of hypotheses "
                "distinct within their group")


def corpus_pairs(corpus: str, groups: int, group_size: int, seed: int, style: str
                 ) -> tuple[list[str], list[str], str]:
    """``(hypotheses, references, description)`` of ``--corpus`` in ``--style``: ``manpages`` (real text;
    fails where the pages are missing), ``generated``, or ``auto`` (real text where this machine has it,
    else generated, said in the description)."""
    from speechgrpo.bench.generated_corpus import make_generated_corpus
    from speechgrpo.bench.manpage_corpus import CorpusUnavailable, make_manpage_corpus

    if corpus not in CORPORA:
        raise ValueError(f"--corpus must be one of {', '.join(CORPORA)}, got {corpus!r}")
    if groups < 1 or group_size < 1:
        raise ValueError("--groups and --group-size must be at least 1")
    fallback = ""
    if corpus != "generated":
        try:
            chosen = make_manpage_corpus(groups, group_size, seed=seed, style=style)
        except CorpusUnavailable as err:
            if corpus == "manpages":
                raise ValueError(f"--corpus manpages: {err}") from None
            fallback = (f" (the real-text corpus is unavailable here: {err}; generated text overstates the "
                        "speedups several times)")
        else:
            return chosen.hypotheses, chosen.pair_references, chosen.describe()
    chosen = make_generated_corpus(groups, group_size, seed=seed, style=style)
    return chosen.hypotheses, chosen.pair_references, chosen.describe() + fallback


def file_pairs(groups: Sequence[Group], source: str) -> tuple[list[str], list[str], str]:
    """Every completion of a groups file with its group's first reference (the references take one)."""
    batch = flatten(groups)
    multi = sum(len(g.references) > 1 for g in groups)
    note = f"{source}: {len(groups)} groups, every completion (off-policy ones included)"
    if multi:
        note += f"; {multi} groups have several references, the first one is used on both sides"
    return batch.completions, [refs[0] for refs in batch.references], note
