#!/usr/bin/env bash
# System data speechgrpo uses beyond PyPI: WordNet 3.0 for METEOR (Debian: wordnet-base,
# wordnet-sense-index), converted into NLTK's layout by `speechgrpo setup-wordnet`, espeak-ng, the
# speech synthesizer of the bundled spoken task (`speechgrpo data synth`), and the German manual pages
# (manpages-de, read with groff), the real text `speechgrpo bench speed` measures on.
# Installs the Debian packages when it can (root + apt-get); otherwise says what to do.
set -u
speechgrpo=${1:-speechgrpo}
if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/wordnet/index.sense ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing WordNet from Debian packages (for METEOR)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      wordnet-base wordnet-sense-index >/dev/null) || echo "setup: apt-get failed; METEOR will be unavailable"
  else
    echo "setup: WordNet is missing and cannot be installed here (needs root and apt-get)."
    echo "       Install wordnet-base and wordnet-sense-index, or run 'python -m nltk.downloader wordnet'"
    echo "       with network access; METEOR is unavailable until then (everything else works)."
  fi
fi
if ! command -v espeak-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing espeak-ng from Debian packages (speech synthesis for the bundled task)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      espeak-ng >/dev/null) || echo "setup: apt-get failed; 'speechgrpo data synth' will be unavailable"
  else
    echo "setup: espeak-ng is missing and cannot be installed here (needs root and apt-get)."
    echo "       Install it (e.g. 'apt-get install espeak-ng') to synthesize the bundled spoken task."
  fi
fi
if [ ! -f /usr/share/doc/manpages-de/copyright ] || ! command -v groff >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing manpages-de and groff-base (the real-text corpus of 'speechgrpo bench speed')"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      manpages-de groff-base >/dev/null) || echo "setup: apt-get failed; bench speed will use generated text"
  else
    echo "setup: the German manual pages are missing (apt-get install manpages-de groff-base);"
    echo "       'speechgrpo bench speed' measures on generated text until then."
  fi
fi
if [ -f /usr/share/wordnet/data.noun ]; then
  "$speechgrpo" setup-wordnet
fi
exit 0
