"""OpenRLHF: a reward file for ``--reward.remote_url reward.py`` (``--remote_rm_url`` before v0.10.2).

OpenRLHF loads the file with ``importlib`` and calls ``reward_func(queries, prompts, labels)``
positionally: once per sample from v0.9.1, as a Ray task over chunks of ``micro_rollout_batch_size``
in v0.8.x. ``queries[i]`` is the decoded prompt + response with special tokens, ``labels[i]`` the
dataset's ``--data.label_key`` value. OpenRLHF swallows exceptions from the reward and breaks later
(the sample's reward is ``None``), so nothing here raises at scoring time: a sample that cannot be
scored gets ``error_value`` and the reason is logged.

The HTTP reward server (:mod:`speechgrpo.grpo_adapters.reward_server`) scores through the same
:class:`OpenRLHFReward`, so both routes extract responses and treat bad input identically.
"""

from __future__ import annotations

import argparse
import array
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from speechgrpo import __version__
from speechgrpo._group_ids import group_ids_of_runs
from speechgrpo.grpo_adapters.adapter_core import AdapterReward, AdapterScores, logger
from speechgrpo.rewards import Reward

#: End-of-sequence and padding tokens stripped from both ends of an extracted response.
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "<|end|>",
    "<end_of_turn>", "<eos>", "</s>", "<|end▁of▁sentence|>", "<pad>", "<|pad|>", "[PAD]",
    "<|finetune_right_pad_id|>",
)

#: How many characters of the prompt must match to locate the response when the query does not
#: contain the whole prompt (left truncation, or a tokenizer round trip that altered the prompt).
PROMPT_MATCH_CHARS = 32


class Extraction(NamedTuple):
    """A response cut out of an OpenRLHF query, and how the prompt was found (see :func:`extract_response`)."""

    response: str
    method: str


def _strip_special(text: str, special_tokens: Sequence[str]) -> str:
    """``text`` without surrounding whitespace and special tokens (repeated: ``</s><pad><pad>``)."""
    tokens = tuple(special_tokens)
    while True:
        stripped = text.strip()
        if not (stripped.startswith(tokens) or stripped.endswith(tokens)):  # the usual response, checked in C
            return stripped
        for token in tokens:
            if stripped.startswith(token):
                stripped = stripped[len(token):]
            if stripped.endswith(token):
                stripped = stripped[:-len(token)]
        if stripped == text:
            return text
        text = stripped


def _response_start(query: str, prompt: str) -> tuple[int, str]:
    """Where the response begins in ``query``, and which rule found it."""
    if query.startswith(prompt):
        return len(prompt), "prompt"
    found = query.find(prompt)
    if found >= 0:  # left padding or a BOS token before the prompt (v0.8.x batch decoding)
        return found + len(prompt), "prompt"
    head = query[:PROMPT_MATCH_CHARS]
    if len(head) == PROMPT_MATCH_CHARS:  # OpenRLHF truncates long prompts from the left
        k = prompt.find(head, 1)
        while k >= 0:
            if query.startswith(prompt[k:]):
                return len(prompt) - k, "truncated-prompt"
            k = prompt.find(head, k + 1)
    tail = prompt[-PROMPT_MATCH_CHARS:]
    if len(tail) == PROMPT_MATCH_CHARS and (found := query.rfind(tail)) >= 0:
        return found + len(tail), "prompt-end"
    return 0, "whole-query"


def extract_response(query: str, prompt: str,
                     special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS) -> Extraction:
    """The response inside an OpenRLHF ``query`` (= prompt + response, decoded with special tokens).

    The response starts after the prompt, found by the first rule that applies:

    * ``prompt``: the query contains the whole prompt (normally as its prefix; left padding or a
      BOS token may come first);
    * ``truncated-prompt``: the query starts with the prompt's last part (OpenRLHF cut a long
      prompt from the left), at least :data:`PROMPT_MATCH_CHARS` characters of it;
    * ``prompt-end``: the last occurrence of the prompt's last :data:`PROMPT_MATCH_CHARS`
      characters (the tokenizer round trip altered the prompt's body, e.g. its spaces);
    * ``whole-query``: none of these; the whole query is the response.

    Whitespace and ``special_tokens`` are then stripped from both ends (repeatedly).
    """
    start, method = _response_start(query, prompt)
    return Extraction(_strip_special(query[start:], special_tokens), method)


