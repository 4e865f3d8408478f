"""speechgrpo rewards as ms-swift ORMs (``swift rlhf --rlhf_type grpo --reward_funcs ...``).

ms-swift is the GRPO trainer that runs audio rows today (Qwen2-Audio, Qwen2.5-Omni; an ``audios``
column). Its reward functions are classes in the ``swift.rewards.orms`` registry, instantiated once as
``orms[name](args=grpo_config)`` and called once per batch as ``reward(completions, **columns)``:
``completions`` positional (the text of each sample's last message), and by keyword every dataset
column per sample (``solution``, ``audios``, ...), ``prompt_id``, ``request_id``, ``messages`` and
``trainer_state``. A ``None`` score becomes NaN, which ms-swift's weighted ``nansum`` counts as 0.
Async rewards (``async def __call__``) run concurrently with each other.

The plugin route: ``speechgrpo swift-plugin --reward bleu -o plugin.py`` writes a file that calls
:func:`register`, then ``swift rlhf ... --external_plugins plugin.py --reward_funcs speechgrpo_bleu``.
From Python, call :func:`register` before building ms-swift's arguments. This module never imports
ms-swift itself except to find the registry in :func:`register`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from speechgrpo import __version__
from speechgrpo._group_ids import dense_ids
from speechgrpo.grpo_adapters.adapter_core import AdapterReward, AdapterScores, logger
from speechgrpo.rewards import Reward
from speechgrpo.rewards.spec import spec_slug

OnError = Literal["none", "zero", "raise"]


def completion_text(completion: Any) -> Any:
    """A completion as ms-swift passes it (the last message's ``content``): a string, or a list of typed
    blocks whose text parts are joined; anything else is returned as is (and scored as an error)."""
    if isinstance(completion, list):
        return "".join(block.get("text", "") for block in completion
                       if isinstance(block, Mapping) and block.get("type", "text") == "text")
    return completion


def group_ids_of_keys(keys: Sequence[Any]) -> list[int]:
    """One id per distinct key, in order of first appearance (ms-swift's ``prompt_id``: a prompt's samples
    share it wherever they sit in the batch)."""
    ids: list[int] = dense_ids([key if isinstance(key, (str, int)) else repr(key) for key in keys]).tolist()
    return ids


class SwiftScorer:
    """Scores an ms-swift batch once and keeps the last result, so that the reward and its component
    ORMs (each a separate ms-swift reward function, called one after the other with the same batch)
    share one engine call."""

    def __init__(self, reward: str | Reward | Callable[..., Any], *, reference_column: str = "solution",
                 off_policy_column: str | None = None, on_error: OnError = "none") -> None:
        if on_error not in ("none", "zero", "raise"):
            raise ValueError(f"on_error must be 'none', 'zero' or 'raise', got {on_error!r}")
        self.adapter = AdapterReward(reward)
        self.reference_column = reference_column
        self.off_policy_column = off_policy_column
        self.on_error = on_error
        self._last: tuple[Any, AdapterScores] | None = None

    def score(self, completions: Sequence[Any], columns: Mapping[str, Any]) -> AdapterScores:
        texts = [completion_text(c) for c in completions]
        if self.reference_column not in columns:
            message = (f"no column {self.reference_column!r} among ms-swift's reward kwargs "
                       f"{sorted(k for k in columns if k != 'trainer_state')}; set the reference column")
            if self.on_error == "raise":
                raise KeyError(message)
            logger.error("speechgrpo ms-swift reward: %s; no sample is scored", message)
            return AdapterScores([self.adapter.error_value] * len(texts), {}, dict.fromkeys(range(len(texts)), message))
        labels = list(columns[self.reference_column])
        prompt_ids = columns.get("prompt_id")
        off_policy = columns.get(self.off_policy_column) if self.off_policy_column else None
        key = (repr(texts), repr(labels), repr(prompt_ids), repr(off_policy))
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        group_ids = group_ids_of_keys(list(prompt_ids)) if prompt_ids is not None and len(prompt_ids) == len(
            texts) else None
        result = self.adapter.score(texts, labels, group_ids=group_ids, off_policy=off_policy,
                                    safe=self.on_error != "raise",
                                    returned_on_error="None" if self.on_error == "none" else "0")
        self._last = (key, result)
        return result


def _reward_values(result: AdapterScores, component: str | None, on_error: OnError) -> list[float | None]:
    """The values ms-swift gets: an unscorable sample is ``None`` (NaN there), or 0.0 with ``on_error="zero"``."""
    values = result.scores if component is None else result.components.get(component, result.scores)
    return [(None if on_error == "none" else 0.0) if i in result.errors else float(v) for i, v in enumerate(values)]


def swift_orm(reward: str | Reward | Callable[..., Any], *, name: str | None = None,
              reference_column: str = "solution", off_policy_column: str | None = None,
              on_error: OnError = "none", is_async: bool = False, component: str | None = None,
              scorer: SwiftScorer | None = None) -> type[Any]:
    """An ms-swift ORM class for a speechgrpo reward.

    Args:
        reward: a spec string (``"0.7*bleu + 0.3*chrf"``), a :class:`~speechgrpo.rewards.Reward` or a
            batched function.
        name: the class name, which ms-swift logs as ``rewards/<name>/mean``; default
            ``speechgrpo_<spec>`` (``speechgrpo_bleu``, ``speechgrpo_0.7xbleu_0.3xchrf``).
        reference_column: the dataset column with each sample's reference(s) (a string, a list of
            strings, or a dict with a reference key); ms-swift's convention is ``solution``.
        off_policy_column: a column of booleans marking off-policy samples, if a custom rollout adds any.
        on_error: what a sample that cannot be scored gets (the reason is logged): ``"none"`` (default;
            NaN in ms-swift, 0 in its weighted sum), ``"zero"`` (0.0: use it with ``--scale_rewards
            gdpo``, whose advantages turn NaN on a ``None``, ms-swift issue #8123) or ``"raise"`` (ms-swift
            does not catch reward errors, so one bad row stops training).
        is_async: an ``async def __call__`` (scored in a worker thread), for slow rewards (BERTScore) next
            to other reward functions.
        component: score this component of a composite reward instead of the total (for logging with
            ``--reward_weights ... 0``; see :func:`register`).
        scorer: share a :class:`SwiftScorer` (and its last batch) with other ORMs of the same reward; the
            column and error options are then the scorer's.
    """
    if scorer is None:
        scorer = SwiftScorer(reward, reference_column=reference_column, off_policy_column=off_policy_column,
                             on_error=on_error)
    elif (reference_column, off_policy_column, on_error) != ("solution", None, "none"):
        raise ValueError("pass reference_column, off_policy_column and on_error to the shared scorer, not here")
    class_name = name or "speechgrpo_" + spec_slug(scorer.adapter.reward.spec)

    def init(self: Any, args: Any = None, **kwargs: Any) -> None:
        self.args = args
        self.scorer = scorer

    def call(self: Any, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        return _reward_values(self.scorer.score(completions, columns), component, self.scorer.on_error)

    async def acall(self: Any, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        return await asyncio.to_thread(call, self, completions, **columns)

    doc = f"speechgrpo reward {scorer.adapter.reward.spec!r}" + (f", component {component!r}" if component else "")
    return type(class_name, (), {"__init__": init, "__call__": acall if is_async else call, "__doc__": doc,
                                 "signature": scorer.adapter.signature, "__module__": __name__})


def swift_orms(reward: str | Reward | Callable[..., Any], *, name: str | None = None, components: bool = False,
               **options: Any) -> dict[str, type[Any]]:
    """The ORM classes of ``reward`` by registered name: the reward, and with ``components=True`` each
    component of a composite as ``<name>.<component>``, all scored from one engine call per batch.
    ``options`` are those of :func:`swift_orm`."""
    scorer = SwiftScorer(reward, reference_column=options.pop("reference_column", "solution"),
                         off_policy_column=options.pop("off_policy_column", None),
                         on_error=options.pop("on_error", "none"))
    main = swift_orm(reward, name=name, scorer=scorer, **options)
    classes = {main.__name__: main}
    if components:
        names = list(scorer.adapter.reward.component_names())
        if len(names) < 2:
            raise ValueError(f"reward {scorer.adapter.reward.spec!r} has no components to register")
        for component in names:
            orm = swift_orm(reward, name=f"{main.__name__}.{component}", scorer=scorer, component=component,
                            **options)
            classes[orm.__name__] = orm
    return classes


def register(reward: str | Reward | Callable[..., Any], *, orms: dict[str, Any] | None = None,
             **options: Any) -> list[str]:
    """Put the ORMs of ``reward`` (:func:`swift_orms`) in ms-swift's registry (``swift.rewards.orms``
    unless ``orms`` is given) and return their names, for ``--reward_funcs``.

    With ``components=True``, list the components with weight 0 (``--reward_funcs speechgrpo_x
    speechgrpo_x.bleu --reward_weights 1 0``): ms-swift then logs each as ``rewards/<name>/mean``
    without changing the training reward, the only per-reward logging it offers.
    """
    if orms is None:
        from swift.rewards import orms as swift_registry

        orms = swift_registry
    classes = swift_orms(reward, **options)
    orms.update(classes)
    return list(classes)


_PLUGIN_FILE = '''\
r"""ms-swift reward plugin: speechgrpo reward {spec!r}.

