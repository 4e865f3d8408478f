"""The batch engine's compiled kernels against the references and against the pure-Python path."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import jiwer
import numpy as np
import pytest
import sacrebleu
from adversarial import adversarial_corpus, adversarial_strings
from hypothesis import given, settings
from hypothesis import strategies as st
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from speechgrpo.bench.generated_corpus import make_generated_corpus
from speechgrpo.metrics import BLEU, CHRF, TER, WER
from speechgrpo.metrics.jit import compiled_available
from speechgrpo.metrics.word_ids import chrf_word_ids, rouge_word_ids, tokenize_13a, word_ids

pytestmark = pytest.mark.skipif(not compiled_available(), reason="numba not installed (speechgrpo[fast])")

# every character class the 13a rules look at, plus every kind of Python whitespace
ALPHABET = st.sampled_from([*"ab5 0.,-&;'\"()<>/\\{}~[]^_`!?:@#$%*+=|\t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000",
                            "é", "ß", "北", "😀", "&amp;", "&quot;", "<skipped>", "-\n", "1,000", "3.5"])
TEXTS = st.lists(ALPHABET, max_size=25).map("".join)


def as_strings(words_result: object, n: int) -> list[list[int]]:
    ids, starts, ends = words_result.ids, words_result.starts, words_result.ends  # type: ignore[attr-defined]
    return [ids[starts[t]:ends[t]].tolist() for t in range(n)]


def dict_ids(token_lists: list[list[str]]) -> list[list[int]]:
    vocab: dict[str, int] = {}
    return [[vocab.setdefault(w, len(vocab)) for w in words] for words in token_lists]


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=8))
def test_tokenize_13a_equals_sacrebleu(texts: list[str]) -> None:
    tokenizer = Tokenizer13a()
    texts = [t.rstrip() for t in texts]
    got = as_strings(tokenize_13a(texts, tokenizer), len(texts))
    assert got == dict_ids([tokenizer(t).split() for t in texts])


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXTS.map(lambda t: t.replace("\n", " ")), min_size=1, max_size=8))
def test_word_ids_equal_str_split(texts: list[str]) -> None:
    assert as_strings(word_ids(texts), len(texts)) == dict_ids([t.split() for t in texts])


def test_word_ids_keep_every_word_as_the_table_grows() -> None:
    """20,000 word types (the hash table starts at 1,024 slots and doubles five times), each seen again
    after the growths: every repeat must find its first id."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}ä{'x' * (i % 7)}" for i in range(20_000)]
    texts = [" ".join(rng.choice(vocab, size=30).tolist()) for _ in range(3_000)] + [" ".join(vocab)]
    assert as_strings(word_ids(texts), len(texts)) == dict_ids([t.split() for t in texts])


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXTS.map(lambda t: t.replace("\n", " ")), min_size=1, max_size=8))
def test_chrf_word_ids_equal_sacrebleus_punctuation_split(texts: list[str]) -> None:
    split = sacrebleu.metrics.CHRF(word_order=2)._remove_punctuation
    words = chrf_word_ids(texts)
    assert words is not None and as_strings(words, len(texts)) == dict_ids([split(t) for t in texts])
    assert chrf_word_ids([*texts, "a\nb"]) is None  # a line break inside a text: the caller's Python path


ROUGE_ALPHABET = st.sampled_from([*"azAZ09/:`{@[ .,-\t\n\x00\x85\u3000", "é", "Straße", "İ", "Σ", "ΑΣ ",
                                  "\u212a", "北", "😀", "Ǆ", "ﬃ"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(ROUGE_ALPHABET, max_size=20).map("".join), min_size=1, max_size=8))
def test_rouge_word_ids_equal_rouge_scores_tokenizer(texts: list[str]) -> None:
    from rouge_score.tokenize import tokenize

    assert as_strings(rouge_word_ids(texts), len(texts)) == dict_ids([tokenize(t, None) for t in texts])