def _check_special_tokens(special_tokens: Sequence[str]) -> tuple[str, ...]:
    if isinstance(special_tokens, str):
        raise TypeError("special_tokens must be a sequence of strings, not one string")
    tokens = tuple(special_tokens)
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"special_tokens must be non-empty strings, got {token!r}")
    return tokens


def _shape_problem(n: int, queries: Any, prompts: Any, labels: Any) -> str:
    """Why ``reward_func``'s three arguments are not lists of ``n`` entries (the first that is not)."""
    for name, value in (("queries", queries), ("prompts", prompts), ("labels", labels)):
        if not isinstance(value, (list, tuple)):
            return f"{name} must be a list, got {type(value).__name__}"
        if len(value) != n:
            return f"{name} has {len(value)} entries for {n} queries"
    raise AssertionError("no problem to report")


class OpenRLHFReward:
    """A speechgrpo reward behind OpenRLHF's ``reward_func(queries, prompts, labels)`` convention.

    Args:
        reward: a spec string (``"0.7*bleu + 0.3*chrf"``), a :class:`~speechgrpo.rewards.Reward` or a
            batched function (see :func:`speechgrpo.rewards.as_reward`).
        error_value: the score of a sample that cannot be scored (bad label, non-string query...).
        special_tokens: stripped from both ends of each response (see :func:`extract_response`).
    """

    def __init__(self, reward: str | Reward | Callable[..., Any], *, error_value: float = 0.0,
                 special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS) -> None:
        self.adapter = AdapterReward(reward, error_value)
        self.special_tokens = _check_special_tokens(special_tokens)
        self._component_names: tuple[str, ...] | None = None
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @property
    def signature(self) -> str:
        return self.adapter.signature

    @property
    def error_value(self) -> float:
        return self.adapter.error_value

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        """Log a per-sample condition once as a warning (a whole run would repeat it every sample)."""
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        if first:
            logger.warning(message + " (logged once; later cases at DEBUG)", *args)
        else:
            logger.debug(message, *args)

    def _failed(self, n: int, message: str) -> AdapterScores:
        logger.error("speechgrpo OpenRLHF reward: %s; all %d samples get %s", message, n, self.error_value)
        value = self.error_value
        return AdapterScores([value] * n, {name: [value] * n for name in self._names()},
                             dict.fromkeys(range(n), message))

    def _names(self, result: AdapterScores | None = None) -> tuple[str, ...]:
        """The component names, the same in every call (OpenRLHF collects ``extra_logs`` per key)."""
        if result is not None and result.components:
            if self._component_names is None:
                self._component_names = tuple(result.components)
            return self._component_names
        if self._component_names is None:  # nothing scored yet: learn the names from a trivial sample
            try:
                self._component_names = self.adapter.reward.component_names()
            except Exception:
                logger.exception("speechgrpo OpenRLHF reward: cannot score a trivial sample")
                return ()
        return self._component_names

    def score(self, queries: Any, prompts: Any, labels: Any, *,
              group_ids: Sequence[int] | None = None) -> AdapterScores:
        """Score a batch in one engine call; never raises.

        Each response is extracted from its query (:func:`extract_response`). Samples of one group
        are the runs of equal prompts (OpenRLHF lists a prompt's samples together) unless
        ``group_ids`` is given. Lists of the wrong type or length give every sample
        ``error_value``: one per query, or a single sample when ``queries`` is not a list.
        """
        try:
            n = len(queries) if isinstance(queries, (list, tuple)) else 1
            if not (isinstance(queries, (list, tuple)) and isinstance(prompts, (list, tuple))
                    and isinstance(labels, (list, tuple)) and len(prompts) == n and len(labels) == n):
                return self._failed(n, _shape_problem(n, queries, prompts, labels))
            completions: list[str | None] = []
            bad: dict[int, str] = {}
            tokens = self.special_tokens
            for i, (query, prompt) in enumerate(zip(queries, prompts, strict=True)):
                if type(query) is str and type(prompt) is str and query.startswith(prompt):  # the usual query
                    response = _strip_special(query[len(prompt):], tokens)
                elif not (isinstance(query, str) and isinstance(prompt, str)):
                    name, value = ("queries", query) if not isinstance(query, str) else ("prompts", prompt)
                    bad[i] = f"{name}[{i}] is {type(value).__name__}, not str"
                    logger.error("speechgrpo OpenRLHF reward: %s", bad[i])
                    completions.append(None)  # the core gives it error_value
                    continue
                else:
                    response, method = extract_response(query, prompt, tokens)
                    if method != "prompt":
                        self._warn_once(method, "speechgrpo OpenRLHF reward: the prompt is not in query %d; "
                                        "response located by rule %r (see extract_response)", i, method)
                if isinstance(labels[i], str) and not labels[i]:
                    self._warn_once("empty-label", "speechgrpo OpenRLHF reward: label %d is '' (OpenRLHF's value "
                                    "without --data.label_key): scored against an empty reference", i)
                completions.append(response)
            if group_ids is None and n > 1:  # (one sample is its own group: v0.9.1+ calls with one)
                group_ids = group_ids_of_runs([p if isinstance(p, str) else None for p in prompts]).tolist()
            result = self.adapter.score(completions, labels, group_ids=group_ids, safe=True)
            names = self._names(result)
            if result.components and not bad:  # the usual result, as it is
                return result
            components = result.components or {name: [self.error_value] * n for name in names}
            return AdapterScores(result.scores, components, {**result.errors, **bad})
        except Exception as err:  # a last guard: OpenRLHF must always get numbers
            logger.exception("speechgrpo OpenRLHF reward: unexpected error")
            return self._failed(len(queries) if isinstance(queries, (list, tuple)) else 1,
                                f"{type(err).__name__}: {err}")

    def __call__(self, queries: Any, prompts: Any, labels: Any, **kwargs: Any) -> dict[str, Any]:
        """OpenRLHF's ``reward_func``: float32 tensors of length B; extra keyword arguments are ignored.

        Returns ``{"rewards": tensor[B], "scores": tensor[B], "extra_logs": {component: tensor[B]}}``.
        """
        return _as_tensors(self.score(queries, prompts, labels))


