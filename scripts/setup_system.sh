#!/usr/bin/env bash
# System data speechgrpo uses beyond PyPI: WordNet 3.0 for METEOR (Debian: wordnet-base,
# wordnet-sense-index), converted into NLTK's layout by `speechgrpo setup-wordnet`, espeak-ng, the
# speech synthesizer of the bundled spoken task (`speechgrpo data synth`), and the German manual pages
# (manpages-de, read with groff), the real text `speechgrpo bench speed` measures on.
# Installs the missing Debian packages when it can (root + apt-get: one update, one install); otherwise,
# or if that fails, says what is unavailable and what to do.
set -u
speechgrpo=${1:-speechgrpo}

have_wordnet() { [ -f /usr/share/wordnet/data.noun ] && [ -f /usr/share/wordnet/index.sense ]; }
have_espeak() { command -v espeak-ng >/dev/null 2>&1; }
have_manpages() { [ -f /usr/share/doc/manpages-de/copyright ] && command -v groff >/dev/null 2>&1; }

missing=()
have_wordnet || missing+=(wordnet-base wordnet-sense-index)
have_espeak || missing+=(espeak-ng)
have_manpages || missing+=(manpages-de groff-base)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing ${missing[*]} from Debian packages"
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
  if apt-get update -qq && ! install "${missing[@]}"; then  # one package unavailable: the others one by one
    for package in "${missing[@]}"; do install "$package" || echo "setup: apt-get could not install $package"; done
  fi
fi
if ! have_wordnet; then
  echo "setup: WordNet is missing (Debian: wordnet-base wordnet-sense-index, installed as root with apt-get),"
  echo "       or run 'python -m nltk.downloader wordnet' with network access; METEOR is unavailable until"
  echo "       then (everything else works)."
fi
if ! have_espeak; then
  echo "setup: espeak-ng is missing (e.g. 'apt-get install espeak-ng'); 'speechgrpo data synth' and the"
  echo "       demo need it to synthesize the bundled spoken task."
fi
if ! have_manpages; then
  echo "setup: the German manual pages are missing (apt-get install manpages-de groff-base);"
  echo "       'speechgrpo bench speed' measures on generated text until then."
fi
if have_wordnet; then
  "$speechgrpo" setup-wordnet
fi
exit 0
