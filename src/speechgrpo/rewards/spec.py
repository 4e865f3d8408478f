"""Reward spec strings: ``"0.7*bleu + 0.3*bertscore"`` and friends.

Grammar (parsed with Python's ``ast``, never evaluated):

    spec   := term ("+" term)*                       weighted sum
    term   := [number "*"] call | call "*" number
    call   := name | name "(" args ")"
    name   := a registered reward, or min / product / gdpo / gate / overlong

Keyword arguments take literals (numbers, strings, booleans, None). Examples::

    bleu
    bleu(tokenize='intl', lowercase=True)
    0.7*bleu + 0.3*bertscore(batch_size=128)
    min(bleu, chrf)
    gdpo(0.5*bleu + 0.5*wer)
    gate(script(scripts='LATIN'), bleu)
    overlong(bleu, max_length=200, cache_length=50, unit='tokens')
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

from speechgrpo._validation import check_weight
from speechgrpo.rewards.base import Reward
from speechgrpo.rewards.composite import GroupNormalizedSum, Minimum, Product, WeightedSum
from speechgrpo.rewards.function_reward import FunctionReward
from speechgrpo.rewards.gate import Gate
from speechgrpo.rewards.registry import get_reward
from speechgrpo.rewards.shaping import OverlongPenalty


class SpecError(ValueError):
    """A reward spec string that does not parse; the message points at the offending part."""


def _literal(node: ast.expr, spec: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError as err:
        raise SpecError(f"argument {ast.get_source_segment(spec, node)!r} in {spec!r} is not a literal") from err


def _terms(node: ast.expr, spec: str) -> list[tuple[float, ast.expr]]:
    """Flatten ``a + b + c`` into (weight, reward node) terms."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _terms(node.left, spec) + _terms(node.right, spec)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        for weight_node, reward_node in ((node.left, node.right), (node.right, node.left)):
            if isinstance(weight_node, (ast.Constant, ast.UnaryOp)) and isinstance(reward_node, (ast.Name, ast.Call)):
                value = _literal(weight_node, spec)
                try:
                    weight = check_weight(value, f"weight {value!r}")
                except (TypeError, ValueError) as err:
                    raise SpecError(f"{err} in {spec!r}") from err
                return [(weight, reward_node)]
        raise SpecError(f"{ast.get_source_segment(spec, node)!r} in {spec!r}: write weight*reward")
    if isinstance(node, ast.BinOp):
        raise SpecError(f"operator in {ast.get_source_segment(spec, node)!r} of {spec!r} is not supported; "
                        "use +, weight*reward, min(), product(), gdpo()")
    if isinstance(node, ast.UnaryOp):
        raise SpecError(f"{ast.get_source_segment(spec, node)!r} in {spec!r}: negative weights are not allowed")
    return [(1.0, node)]


def _expression(node: ast.expr, spec: str) -> Reward:
    terms = _terms(node, spec)
    if len(terms) == 1 and terms[0][0] == 1.0:
        return _call(terms[0][1], spec)
    return WeightedSum([(weight, _call(term, spec)) for weight, term in terms])


_COMBINATORS: dict[str, Callable[..., Reward]] = {
    "min": lambda *rewards, **kw: Minimum(list(rewards), **kw),
    "product": lambda *rewards, **kw: Product(list(rewards), **kw),
    "gate": lambda check, reward, **kw: Gate(check, reward, **kw),
    "overlong": lambda reward, **kw: OverlongPenalty(reward, **kw),
}


def _call(node: ast.expr, spec: str) -> Reward:
    keywords: dict[str, Any] = {}
    args: list[ast.expr] = []
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        args = list(node.args)
        for kw in node.keywords:
            if kw.arg is None:
                raise SpecError(f"**kwargs are not supported in {spec!r}")
            keywords[kw.arg] = _literal(kw.value, spec)
    else:
        raise SpecError(f"{ast.get_source_segment(spec, node)!r} in {spec!r} is not a reward")
    try:
        if name == "gdpo":
            if len(args) != 1:
                raise SpecError(f"gdpo() takes one weighted sum, e.g. gdpo(0.5*bleu + 0.5*wer), in {spec!r}")
            terms = [(w, _call(t, spec)) for w, t in _terms(args[0], spec)]
            return GroupNormalizedSum(terms, **keywords)
        if name in _COMBINATORS:
            return _COMBINATORS[name](*(_expression(a, spec) for a in args), **keywords)
        if args:
            raise SpecError(f"{name}() takes keyword arguments only, in {spec!r}")
        return get_reward(name, **keywords)
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, SpecError):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        raise SpecError(f"{message} (in {spec!r})") from err


def spec_slug(spec: str) -> str:
    """A spec as a name for files, folders and command-line lists: ``0.7*bleu + 0.3*chrf`` ->
    ``0.7xbleu_0.3xchrf`` (letters, digits, ``_ . -`` only)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.replace("*", "x")).strip("_")


def parse_reward(spec: str) -> Reward:
    """Build a reward from a spec string (see the module docstring for the grammar)."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"a reward spec must be a non-empty string, got {spec!r}")
    try:
        tree = ast.parse(spec.strip(), mode="eval")
    except SyntaxError as err:
        raise SpecError(f"cannot parse reward spec {spec!r}: {err.msg}") from err
    return _expression(tree.body, spec.strip())


def as_reward(reward: str | Reward | Callable[..., Any]) -> Reward:
    """A spec string, a Reward, or a plain batched function ``fn(completions, references, **extra)``."""
    if isinstance(reward, Reward):
        return reward
    if isinstance(reward, str):
        return parse_reward(reward)
    if callable(reward):
        return FunctionReward(reward)
    raise TypeError(f"expected a spec string, a Reward or a function, got {type(reward).__name__}")