def _as_tensors(result: AdapterScores) -> dict[str, Any]:
    """OpenRLHF's result dict of float32 tensors. ``rewards`` and ``scores`` are one tensor, and so is a
    component equal to the score (a single metric's), as in OpenRLHF's own reward-file example: OpenRLHF only
    reads them (v0.8.x concatenates the chunks' tensors, v0.9.1+ copies each sample's values into new tensors).
    Built by ``torch.frombuffer`` on a new array, at a third of ``torch.tensor``'s cost for the one-sample calls
    of OpenRLHF v0.9.1+ (and without torch's NumPy bridge)."""
    import torch

    def tensor(values: list[float]) -> Any:
        if not values:  # frombuffer refuses an empty buffer
            return torch.zeros(0, dtype=torch.float32)
        return torch.frombuffer(array.array("f", values), dtype=torch.float32)

    scores = tensor(result.scores)
    return {"rewards": scores, "scores": scores,
            "extra_logs": {name: scores if values == result.scores else tensor(values)
                           for name, values in result.components.items()}}


_REWARDS: dict[tuple[Any, ...], OpenRLHFReward] = {}
_REWARDS_LOCK = threading.Lock()


def openrlhf_reward(spec: str, *, error_value: float = 0.0,
                    special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS) -> OpenRLHFReward:
    """The :class:`OpenRLHFReward` for these settings, built once per process.

    A reward file calls this on every call rather than holding the reward in a global: v0.8.x
    pickles ``reward_func`` into Ray workers, and a function that refers only to this importable
    factory and to strings pickles anywhere; each worker builds its reward on first use.
    """
    key = (spec, float(error_value), tuple(special_tokens))
    reward = _REWARDS.get(key)  # every call of a reward file after its first (a dict read needs no lock)
    if reward is not None:
        return reward
    with _REWARDS_LOCK:
        if key not in _REWARDS:
            reward = OpenRLHFReward(spec, error_value=error_value, special_tokens=special_tokens)
            if reward.adapter.reward.group_dependent:
                raise ValueError(
                    f"reward {reward.adapter.reward.spec!r} normalizes each component within its GRPO group, but "
                    "OpenRLHF calls a reward file with one sample at a time (v0.9.1+), alone in its group, where it "
                    "scores 0 whatever the sample. Use a plain weighted sum here with OpenRLHF's own group "
                    "normalization (--algo.advantage.estimator group_norm), or a trainer that passes whole groups "
                    "(TRL, ms-swift, verl's compute_score_batch, speechgrpo train).")
            _REWARDS[key] = reward
        return _REWARDS[key]


