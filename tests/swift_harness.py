"""Run inside a process that can import ms-swift (tests/test_swift_adapter.py puts it on PYTHONPATH):
load a speechgrpo plugin file and score rows through ms-swift's own code, printing the result as JSON.

    python swift_harness.py JOBS.json   # {name: {"plugin": path, "reward_funcs": [...], "rows": [...],
                                         #         "completions": [...], "argv": [...] (optional: swift rlhf
                                         #         flags), "argv_keys": [...]}}
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from swift.rl_core.data import GRPOSample
    from swift.rl_core.grpo_algorithm import _is_async_reward, compute_rewards_per_func
    from swift.rlhf_trainers.utils import resolve_reward_funcs
    from swift.utils import import_external_file

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
    return out


def main(jobs_path: str) -> None:
    jobs = json.loads(Path(jobs_path).read_text(encoding="utf-8"))
    print("HARNESS " + json.dumps({name: run_job(job) for name, job in jobs.items()}))

if __name__ == "__main__":
    main(sys.argv[1])