def test_rouge_word_ids_lower_case_the_batch_as_each_text() -> None:
    """Upper-case letters, a final sigma before a text's end, and characters that lower-case into ASCII
    letters ("İ" into two characters, shifting the texts after it; the Kelvin sign into "k")."""
    from rouge_score.tokenize import tokenize

    texts = ["ΟΔΟΣ", "a\nb", "İstanbul 2 ab", "ΣΑΣ x", "x9 y", "Σ", "ẞ straße İİ z", "\u212aelvin K"]
    assert as_strings(rouge_word_ids(texts), len(texts)) == dict_ids([tokenize(t, None) for t in texts])
    assert as_strings(rouge_word_ids(texts[3:]), len(texts) - 3) == dict_ids([tokenize(t, None) for t in texts[3:]])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 4), max_size=12), st.lists(st.integers(0, 4), max_size=12)),
                min_size=1, max_size=6))
def test_compiled_lcs_equals_rouge_scores_table(pairs: list[tuple[list[int], list[int]]]) -> None:
    from rouge_score.rouge_scorer import _lcs_table

    from speechgrpo.metrics.lcs_kernels import lcs_lengths

    texts = [seq for pair in pairs for seq in pair]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    ends = np.cumsum(lengths)
    ids = np.array([x for t in texts for x in t], dtype=np.int64)
    a, b = np.arange(0, len(texts), 2), np.arange(1, len(texts), 2)
    got = lcs_lengths(ids, ends - lengths, ends, a, b).tolist()
    assert got == [_lcs_table(x, y)[-1][-1] for x, y in pairs]


def test_compiled_lcs_at_the_word_boundaries_of_the_bit_parallel_form() -> None:
    """Both sides around 64 tokens (one machine word: bit-parallel up to it, the table beyond), small and large
    vocabularies, against rouge-score's table."""
    from rouge_score.rouge_scorer import _lcs_table

    from speechgrpo.metrics.lcs_kernels import lcs_lengths

    rng = random.Random(5)
    texts = [[rng.randrange(vocab) for _ in range(length)] for length in (0, 1, 2, 40, 63, 64, 65, 66, 100, 130)
             for vocab in (2, 5, 300) for _ in range(3)]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    ends = np.cumsum(lengths)
    ids = np.array([x for t in texts for x in t], dtype=np.int64)
    a = np.array([rng.randrange(len(texts)) for _ in range(1500)])
    b = np.array([rng.randrange(len(texts)) for _ in range(1500)])
    got = lcs_lengths(ids, ends - lengths, ends, a, b).tolist()
    assert got == [_lcs_table(texts[i], texts[j])[-1][-1] for i, j in zip(a.tolist(), b.tolist(), strict=True)]


def test_tokenize_13a_finds_the_few_texts_with_entities_in_a_large_batch() -> None:
    texts = [t.replace("&", "+").replace("<", "(") for t in make_generated_corpus(256, 8, seed=22).hypotheses]
    for at, odd in ((5, "AT&T &amp; co &lt;b&gt;"), (700, "a <skipped> b &quot;c&quot;"), (len(texts) - 1, "x &")):
        texts[at] = odd + " " + texts[at]
    tokenizer = Tokenizer13a()
    assert as_strings(tokenize_13a(texts, tokenizer), len(texts)) == dict_ids([tokenizer(t).split() for t in texts])


def test_tokenize_13a_on_a_corpus_with_edge_cases() -> None:
    texts = adversarial_corpus(256, 8, seed=21, fraction=0.2).hypotheses + adversarial_strings()
    texts += ["a.,5", "..5", "5..", "x.,.,y", "1-2-3", "a-\n", "\ud800 lone surrogate", "tab\tin\x1cside"]
    texts = [t.rstrip() for t in texts]
    tokenizer = Tokenizer13a()
    assert as_strings(tokenize_13a(texts, tokenizer), len(texts)) == dict_ids([tokenizer(t).split() for t in texts])


