"""speechgrpo rewards as verl reward functions.

verl loads a function from ``custom_reward_function.path``/``name`` (``reward.custom_reward_function`` from
v0.8) and calls it once per response, by keyword, in a worker thread::

    compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=..., **reward_kwargs)

:func:`compute_score` returns ``{"score": s, <component>: ...}`` with the same keys for every sample of a
reward (verl appends them per key into ``reward_extra_info``; DAPO's ``filter_groups.metric`` and GDPO's
``gdpo_reward_keys`` read them), :func:`compute_score_async` is its ``async def`` twin, and
:func:`compute_score_batch` is the form of the legacy ``batch`` reward manager (one engine call per batch).

The reward is a spec string taken, in this order, from the ``reward`` keyword (verl's ``reward_kwargs``),
``extra_info["speechgrpo_reward"]`` (set per row at data-prep time), :func:`configure`, the
``SPEECHGRPO_REWARD`` environment variable, then ``"bleu"``. Built rewards are cached per spec.

Errors: a bad spec or option always raises. A bad sample (unusable ``ground_truth``, a non-string
``solution_str``, a failing metric) raises an error naming the field, unless ``safe=True``: then it scores
``error_value`` on every key and is logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from speechgrpo._group_ids import dense_ids
from speechgrpo.grpo_adapters.adapter_core import AdapterReward, LabelError, references_from_label, valid_strings
from speechgrpo.rewards import Reward

__all__ = ["DEFAULT_REWARD", "ENV_VAR", "EXTRA_INFO_KEY", "GROUP_KEYS", "compute_score", "compute_score_async",
           "compute_score_batch", "configure", "module_path"]

logger = logging.getLogger("speechgrpo.adapters.verl")

#: The reward used when nothing else chooses one.
DEFAULT_REWARD = "bleu"
#: Environment variable holding a spec string (reaches verl's Ray workers when set in their runtime env).
ENV_VAR = "SPEECHGRPO_REWARD"
#: ``extra_info`` key holding a row's spec string.
EXTRA_INFO_KEY = "speechgrpo_reward"
#: ``extra_info`` keys whose values group the samples of one prompt in :func:`compute_score_batch`.
GROUP_KEYS = ("uid", "index")
#: Keyword arguments verl itself passes when a reward model is enabled; accepted and ignored.
_VERL_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})


class _Options(NamedTuple):
    """What a call needs besides its sample (``reward`` here is :func:`configure`'s)."""

    reward: str | Reward | None = None
    safe: bool = False
    error_value: float = 0.0
    as_float: bool = False


class _Built(NamedTuple):
    """A reward ready to score, with the component keys every result dict carries."""

    adapter: AdapterReward
    keys: tuple[str, ...]


_lock = threading.Lock()
_defaults = _Options()
_cache: dict[tuple[str | Reward, float], _Built] = {}
_warned: set[str] = set()


def module_path() -> str:
    """The file of this module: the value for verl's ``custom_reward_function.path``."""
    return str(Path(__file__).resolve())


def _check_options(options: _Options) -> _Options:
    for name in ("safe", "as_float"):
        if not isinstance(getattr(options, name), bool):
            raise TypeError(f"speechgrpo verl option {name} must be true or false, got {getattr(options, name)!r}")
    value = options.error_value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"speechgrpo verl option error_value must be a finite number, got {value!r}")
    if options.reward is not None and not isinstance(options.reward, (str, Reward)):
        raise TypeError(f"speechgrpo verl option reward must be a spec string, got {options.reward!r}")
    return options._replace(error_value=float(value))


def _build(reward: str | Reward, error_value: float) -> _Built:
    """The cached reward of a spec (built once per process; thread-safe)."""
    built = _cache.get((reward, error_value))  # every call after the first of a spec as written (no lock needed)
    if built is not None:
        return built
    key = (" ".join(reward.split()) if isinstance(reward, str) else reward, error_value)
    with _lock:
        built = _cache.get(key)
        if built is None:
            adapter = AdapterReward(reward, error_value=error_value)
            # One tiny sample gives the component keys (fixed by the reward's structure), so that a sample
            # scored error_value still carries every key; it also fails here for a spec verl cannot feed.
            try:
                keys = adapter.reward.component_names()
            except (TypeError, ValueError) as err:
                raise ValueError(f"reward {adapter.reward.spec!r} cannot score a response and its references "
                                 f"alone, which is all verl passes: {err}") from err
            if "score" in keys:
                raise ValueError(f"reward {adapter.reward.spec!r} has a component named 'score', which verl reserves")
            built = _cache[key] = _Built(adapter, keys)
        _cache[reward, error_value] = built
    return built


