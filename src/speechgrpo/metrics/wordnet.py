"""Finding, and if needed building, the WordNet data NLTK's METEOR needs, without a download.

NLTK's downloader needs network access. Debian ships the same WordNet 3.0 database in the
packages ``wordnet-base`` and ``wordnet-sense-index`` (``/usr/share/wordnet``); NLTK can read it once
the files are copied (NLTK rejects symlinks) into an ``nltk_data/corpora/wordnet`` folder together
with a ``lexnames`` file, which Debian ships only as a man page and which is therefore written here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEBIAN_WORDNET = Path("/usr/share/wordnet")
_WORDNET_FILES = ("adj.exc", "adv.exc", "noun.exc", "verb.exc", "cntlist", "cntlist.rev", "sentidx.vrb",
                  "sents.vrb", "frames.vrb", "data.adj", "data.adv", "data.noun", "data.verb",
                  "index.adj", "index.adv", "index.noun", "index.verb", "index.sense")
# WordNet 3.0 lexicographer files, numbered 00..44 (lexnames(5WN)).
_LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon",
    "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape",
    "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

INSTALL_HINT = (
    "NLTK's WordNet data was not found. Offline, install Debian's copy and convert it:\n"
    "    apt-get install --no-install-recommends wordnet-base wordnet-sense-index\n"
    "    speechgrpo setup-wordnet\n"
    "With network access, `python -m nltk.downloader wordnet` works too."
)


def default_data_dir() -> Path:
    """Where speechgrpo keeps NLTK data: ``$SPEECHGRPO_NLTK_DATA`` or ``~/.cache/speechgrpo/nltk_data``."""
    env = os.environ.get("SPEECHGRPO_NLTK_DATA")
    return Path(env) if env else Path.home() / ".cache" / "speechgrpo" / "nltk_data"


def install_wordnet(target: Path | None = None, source: Path = DEBIAN_WORDNET) -> Path:
    """Copy a WordNet 3.0 database (Debian layout) into ``target`` as NLTK expects it; return ``target``."""
    target = target or default_data_dir()
    missing = [name for name in _WORDNET_FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"WordNet files missing under {source}: {', '.join(missing)}\n{INSTALL_HINT}")
    corpus = target / "corpora" / "wordnet"
    corpus.mkdir(parents=True, exist_ok=True)
    for name in _WORDNET_FILES:
        shutil.copyfile(source / name, corpus / name)
    lines = [f"{i:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}" for i, name in enumerate(_LEXNAMES)]
    (corpus / "lexnames").write_text("\n".join(lines) + "\n")
    return target


def ensure_wordnet() -> None:
    """Make NLTK's ``wordnet`` loadable: use what NLTK finds, else speechgrpo's data dir, else build it
    there from Debian's copy; raise ``LookupError`` with install instructions when none exists."""
    import nltk

    def found() -> bool:
        try:
            nltk.data.find("corpora/wordnet")
        except LookupError:
            try:
                nltk.data.find("corpora/wordnet.zip")
            except LookupError:
                return False
        return True

    if found():
        return
    data_dir = default_data_dir()
    if not (data_dir / "corpora" / "wordnet" / "lexnames").is_file() and DEBIAN_WORDNET.is_dir():
        try:
            install_wordnet(data_dir, source=DEBIAN_WORDNET)
        except FileNotFoundError as err:  # an incomplete copy, e.g. wordnet-base without wordnet-sense-index
            raise LookupError(str(err)) from err
    if str(data_dir) not in nltk.data.path:
        nltk.data.path.append(str(data_dir))
    if not found():
        raise LookupError(INSTALL_HINT)
