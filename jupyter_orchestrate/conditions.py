"""Condition tasks (Databricks' If/else condition task): ``left op right``, evaluated by the runner without
a kernel. This module sits with :mod:`.parameters` (references are rendered the same way) so that discovery
checks literal conditions before a run with the same rules the runner evaluates them by.

The outcome is recorded as the condition task's task value ``outcome`` (``true``/``false``, readable
downstream as ``{{tasks.<key>.values.outcome}}``); tasks that declare ``depends_on: [{task_key, outcome}]`` run
only on a matching outcome and are ``skipped`` otherwise (:class:`~.active_run.ActiveRun`).

Comparison rules: ``==`` and ``!=`` compare JSON values (``1 == 1.0``; a boolean is not a number, a string is
not a number: ``"3" == 3`` is false); ``>``, ``>=``, ``<``, ``<=`` need two numbers or two strings (strings
compare by code point) and fail otherwise, naming both operands and their types.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from jupyter_orchestrate.errors import ValidationError
from jupyter_orchestrate.models import Condition, ConditionOp
from jupyter_orchestrate.parameters import references, render

#: the task value a condition task records its outcome under
OUTCOME_VALUE = "outcome"

_COMPARE = {
    ConditionOp.eq: operator.eq,
    ConditionOp.ne: operator.ne,
    ConditionOp.gt: operator.gt,
    ConditionOp.ge: operator.ge,
    ConditionOp.lt: operator.lt,
    ConditionOp.le: operator.le,
}
_SHOWN_CHARS = 200


class ConditionError(ValidationError):
    """A condition cannot be evaluated: a reference did not resolve, or the operands cannot be ordered."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "list" if isinstance(value, list) else "object"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def compare(left: Any, op: ConditionOp, right: Any) -> bool:
    """``left op right`` under the module's comparison rules.

    Raises:
        ConditionError: an ordering operator on operands that are not two numbers or two strings.
    """
    kinds = (_kind(left), _kind(right))
    if op in (ConditionOp.eq, ConditionOp.ne):
        same = kinds[0] == kinds[1] and left == right
        return same if op == ConditionOp.eq else not same
    if kinds not in (("number", "number"), ("string", "string")):
        raise ConditionError(
            f"cannot compare {_shown(left)} ({kinds[0]}) {op.value} {_shown(right)} ({kinds[1]}): "
            "ordering needs two numbers or two strings"
        )
    return bool(_COMPARE[op](left, right))


def evaluate(condition: Condition, context: Mapping[str, Any]) -> tuple[bool, str]:
    """Resolve both operands against ``context`` (the runner's reference context:
    :meth:`~.runner.Runner.context`) and compare them.

    Returns: ``(outcome, description)``, the description as ``show`` prints it: ``12 > 0 is true``.

    Raises:
        ConditionError: a reference does not resolve (the upstream task did not set that task value) or the
            operands cannot be ordered; the message names the condition.
    """
    try:
        left, right = render(condition.left, context), render(condition.right, context)
    except ValidationError as exc:
        raise ConditionError(f"condition {condition}: {exc}") from None
    outcome = compare(left, condition.op, right)
    return outcome, f"{_shown(left)} {condition.op.value} {_shown(right)} is {'true' if outcome else 'false'}"


def literal_problem(condition: Condition) -> str | None:
    """Before the run: a condition whose operands are both literal (no references) and cannot be compared
    (``"a" > 1``). Returns the problem's message, or None."""
    if references(condition.left) or references(condition.right):
        return None
    try:
        compare(condition.left, condition.op, condition.right)
    except ConditionError as exc:
        return str(exc)
    return None