def configure(reward: str | Reward | None = None, *, safe: bool = False, error_value: float = 0.0,
              as_float: bool = False) -> None:
    """Set this process's defaults (``reward_kwargs`` and ``extra_info`` still take precedence).

    The reward is built now, so a bad spec fails here. ``configure()`` with no arguments restores the defaults.
    Only the calling process is affected: verl scores in Ray worker processes that never run your driver
    script, so there use ``reward_kwargs`` (or the environment variable).
    """
    global _defaults
    options = _check_options(_Options(reward, safe, error_value, as_float))
    if options.reward is not None:
        _build(options.reward, options.error_value)
    _defaults = options


def _options(kwargs: Mapping[str, Any]) -> tuple[_Options, str | None]:
    """The call's options (keywords over :func:`configure`'s) and its ``reward`` keyword; unknown keywords
    are warned about once."""
    keyword = kwargs.get("reward")
    if keyword is not None and not isinstance(keyword, str):
        raise TypeError(f"the reward keyword (reward_kwargs.reward) must be a spec string, got {keyword!r}")
    if kwargs.keys() <= {"reward"}:  # the usual call: a spec, or nothing, and the defaults
        return _defaults, keyword
    known = {name: kwargs[name] for name in ("safe", "error_value", "as_float") if name in kwargs}
    for name in sorted(set(kwargs) - {"reward", *known} - _VERL_KWARGS):
        with _lock:
            if name in _warned:
                continue
            _warned.add(name)
        logger.warning("speechgrpo verl reward: ignoring unknown keyword argument %r", name)
    return (_check_options(_defaults._replace(**known)) if known else _defaults), keyword


def _reward_of(keyword: str | None, options: _Options, extra_info: Any, where: str) -> str | Reward:
    """The reward of one sample, by precedence: keyword, extra_info, configure(), environment, default."""
    if extra_info is not None and not isinstance(extra_info, Mapping):
        raise TypeError(f"{where} must be a dict or None, got {type(extra_info).__name__}")
    row = extra_info.get(EXTRA_INFO_KEY) if extra_info else None
    if row is not None and not isinstance(row, str):
        raise TypeError(f"{where}[{EXTRA_INFO_KEY!r}] must be a spec string, got {row!r}")
    for reward in (keyword, row, options.reward):
        if reward is not None:
            return reward
    return os.environ.get(ENV_VAR) or DEFAULT_REWARD


def _labels(ground_truths: Sequence[Any], names: Sequence[str], safe: bool) -> list[Any]:
    """References read from verl's ground truths; unless ``safe``, an unusable one raises naming its field
    (with ``safe``, the core scores it ``error_value`` and logs it)."""
    if safe or valid_strings(ground_truths):  # strings are references as they are (the usual rows)
        return list(ground_truths)
    labels = []
    for label, name in zip(ground_truths, names, strict=True):
        try:
            labels.append(references_from_label(label, name))
        except LabelError as err:
            raise LabelError(f"{err} ({name} is the row's reward_model.ground_truth)") from err
    return labels


def _check_solutions(solutions: Sequence[Any], names: Sequence[str], safe: bool) -> None:
    if safe:
        return
    for solution, name in zip(solutions, names, strict=True):
        if not isinstance(solution, str):
            raise TypeError(f"{name} must be the decoded response string, got {type(solution).__name__}")


def _results(built: _Built, completions: Sequence[Any], labels: Sequence[Any], options: _Options,
             group_ids: Sequence[int] | None) -> list[dict[str, float]]:
    """One engine call; per sample ``{"score", *built.keys}`` (``error_value`` everywhere for a failed one)."""
    scored = built.adapter.score(completions, labels, group_ids=group_ids, safe=options.safe)
    fill = [options.error_value] * len(completions)
    return [{"score": score, **{key: scored.components.get(key, fill)[i] for key in built.keys}}
            for i, score in enumerate(scored.scores)]