@pytest.mark.parametrize("options", [
    {}, {"lowercase": True}, {"tokenize": "intl"}, {"tokenize": "none"}, {"tokenize": "char"}, {"tokenize": "zh"},
    {"smooth_method": "floor"}, {"smooth_method": "add-k", "smooth_value": 2}, {"smooth_method": "none"},
    {"effective_order": False}, {"max_ngram_order": 2}, {"max_ngram_order": 6},
])
def test_compiled_bleu_equals_sacrebleu_and_the_python_path(options: dict[str, object],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    groups = adversarial_corpus(128, 8, seed=5, fraction=0.1)
    hyps = groups.hypotheses
    rng = random.Random(0)
    refs = [(r,) if rng.random() < 0.5 else (r, rng.choice(groups.references), rng.choice(hyps))
            for r in groups.pair_references]
    metric = BLEU(**options)  # type: ignore[arg-type]
    compiled = metric.score(hyps, refs)
    reference = sacrebleu.metrics.BLEU(**{"effective_order": True, **options})
    expected = np.array([reference.sentence_score(h, list(r)).score for h, r in zip(hyps, refs, strict=True)])
    np.testing.assert_array_equal(compiled, expected)
    monkeypatch.setenv("SPEECHGRPO_NO_NUMBA", "1")
    assert not compiled_available()
    np.testing.assert_array_equal(metric.score(hyps, refs), compiled)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(3)]  # ragged: None-padded
    assert metric.corpus_score(hyps, refs=refs) == reference.corpus_score(hyps, streams).score


def test_large_vocabulary_uses_exact_renumbering() -> None:
    rng = random.Random(1)
    words = [f"w{i}" for i in range(40_000)]  # > 2**15 distinct words: keys no longer fit shifted
    refs = [" ".join(rng.choices(words, k=30)) for _ in range(1500)]
    hyps = [" ".join(r.split()[: rng.randint(1, 30)] + rng.choices(words, k=3)) for r in refs]
    bleu = sacrebleu.metrics.BLEU(effective_order=True)
    np.testing.assert_array_equal(BLEU().score(hyps, refs),
                                  [bleu.sentence_score(h, [r]).score for h, r in zip(hyps, refs, strict=True)])


def test_chrf_with_more_characters_than_shifted_keys_hold() -> None:
    rng = random.Random(2)
    alphabet = [chr(0x4E00 + i) for i in range(3000)]  # > 2**10 distinct characters: 6-grams need renumbering
    refs = ["".join(rng.choices(alphabet, k=40)) + " 词 語," for _ in range(300)]
    hyps = [r[: rng.randint(1, 40)] + "".join(rng.choices(alphabet, k=5)) for r in refs]
    for word_order in (0, 2):
        chrf = sacrebleu.metrics.CHRF(word_order=word_order)
        np.testing.assert_array_equal(CHRF(word_order=word_order).score(hyps, refs),
                                      [chrf.sentence_score(h, [r]).score for h, r in zip(hyps, refs, strict=True)])


def test_megabyte_strings_through_the_compiled_path() -> None:
    long = " ".join(f"w{i % 5000}" for i in range(200_000))
    hyps, refs = [long, long[: len(long) // 2], "w1 w2"], [long, long, long]
    bleu = sacrebleu.metrics.BLEU(effective_order=True)
    np.testing.assert_array_equal(BLEU().score(hyps, refs),
                                  [bleu.sentence_score(h, [r]).score for h, r in zip(hyps, refs, strict=True)])


@pytest.mark.parametrize("options", [
    {}, {"word_order": 2}, {"eps_smoothing": True}, {"word_order": 2, "eps_smoothing": True}, {"lowercase": True},
    {"whitespace": True}, {"char_order": 3, "beta": 1}, {"char_order": 8, "word_order": 3, "beta": 3},
])
def test_compiled_chrf_equals_sacrebleu_and_the_python_path(options: dict[str, object],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    groups = adversarial_corpus(96, 8, seed=6, fraction=0.15)
    hyps = [*groups.hypotheses, "ab", "a", "", " ", "北京欢迎你", "x" * 3000]
    rng = random.Random(2)
    refs = [(r,) if rng.random() < 0.5 else (r, rng.choice(groups.references), rng.choice(hyps))
            for r in groups.pair_references] + [("abc",), ("a",), ("x",), ("",), ("北京",), ("x" * 2999 + "y",)]
    metric = CHRF(**options)  # type: ignore[arg-type]
    compiled = metric.score(hyps, refs)
    reference = sacrebleu.metrics.CHRF(**options)
    expected = np.array([reference.sentence_score(h, list(r)).score for h, r in zip(hyps, refs, strict=True)])
    np.testing.assert_array_equal(compiled, expected)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(3)]
    assert metric.corpus_score(hyps, refs=refs) == reference.corpus_score(hyps, streams).score
    monkeypatch.setenv("SPEECHGRPO_NO_NUMBA", "1")
    np.testing.assert_array_equal(metric.score(hyps, refs), compiled)


def test_batches_larger_than_a_chunk_give_the_same_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = make_generated_corpus(64, 8, seed=8)
    whole = {m.name: m.score(groups.hypotheses, groups.pair_references) for m in (BLEU(), CHRF())}
    monkeypatch.setattr(BLEU, "chunk_size", 37)
    monkeypatch.setattr(CHRF, "chunk_size", 37)
    for metric in (BLEU(), CHRF()):
        np.testing.assert_array_equal(metric.score(groups.hypotheses, groups.pair_references), whole[metric.name])


def _repetitive_ter_cases(seed: int) -> list[tuple[str, list[str]]]:
    """Few distinct words (many equal-scoring shifts), permuted references, references over 100 words (the
    1,000-candidate limit), empty sides, length ratios far from 1 and several references."""
    rng = random.Random(seed)

    def sentence(vocab: list[str], lo: int, hi: int) -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(lo, hi)))

    cases = []
    for k in range(240):  # sacrebleu takes up to seconds a pair here: permuted references are kept short
        vocab = list("abcde")[: rng.randint(1, 5)] if k % 2 else [f"w{i}" for i in range(30)]
        if k % 3:
            ref = sentence(vocab, 0, 40 if k % 60 != 1 else 120)
            hyp = sentence(vocab, 0, 40)
        else:
            ref = sentence(vocab, 0, 16)
            hyp = " ".join(rng.sample(ref.split(), len(ref.split())))
        cases.append((hyp, [ref] if k % 5 else [ref, sentence(vocab, 0, 20)]))
    # a shift to just after the moved words reads past the end of the hypothesis in sacrebleu's slices
    return [*cases, ("b c c a b a b b b a b d b", ["d b a b c b b c a b a b b"]), ("", ["a b"]), ("a b", [""]),
            ("", [""]), ("x " * 200, ["x " * 3]), ("x y " * 3, ["y x " * 60]), ("A B, c.", ["a b , c ."])]