_REWARD_FILE = '''\
r"""OpenRLHF reward function: speechgrpo reward {spec!r}.

Written by `speechgrpo openrlhf-reward-file` (speechgrpo {version}). Pass this file to OpenRLHF:
    --reward.remote_url {path} --data.label_key <label column>   (OpenRLHF >= 0.10.2)
    --remote_rm_url {path} --label_key <label column>            (older)
Reward signature: {signature}
"""

from speechgrpo.grpo_adapters.openrlhf import openrlhf_reward

SPEC = {spec!r}
OPTIONS = {options!r}

openrlhf_reward(SPEC, **OPTIONS)  # built at import: a bad spec or a missing extra fails here, not mid-run


def reward_func(queries, prompts, labels, **kwargs):
    """Never raises: unusable samples get OPTIONS["error_value"] and the reason is logged."""
    return openrlhf_reward(SPEC, **OPTIONS)(queries, prompts, labels, **kwargs)
'''


def write_reward_file(path: str | Path, spec: str, *, error_value: float = 0.0,
                      special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS) -> Path:
    """Write an OpenRLHF reward file for ``spec`` to ``path`` (overwritten) and return the path.

    The file is a few lines: it imports speechgrpo and builds the reward once at import. The reward
    is built here first, so a bad spec raises :class:`~speechgrpo.rewards.SpecError` now.
    """
    reward = openrlhf_reward(spec, error_value=error_value, special_tokens=special_tokens)
    path = Path(path)
    options = {"error_value": reward.error_value, "special_tokens": reward.special_tokens}
    path.write_text(_REWARD_FILE.format(spec=spec, version=__version__, path=path.resolve(),
                                        signature=reward.signature, options=options), encoding="utf-8")
    return path


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``speechgrpo openrlhf-reward-file`` (runs :func:`cli_main` through ``args.run``)."""
    parser = subparsers.add_parser("openrlhf-reward-file", help="write an OpenRLHF reward file for a reward spec",
                                   description="Write a reward file for OpenRLHF's --reward.remote_url "
                                               "(--remote_rm_url before v0.10.2).")
    parser.add_argument("--reward", required=True, help="reward spec, e.g. '0.7*bleu + 0.3*chrf'")
    parser.add_argument("-o", "--output", required=True, help="the .py file to write (overwritten)")
    parser.add_argument("--error-value", type=float, default=0.0,
                        help="score of a sample that cannot be scored (default: 0.0)")
    parser.add_argument("--special-tokens", nargs="+", metavar="TOKEN",
                        help="tokens stripped from both ends of each response (default: common EOS/pad tokens)")
    parser.set_defaults(run=cli_main)
    return parser


def cli_main(args: argparse.Namespace) -> int:
    """Write the reward file from parsed arguments (``reward``, ``output``, ``error_value``, ``special_tokens``)."""
    path = write_reward_file(args.output, args.reward, error_value=args.error_value,
                             special_tokens=args.special_tokens or DEFAULT_SPECIAL_TOKENS)
    print(f"wrote {path}; train with --reward.remote_url {path.resolve()} --data.label_key <label column>")
    return 0