def compute_score(data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Mapping[str, Any] | None = None,
                  **kwargs: Any) -> dict[str, float] | float:
    """verl's per-sample reward function: ``{"score": s, <component>: ...}``, or ``s`` with ``as_float=True``.

    Keyword options (verl's ``reward_kwargs``): ``reward`` (spec string), ``safe``, ``error_value``,
    ``as_float``. ``data_source`` is accepted and not used: the spec chooses the reward.
    """
    options, keyword = _options(kwargs)
    built = _build(_reward_of(keyword, options, extra_info, "extra_info"), options.error_value)
    if built.adapter.reward.group_dependent:
        raise ValueError(
            f"reward {built.adapter.reward.spec!r} normalizes each component within its GRPO group, but "
            "compute_score sees one response, alone in its group, where it scores 0 whatever the response. Use "
            "compute_score_batch (reward_model.reward_manager=batch; groups from extra_info uid or index), or a "
            "plain weighted sum with verl's own GDPO (algorithm.gdpo_reward_keys over its components).")
    _check_solutions([solution_str], ["solution_str"], options.safe)
    result = _results(built, [solution_str], _labels([ground_truth], ["ground_truth"], options.safe), options,
                      None)[0]
    return result["score"] if options.as_float else result


async def compute_score_async(data_source: Any, solution_str: Any, ground_truth: Any,
                              extra_info: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, float] | float:
    """:func:`compute_score` as a coroutine (verl awaits it), scoring in a thread so the event loop keeps going."""
    return await asyncio.to_thread(compute_score, data_source, solution_str, ground_truth, extra_info, **kwargs)


def _group_ids(extra_infos: Sequence[Mapping[str, Any]]) -> list[int] | None:
    """Group ids from the first of :data:`GROUP_KEYS` that every row has; ``None`` lets the reward infer them."""
    for key in GROUP_KEYS:
        if extra_infos and all(key in info for info in extra_infos):
            ids: list[int] = dense_ids([info[key] for info in extra_infos]).tolist()
            return ids
    return None


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[Any], ground_truths: Sequence[Any],
                        extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
                        **kwargs: Any) -> list[dict[str, float]] | list[float]:
    """The legacy ``batch`` reward manager's function: one engine call for all rows sharing a reward.

    Same options and results as :func:`compute_score`, one per row. Samples of one prompt are grouped by
    ``extra_info["uid"]`` or ``["index"]`` when every row has it, otherwise by identical references.
    """
    options, keyword = _options(kwargs)
    n = len(solution_strs)
    infos = [{} if info is None else info for info in (extra_infos if extra_infos is not None else [None] * n)]
    for name, values in (("data_sources", data_sources), ("ground_truths", ground_truths), ("extra_infos", infos)):
        if len(values) != n:
            raise ValueError(f"{len(values)} {name} for {n} solution_strs")
    rows: dict[str | Reward, list[int]] = {}
    for i, info in enumerate(infos):
        rows.setdefault(_reward_of(keyword, options, info, f"extra_infos[{i}]"), []).append(i)
    results: list[dict[str, float]] = [{} for _ in range(n)]
    for reward, idx in rows.items():
        built = _build(reward, options.error_value)
        _check_solutions([solution_strs[i] for i in idx], [f"solution_strs[{i}]" for i in idx], options.safe)
        labels = _labels([ground_truths[i] for i in idx], [f"ground_truths[{i}]" for i in idx], options.safe)
        for i, result in zip(idx, _results(built, [solution_strs[i] for i in idx], labels, options,
                                           _group_ids([infos[i] for i in idx])), strict=True):
            results[i] = result
    return [r["score"] for r in results] if options.as_float else results


if __name__ != "speechgrpo.grpo_adapters.verl":
    # verl loaded this file by path as a new module: hand out the installed module's functions instead, so
    # that configure() and the reward cache are shared, and the functions pickle by reference (the
    # ``prime`` manager's process pool, the ``remote`` manager's Ray workers).
    from speechgrpo.grpo_adapters import verl as _installed

    globals().update({name: getattr(_installed, name) for name in __all__})
