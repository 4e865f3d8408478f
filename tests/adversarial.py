"""Edge-case strings every metric must handle like its reference implementation, alone and mixed into
generated corpora (for the exactness tests and ``benchmarks/exactness.py``)."""

from __future__ import annotations

from speechgrpo.bench.corpus import Corpus
from speechgrpo.bench.generated_corpus import make_generated_corpus

ADVERSARIAL = ["", " ", "\t", "\n", "...", "!!!", "&amp;&lt;&gt;&quot;", "3.5-4", "1,000,000", "-.-,-",
                "a\tb  c", "  leading and trailing  ", "UPPER lower MiXeD", "don't won't can't", "(hi)",
                "e.g. U.S.A.", "naïve café Zürich Straße", "北京欢迎你", "東京 と 大阪", "😀 emoji 🚀",
                "ß ẞ ﬁ ǅ", "$10,000", "x" * 300, "word " * 120, "-\nline\nbreak<skipped>", "a-b-c", "1-2-3"]


def adversarial_strings() -> list[str]:
    return list(ADVERSARIAL)


def adversarial_corpus(n_references: int, group_size: int, seed: int, fraction: float) -> Corpus:
    """A generated corpus with about ``fraction`` of its hypotheses replaced by edge-case strings."""
    return make_generated_corpus(n_references, group_size, seed=seed, replacements=ADVERSARIAL,
                                 replaced_fraction=fraction)