Written by `speechgrpo swift-plugin` (speechgrpo {version}). Use it with:
    swift rlhf --rlhf_type grpo --external_plugins {path} --reward_funcs {names}{weights}
Reward signature: {signature}
"""

from speechgrpo.grpo_adapters.swift import register

SPEC = {spec!r}
OPTIONS = {options!r}

# built at import: a bad spec or a missing extra fails when ms-swift loads the plugin, not mid-run
NAMES = register(SPEC, **OPTIONS)
'''


def write_plugin(path: str | Path, spec: str, *, name: str | None = None, reference_column: str = "solution",
                 components: bool = False, is_async: bool = False, on_error: OnError = "none") -> Path:
    """Write an ms-swift plugin file for ``spec`` (overwritten) and return its path. The reward is built
    here first, so a bad spec raises :class:`~speechgrpo.rewards.SpecError` now."""
    options: dict[str, Any] = {"name": name, "reference_column": reference_column, "components": components,
                               "is_async": is_async, "on_error": on_error}
    classes = swift_orms(spec, **options)
    path = Path(path)
    path.write_text(_PLUGIN_FILE.format(spec=spec, version=__version__, path=path.resolve(),
                                        names=" ".join(classes), weights=_weights(len(classes)),
                                        signature=next(iter(classes.values())).signature,
                                        options=options),
                    encoding="utf-8")
    return path


def _weights(count: int) -> str:
    """``--reward_weights`` for a reward and its logged-only components (none for a plain reward)."""
    return f" --reward_weights {' '.join(['1'] + ['0'] * (count - 1))}" if count > 1 else ""


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``speechgrpo swift-plugin``."""
    parser = subparsers.add_parser("swift-plugin", help="write an ms-swift reward plugin file for a reward spec",
                                   description="Write a plugin for ms-swift's --external_plugins that registers "
                                               "a speechgrpo reward in swift.rewards.orms.")
    parser.add_argument("--reward", required=True, help="reward spec, e.g. 'bleu' or '0.7*bleu + 0.3*chrf'")
    parser.add_argument("-o", "--output", required=True, help="the .py file to write (overwritten)")
    parser.add_argument("--name", help="registered name, logged as rewards/<name>/mean (default speechgrpo_<spec>)")
    parser.add_argument("--reference-column", default="solution",
                        help="dataset column with the reference(s) (default: solution)")
    parser.add_argument("--components", action="store_true",
                        help="also register each component of a composite reward (log them with weight 0)")
    parser.add_argument("--on-error", choices=("none", "zero"), default="none",
                        help="score of a sample that cannot be scored: None (NaN in ms-swift; default) or 0.0 "
                             "(for --scale_rewards gdpo)")
    parser.add_argument("--async", dest="is_async", action="store_true",
                        help="an async reward, run concurrently with ms-swift's other reward functions")
    parser.set_defaults(run=cli_main)
    return parser


def cli_main(args: argparse.Namespace) -> int:
    path = write_plugin(args.output, args.reward, name=args.name, reference_column=args.reference_column,
                        components=args.components, is_async=args.is_async, on_error=args.on_error)
    usage = path.read_text(encoding="utf-8").splitlines()[3].strip()  # the file's own "swift rlhf ..." line
    print(f"wrote {path}; train with: {usage}")
    return 0
