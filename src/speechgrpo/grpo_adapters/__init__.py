"""speechgrpo rewards inside GRPO trainers: TRL (``.trl``), OpenRLHF (``.openrlhf``, ``.reward_server``),
verl (``.verl``), ms-swift (``.swift``) and Hugging Face ``evaluate`` (``.hf_evaluate``). Each framework
module is imported on its own, so using one never imports the others' dependencies."""

from speechgrpo._group_ids import group_ids_of_runs
from speechgrpo.grpo_adapters.adapter_core import (
    LABEL_KEYS,
    AdapterReward,
    AdapterScores,
    LabelError,
    references_from_label,
)

__all__ = ["LABEL_KEYS", "AdapterReward", "AdapterScores", "LabelError", "group_ids_of_runs",
           "references_from_label"]