@pytest.mark.parametrize("options", [{}, {"case_sensitive": True}, {"normalized": True}, {"no_punct": True}])
def test_compiled_ter_equals_sacrebleus_shift_search(options: dict[str, bool], monkeypatch: pytest.MonkeyPatch) -> None:
    cases = _repetitive_ter_cases(3)
    hyps, refs = [h for h, _ in cases], [r for _, r in cases]
    compiled = TER(**options).score(hyps, refs)
    reference = sacrebleu.metrics.TER(**options)
    np.testing.assert_array_equal(compiled, [reference.sentence_score(h, r).score for h, r in cases])
    # the same pairs inside a large batch (other word ids, other neighbours) give the same scores
    groups = make_generated_corpus(64, 8, seed=9)
    mixed = TER(**options).score([*groups.hypotheses, *hyps], [*groups.pair_references, *refs])
    np.testing.assert_array_equal(mixed[len(groups.hypotheses):], compiled)
    monkeypatch.setenv("SPEECHGRPO_NO_NUMBA", "1")
    np.testing.assert_array_equal(TER(**options).score(hyps[-60:], refs[-60:]), compiled[-60:])


def test_compiled_wer_equals_jiwer_and_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = make_generated_corpus(96, 8, seed=10)  # plain spaces only: the compiled word-id path
    rng = random.Random(3)
    hyps = [*groups.hypotheses, "", "a", "a a a a", "b", "  a   b  "]
    refs = [(r,) if rng.random() < 0.5 else (r, rng.choice(groups.references), rng.choice(hyps))
            for r in groups.pair_references] + [("a",), ("",), ("a",), ("a b", "b", "c d e"), ("a b",)]
    compiled = WER().score(hyps, refs)
    # equal rates (1/2 and 2/4): the first reference's statistics, which corpus WER sums
    assert WER().statistics([("a b", ("a c", "a b x y")), ("a b", ("a b x y", "a c"))]).tolist() == [[1, 2], [2, 4]]
    corpus = WER().corpus_score(hyps, refs=refs)
    single = [i for i, r in enumerate(refs) if len(r) == 1 and r[0].strip()]
    np.testing.assert_array_equal(compiled[single], [jiwer.wer(refs[i][0], hyps[i]) for i in single])
    monkeypatch.setenv("SPEECHGRPO_NO_NUMBA", "1")
    np.testing.assert_array_equal(WER().score(hyps, refs), compiled)
    assert WER().corpus_score(hyps, refs=refs) == corpus
    monkeypatch.delenv("SPEECHGRPO_NO_NUMBA")
    tabbed = [*hyps, "a\tb c"]  # a tab is part of a jiwer word: the batch takes the Python path
    assert WER().score(tabbed, [*refs, ("a\tb c",)])[-1] == 0.0
    assert WER().score(tabbed, [*refs, ("a b c",)])[-1] == jiwer.wer("a b c", "a\tb c")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=140).map(tuple), min_size=2, max_size=6), st.data())
