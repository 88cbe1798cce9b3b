"""The condition grammar of analysis metrics: `result < 0.05`, `result >= 0.9 && result <= 1`.

Pure and small on purpose: a condition is comparisons of `result` (or `result[0]`) with a number,
joined by `&&` and `||` (`&&` binds first, no parentheses). It is parsed into data and evaluated
by comparing floats; nothing is ever passed to `eval`. api/analysis.CONDITION is the same
grammar as a regex (the CRD refuses what `parse` refuses).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_NUMBER = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_COMPARISON = re.compile(rf" *result(?:\[0\])? *(<=|>=|==|!=|<|>) *({_NUMBER}) *")


class ConditionError(ValueError):
    """A condition outside the grammar; the message says what is allowed."""


@dataclass(frozen=True)
class Comparison:
    """`result <op> number`."""

    op: str
    number: float

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.number)


Condition = tuple[tuple[Comparison, ...], ...]
"""Alternatives (joined by ||), each a conjunction of comparisons (joined by &&)."""


def parse(text: str) -> Condition:
    """The condition in `text`.

    >>> parse("result < 0.05")
    ((Comparison(op='<', number=0.05),),)
    >>> len(parse("result[0] >= 0.9 && result <= 1 || result == -1"))
    2
    """
    alternatives = []
    for alternative in text.split("||"):
        conjunction = []
        for part in alternative.split("&&"):
            match = _COMPARISON.fullmatch(part)
            if match is None:
                raise ConditionError(
                    f'"{part.strip()}" in condition "{text}" is not `result <op> number`'
                    " (<, <=, >, >=, ==, !=), like result < 0.05"
                )
            conjunction.append(Comparison(match[1], float(match[2])))
        alternatives.append(tuple(conjunction))
    return tuple(alternatives)


def holds(condition: Condition, value: float) -> bool:
    """Whether `value` satisfies the condition; NaN satisfies no comparison but `!=`.

    >>> holds(parse("result < 0.05 || result > 10"), 0.01), holds(parse("result < 0.05"), 0.5)
    (True, False)
    """
    return any(all(c.holds(value) for c in conjunction) for conjunction in condition)


def is_number(text: str) -> bool:
    """Prometheus wrote a finite or infinite number (not NaN) in `text`."""
    try:
        return not math.isnan(float(text))
    except ValueError:
        return False
