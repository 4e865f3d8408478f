#!/usr/bin/env bash
# The commands behind docs/bench.md, at one commit on one machine: each command's output goes to a folder of $1
# (default bench-doc/, git-ignored) with its log beside it. About 33 minutes on 2 cores (measured at 5c4c59e),
# 30 of them the three-seed reward ablation (`bench train`) and the demo data it needs. Needs `make setup`.
set -euo pipefail
out=${1:-bench-doc}
mkdir -p "$out"
sg=.venv/bin/speechgrpo
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
# docs/bench.md's groups file: the generated corpus's short answers, 8 noisy completions each
.venv/bin/python - "$out/groups.jsonl" <<'PY'
import json
import sys

from speechgrpo.bench.generated_corpus import make_generated_corpus

corpus = make_generated_corpus(128, 8, seed=7, style="short")  # 128 short answers, 8 noisy completions each
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for g, reference in enumerate(corpus.references):
        completions = corpus.hypotheses[8 * g: 8 * g + 8]
        f.write(json.dumps({"id": f"q{g}", "references": [reference], "completions": completions}) + "\n")
PY
run speed-default $sg bench speed --out "$out/speed-default"
run speed-file $sg bench speed --data "$out/groups.jsonl" --rewards bleu,chrf,rougeL,wer,exact_match,token_f1 \
    --out "$out/speed-file"
run per-size $sg bench speed --corpus manpages --groups 64 --group-size 16 --rewards bleu,chrf,wer,cer,rougeL \
    --batch-sizes 1,8,64 --repeats 5 --out "$out/per-size"
run signal-bundled $sg bench signal --target bertscore --out "$out/signal-bundled"
run signal-file $sg bench signal --data "$out/groups.jsonl" \
    --rewards bleu,chrf,rougeL,wer,exact_match,token_f1,bertscore --target bertscore --out "$out/signal-file"
# the reward ablation (its data, synthesized with the demo's settings, are reused by the rollouts below)
printf 'protocol: full\n' > "$out/full.yaml"
run ablation-sqa $sg bench train --task sqa --demo-dir "$out/demo_full" --config "$out/full.yaml" \
    --out "$out/ablation-sqa" --no-progress
# the bundled base's own GRPO samples on the spoken-QA training prompts, then their learning signal
run rollouts-train $sg train stage=grpo model=bundled "train_manifests=[$out/demo_full/stage_data/sqa_train.jsonl]" \
    output_dir="$out/runs/rollouts" steps=12 prompts_per_step=8 learning_rate=2e-4 max_new_tokens=32 \
    micro_batch_size=64 save_rollouts=true --no-progress
run signal-rollouts $sg bench signal --data "$out/runs/rollouts/rollouts.jsonl" --target bertscore \
    --rewards bleu,chrf,rouge1,rougeL,meteor,wer,exact_match,token_f1,bertscore --out "$out/signal-rollouts"
