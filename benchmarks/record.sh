#!/usr/bin/env bash
# The runs behind docs/benchmarks.md, at one commit on one machine: every table's Markdown goes to $1
# (default bench-record/), each command's output to a log beside it. About 12 minutes on 2 cores (measured at 2f49d4a).
# Needs `make setup` (the main environment) and `make setup-peers` (the peers' environment).
set -euo pipefail
out=${1:-bench-record}
mkdir -p "$out"
py=.venv/bin/python
run() {  # name, command...
    local name=$1
    shift
    echo "== $name: $*" | tee "$out/$name.log"
    local start=$SECONDS
    "$@" 2>&1 | tee -a "$out/$name.log"
    echo "== $name: $((SECONDS - start)) s" | tee -a "$out/$name.log"
}
git rev-parse --short HEAD > "$out/commit.txt"
git status --short --untracked-files=no >> "$out/commit.txt"
run speed .venv/bin/speechgrpo bench speed --corpus manpages --groups 3000 --group-size 16 \
    --rewards bleu,chrf,chrfpp,wer,cer,ter,rougeL,rouge1 --max-pairs ter=3200 --repeats 3 --out "$out/speed"
run per_size .venv/bin/speechgrpo bench speed --corpus manpages --groups 64 --group-size 16 \
    --rewards bleu,chrf,wer,cer,rougeL --batch-sizes 1,8,64 --repeats 5 --out "$out/per_size"
run per_call $py benchmarks/per_call.py --markdown "$out/per_call.md"
run exactness $py benchmarks/exactness.py --markdown "$out/exactness.md"
run peers .venv-peers/bin/python benchmarks/peers.py --markdown "$out/peers.md"
