"""speechgrpo rewards as TRL reward functions (``GRPOTrainer`` / ``RLOOTrainer`` ``reward_funcs=``).

TRL calls each reward function once per generation batch, by keyword: ``prompts``, ``completions``,
``completion_ids``, every dataset column (already repeated per generation), ``trainer_state``,
``log_metric`` and ``log_extra``, and it reads back one ``float | None`` per completion. A prompt's
generations arrive next to each other, so the whole batch is scored in one engine call with each
group's shared reference processed once.

    from speechgrpo.grpo_adapters.trl import trl_reward
    trainer = GRPOTrainer(model=..., reward_funcs=[trl_reward("bleu")], train_dataset=dataset_with_reference_column)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal

from speechgrpo._group_ids import group_ids_of_runs
from speechgrpo.grpo_adapters.adapter_core import AdapterReward
from speechgrpo.rewards import Reward

OnError = Literal["raise", "none"]


def completion_text(completion: Any) -> Any:
    """The text of a TRL completion: a string (standard format), or the last assistant message of a
    conversational completion, whose content may be a string or a list of typed blocks."""
    if isinstance(completion, str) or not isinstance(completion, Sequence) or not completion:
        return completion
    message = completion[-1]
    if not isinstance(message, dict) or "content" not in message:
        return completion
    content = message["content"]
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return content


class TRLReward:
    """A reward function in TRL's convention.

    Args:
        reward: a spec string (``"0.7*bleu + 0.3*chrf"``), a :class:`~speechgrpo.rewards.Reward` or a
            batched function.
        reference_column: the dataset column holding each prompt's reference(s) (a string, a list of
            strings, or a dict with a reference key).
        name: the name TRL logs (``rewards/<name>/mean``); default: the spec without spaces.
        off_policy_column: a column of booleans marking off-policy completions (e.g. from a
            ``rollout_func`` that inserts the reference, MP-GRPO), if any.
        log_components: for composite rewards, log each component's batch mean through TRL's
            ``log_metric`` as ``<name>/<component>`` and add the per-completion values to the completions
            table through ``log_extra``.
        on_error: ``"raise"`` (default: bad input stops training with an error naming the index) or
            ``"none"`` (the sample gets ``None``, which TRL leaves out of the group baseline).
    """

    def __init__(self, reward: str | Reward | Callable[..., Any], *, reference_column: str = "reference",
                 name: str | None = None, off_policy_column: str | None = None, log_components: bool = True,
                 on_error: OnError = "raise") -> None:
        if on_error not in ("raise", "none"):
            raise ValueError(f"on_error must be 'raise' or 'none', got {on_error!r}")
        self.adapter = AdapterReward(reward)
        self.reference_column = reference_column
        self.off_policy_column = off_policy_column
        self.log_components = log_components
        self.on_error = on_error
        self.__name__ = name or "".join(self.adapter.reward.spec.split())

    @property
    def signature(self) -> str:
        return self.adapter.signature

    def __repr__(self) -> str:
        return f"<TRLReward {self.__name__} reference_column={self.reference_column!r}>"

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 completion_ids: Sequence[Sequence[int]] | None = None, *,
                 log_metric: Callable[[str, float], None] | None = None,
                 log_extra: Callable[[str, list[Any]], None] | None = None, **columns: Any) -> list[float | None]:
        if completions is None:
            raise TypeError(f"{self.__name__}: TRL passes completions=...; got none")
        if self.reference_column not in columns:
            raise KeyError(f"{self.__name__}: no dataset column {self.reference_column!r} among the reward "
                           f"kwargs {sorted(k for k in columns if k != 'trainer_state')}; set reference_column=")
        texts = [completion_text(c) for c in completions]
        labels = columns[self.reference_column]
        prompt_keys = [repr(p) for p in prompts] if prompts is not None else [None] * len(texts)
        group_ids = group_ids_of_runs(list(zip(prompt_keys, map(repr, labels), strict=False)))
        off_policy = columns.get(self.off_policy_column) if self.off_policy_column else None
        extra = {"completion_ids": list(completion_ids)} if completion_ids is not None else {}
        result = self.adapter.score(texts, labels, group_ids=list(group_ids), off_policy=off_policy,
                                    safe=self.on_error == "none", returned_on_error="None", **extra)
        if self.log_components and len(result.components) > 1:
            for component, values in result.components.items():
                if log_metric is not None:
                    log_metric(f"{self.__name__}/{component}", sum(values) / max(len(values), 1))
                if log_extra is not None:
                    log_extra(f"{self.__name__}/{component}", list(values))
        return [None if i in result.errors else score for i, score in enumerate(result.scores)]


def trl_reward(reward: str | Reward | Callable[..., Any], **options: Any) -> TRLReward:
    """A synchronous TRL reward function (see :class:`TRLReward` for the options)."""
    return TRLReward(reward, **options)


def trl_async_reward(reward: str | Reward | Callable[..., Any],
                     **options: Any) -> Callable[..., Coroutine[Any, Any, list[float | None]]]:
    """An ``async def`` TRL reward function, for slow rewards (BERTScore): TRL runs async reward
    functions concurrently with each other (``asyncio.gather``) instead of one after the other.

    It is a plain coroutine function, so every TRL version that supports async rewards detects it with
    ``inspect.iscoroutinefunction``; the scoring itself runs in a worker thread.
    """
    sync = TRLReward(reward, **options)

    async def speechgrpo_async_reward(*args: Any, **kwargs: Any) -> list[float | None]:
        return await asyncio.to_thread(sync, *args, **kwargs)

    speechgrpo_async_reward.__name__ = sync.__name__
    speechgrpo_async_reward.__qualname__ = sync.__name__
    return speechgrpo_async_reward
