"""Run inside a process that can import ms-swift (tests/test_swift_adapter.py puts it on PYTHONPATH):
load a speechgrpo plugin file and score rows through ms-swift's own code, printing the result as JSON.

    python swift_harness.py JOB.json   # {"plugin": path, "reward_funcs": [...], "rows": [...],
                                        #  "completions": [...], "argv": [...] (optional: swift rlhf flags)}
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def main(job_path: str) -> None:
    import torch
    from swift.rl_core.data import GRPOSample
    from swift.rl_core.grpo_algorithm import _is_async_reward, compute_rewards_per_func
    from swift.rlhf_trainers.utils import resolve_reward_funcs
    from swift.utils import import_external_file

    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    import_external_file(job["plugin"])  # what --external_plugins does
    funcs, names = resolve_reward_funcs(job["reward_funcs"], args=None)  # orms[name]() per name
    samples = [GRPOSample.from_row({**row, "messages": [*row["messages"], {"role": "assistant", "content": text}]})
               for row, text in zip(job["rows"], job["completions"], strict=True)]
    rewards = compute_rewards_per_func(samples, funcs, None, device=torch.device("cpu"))
    out = {"names": names, "is_async": [_is_async_reward(f) for f in funcs],
           "rewards": [[None if math.isnan(v) else v for v in row] for row in rewards.tolist()]}
    if job.get("argv"):  # the documented `swift rlhf` flags, parsed by ms-swift's own argument parser
        from swift.arguments import RLHFArguments
        from transformers import HfArgumentParser

        parsed = vars(HfArgumentParser([RLHFArguments]).parse_args(job["argv"]))
        out["argv"] = {key: parsed[key] for key in job.get("argv_keys", [])}
    print("HARNESS " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