def test_word_edit_kernel_equals_rapidfuzz(sequences: list[tuple[int, ...]], data: st.DataObject) -> None:
    """Both of the kernel's paths (the bit-parallel one where the shorter side has <= 64 words, the dynamic
    programme beyond) against rapidfuzz's Levenshtein distance on the same id sequences."""
    from rapidfuzz.distance import Levenshtein

    from speechgrpo.metrics.levenshtein_kernels import best_reference_edits

    sequences = [*sequences, tuple(range(64)), tuple(range(1, 65)), tuple(range(65)),  # at and over 64
                 tuple(i % 7 for i in range(100)), tuple(3 * i % 7 for i in range(90))]  # both over 64
    lengths = np.array([len(s) for s in sequences], np.int64)
    ends = np.cumsum(lengths)
    ids = np.array([w for s in sequences for w in s], np.int64)
    index = st.integers(0, len(sequences) - 1)
    pairs = [*data.draw(st.lists(st.tuples(index, index), min_size=1, max_size=20)), (-5, -4), (-4, -3), (-3, 0),
             (-2, -1)]
    hyp = np.array([h % len(sequences) for h, _ in pairs], np.int64)
    ref = np.array([r % len(sequences) for _, r in pairs], np.int64)
    got = best_reference_edits(ids, ends - lengths, ends, hyp, np.arange(len(pairs)), np.arange(len(pairs) + 1), ref)
    expected = [Levenshtein.distance(sequences[h], sequences[r]) for h, r in zip(hyp, ref, strict=True)]
    assert got[:, 0].tolist() == expected
    assert got[:, 1].tolist() == lengths[ref].tolist()


def _imported_metric_modules(path: Path) -> set[str]:
    """The speechgrpo.metrics modules ``path`` imports anywhere (module level or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("speechgrpo.metrics."):
            names.add(node.module.rsplit(".", 1)[1])
    return names


def test_metric_modules_import_without_cycles_and_share_one_formula() -> None:
    import speechgrpo.metrics as metrics

    folder = Path(metrics.__file__).parent
    graph = {p.stem: _imported_metric_modules(p) for p in folder.glob("*.py")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m, set())] == []
    for formula in ("def bleu_from_statistics(", "def chrf_from_statistics(", "SMOOTH_DEFAULTS: "):
        homes = [p.name for p in folder.glob("*.py") if formula in p.read_text()]
        assert homes == ["_formulas.py"], (formula, homes)


def test_rouge_types_together_share_one_ngram_pass_and_equal_rouge_score() -> None:
    """ROUGE-1/2/3 and L in one metric: every order comes from one compiled pass up to the highest (the list's
    order need not be ascending), each equal to rouge-score's own numbers."""
    from rouge_score import rouge_scorer

    from speechgrpo.metrics import ROUGE

    groups = adversarial_corpus(64, 8, seed=3, fraction=0.1)
    rng = random.Random(1)
    refs = [(r,) if rng.random() < 0.7 else (r, rng.choice(groups.references)) for r in groups.pair_references]
    types = ["rouge3", "rouge1", "rougeL", "rouge2"]
    got = ROUGE(types).score_components(groups.hypotheses, refs)
    scorer = rouge_scorer.RougeScorer(types)
    expected = [scorer.score_multi(list(r), h) for h, r in zip(groups.hypotheses, refs, strict=True)]
    for rouge_type in types:
        for measure in ("precision", "recall", "fmeasure"):
            np.testing.assert_array_equal(got[f"{rouge_type}_{measure}"],
                                          [getattr(e[rouge_type], measure) for e in expected],
                                          err_msg=f"{rouge_type} {measure}")
