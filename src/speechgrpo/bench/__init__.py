"""``speechgrpo bench``: compare rewards on speed (against their reference implementations) and on the
learning signal they give GRPO on a batch of groups.

    speechgrpo bench speed --rewards bleu,chrf,rougeL,wer,bertscore
    speechgrpo bench signal --data groups.jsonl --rewards bleu,chrf,bertscore --target bertscore

See ``docs/bench.md``.
"""
