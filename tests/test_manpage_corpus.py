"""The real-text benchmark corpus: sentences read from manual pages with groff, MT-like hypotheses."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from speechgrpo.bench import manpage_corpus
from speechgrpo.bench.corpus import corpus_pairs
from speechgrpo.bench.manpage_corpus import CorpusUnavailable, make_manpage_corpus, manpage_sentences, prose_sentences

PAGE = r""".TH BEISPIEL 1 "2024" "Test" "Benutzerbefehle"
.SH BESCHREIBUNG
Dieses Programm liest die angegebenen Dateien und schreibt ihren Inhalt in der gleichen Reihenfolge auf die
Standardausgabe, ohne die Daten dabei zu verändern.
Die Option
.B \-n
nummeriert alle Zeilen.
Wenn keine Datei angegeben ist oder die Datei ein einzelner Bindestrich ist, wird von der Standardeingabe
gelesen und das Ergebnis wie gewohnt geschrieben.
Kurzer Satz.
"""


def write_page(folder: Path, name: str, text: str) -> None:
    (folder / "man1").mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "man1" / f"{name}.1.gz", "wt", encoding="utf-8") as handle:
        handle.write(text)


def test_prose_sentences_keep_15_to_30_word_prose_only() -> None:
    text = ("Kurz. Dieser Satz hat genau so viele Wörter, dass er als ein echter Satz aus einer Handbuchseite "
            "gelten kann. Mit --option und /usr/bin/pfad wird ein Satz dieser Länge nicht als Prosa gezählt, "
            "auch wenn er lang genug wäre.")
    assert prose_sentences(text) == ["Dieser Satz hat genau so viele Wörter, dass er als ein echter Satz aus einer "
                                     "Handbuchseite gelten kann."]


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")
def test_sentences_are_read_with_groff_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECHGRPO_CACHE", str(tmp_path / "cache"))
    pages = tmp_path / "man"
    write_page(pages, "beispiel", PAGE)
    sentences = manpage_sentences([str(pages)])
    assert sentences == [
        "Dieses Programm liest die angegebenen Dateien und schreibt ihren Inhalt in der gleichen Reihenfolge auf "
        "die Standardausgabe, ohne die Daten dabei zu verändern.",
        "Wenn keine Datei angegeben ist oder die Datei ein einzelner Bindestrich ist, wird von der Standardeingabe "
        "gelesen und das Ergebnis wie gewohnt geschrieben."]
    assert len(list((tmp_path / "cache" / "corpus").iterdir())) == 1
    monkeypatch.setattr(manpage_corpus, "render", lambda page: pytest.fail("read again instead of the cache"))
    assert manpage_sentences([str(pages)]) == sentences


def test_groups_are_deterministic_distinct_and_described() -> None:
    pool = [" ".join(f"wort{(i * 7 + k) % 500}" for k in range(20)) + "." for i in range(300)]
    a = make_manpage_corpus(50, 16, seed=3, sentences=pool)
    assert a == make_manpage_corpus(50, 16, seed=3, sentences=pool)
    assert a.hypotheses != make_manpage_corpus(50, 16, seed=4, sentences=pool).hypotheses
    stats = a.statistics()
    assert stats["pairs"] == 800 and stats["references"] == 50 and stats["group_size"] == 16
    assert stats["distinct_hypotheses"] > 0.9 and 15 <= stats["words_per_hypothesis"] <= 25
    assert set(a.references) <= set(pool)
    assert "50 references x 16 hypotheses = 800 pairs" in a.describe()


def test_a_missing_corpus_fails_when_asked_for_and_auto_falls_back(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setattr(manpage_corpus, "MAN_DIRS", (str(tmp_path / "none"),))
    monkeypatch.setattr(manpage_corpus.manpage_sentences, "__defaults__", ((str(tmp_path / "none"),),))
    with pytest.raises(CorpusUnavailable, match="apt-get install manpages-de"):
        manpage_sentences()
    with pytest.raises(ValueError, match="--corpus manpages: no German manual pages"):
        corpus_pairs("manpages", 4, 2, 0, "news")
    hyps, refs, note = corpus_pairs("auto", 4, 2, 0, "news")
    assert len(hyps) == len(refs) == 8
    assert note.startswith("generated: ") and "real-text corpus is unavailable here" in note


def test_styles_give_their_lengths_from_the_same_sentences() -> None:
    pool = [" ".join(f"wort{(i * 7 + k) % 500}" for k in range(20)) + "." for i in range(300)]
    short = make_manpage_corpus(200, 8, seed=1, sentences=pool, style="short")
    lengths = [len(r.split()) for r in short.references]
    assert min(lengths) == 1 and max(lengths) == 6
    words = {w.rstrip(".") for s in pool for w in s.split()}
    assert all(set(r.rstrip(".").lower().split()) <= words for r in short.references)
    wrong = sum(not set(h.rstrip(".").lower().split()) & set(short.references[i // 8].rstrip(".").lower().split())
                for i, h in enumerate(short.hypotheses))
    assert 0.05 < wrong / len(short.hypotheses) < 0.3  # the wrong answers
    long = make_manpage_corpus(20, 2, seed=1, sentences=pool, style="long")
    assert all(60 <= len(r.split()) <= 100 for r in long.references)
    assert "1-6-word answers" in short.describe() and "3-5 sentences" in long.describe()
    with pytest.raises(ValueError, match="unknown style"):
        make_manpage_corpus(2, 2, sentences=pool, style="tweets")
