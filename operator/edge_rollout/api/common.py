"""Shared building blocks of the edgerollout.dev API: base model, conditions, selectors, durations.

Pure data: no I/O, no Kubernetes client. Every API model derives from `ApiModel` so that Python
names are snake_case, the wire is camelCase, and field docstrings become CRD descriptions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

GROUP = "edgerollout.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""Go-style durations without a sign: `30s`, `10m`, `1h30m`."""

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def x_validations(*rules: dict[str, str]) -> dict[str, Any]:
    """The `json_schema_extra` that attaches CEL rules to a field or model."""
    return {"x-kubernetes-validations": list(rules)}


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL rule with the message a user sees when it fails (say what to fix)."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


@dataclass(frozen=True)
class TextFormat:
    """A string format said in words, so that a refusal says what is allowed, not a regex.

    The same words reach users from both sides: `rule()` is the CEL rule for the CRD (used instead
    of a bare `pattern`, which the apiserver reports as the regex) and `validator()` refuses the
    same values in Python. The message gets the refused value appended:

    >>> TextFormat(r"^[0-9]+$", "must be digits, like 42").message("4x2")
    'must be digits, like 42; got "4x2"'
    """

    pattern: str
    """Anchored regex, valid in both RE2 (CEL) and Python."""
    words: str
    """What is allowed, as `must be ...`, with an example."""
    empty_ok: bool = False
    """The empty string is allowed too (an optional field)."""

    def matches(self, value: str) -> bool:
        """True when `value` has the format."""
        return (self.empty_ok and value == "") or re.fullmatch(self.pattern, value) is not None

    def message(self, value: str) -> str:
        """The refusal for `value`."""
        return f'{self.words}; got "{value}"'

    def rule(self) -> dict[str, str]:
        """The CEL rule (with maxLength on the field, its cost stays within the budget)."""
        match = f"self.matches(r'{self.pattern}')"
        out = cel(f"self == '' || {match}" if self.empty_ok else match, self.words)
        out["messageExpression"] = f"{_cel_string(self.words)} + '; got \"' + self + '\"'"
        return out

    def validator(self) -> AfterValidator:
        """The pydantic validator refusing what `rule()` refuses, with the same message."""
        return AfterValidator(self._check)

    def _check(self, value: str) -> str:
        if not self.matches(value):
            raise PydanticCustomError(
                "string_format", "{message}", {"message": self.message(value)}
            )
        return value


def _cel_string(text: str) -> str:
    """`text` as a double-quoted CEL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def defaulted(factory: Callable[[], BaseModel]) -> Any:
    """A nested object field that the apiserver fills with its defaults when omitted.

    The schema default is the whole default object, so CEL rules see every field.
    """
    default = factory().model_dump(mode="json", by_alias=True, exclude_none=True)
    return Field(default_factory=factory, json_schema_extra={"default": default})


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration.

    >>> parse_duration("1h30m")
    5400.0
    """
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration; write it like 30s, 10m or 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, docstrings as descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        extra="ignore",
        frozen=True,
    )


DURATION = TextFormat(
    DURATION_PATTERN,
    "must be a duration like 30s, 10m or 1h30m (digits followed by ms, s, m or h; no sign, no"
    " spaces)",
)

Duration = Annotated[
    str,
    Field(max_length=32, json_schema_extra=x_validations(DURATION.rule())),
    DURATION.validator(),
]

IntOrPercent = Annotated[
    int | str,
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            **x_validations(
                cel(
                    "type(self) == int ? self >= 0 : self.matches('^[0-9]{1,3}%$')"
                    " && int(self.replace('%', '')) <= 100",
                    "must be a non-negative count of nodes (e.g. 2) or a percentage from 0% to 100%"
                    " (e.g. '25%')",
                ),
            ),
        }
    ),
]

LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
LABEL_KEY = TextFormat(
    LABEL_KEY_PATTERN,
    "must be a label key such as edge or example.com/tier: up to 63 letters, digits, '-', '_' or"
    " '.', starting and ending with a letter or digit, after an optional lowercase DNS prefix"
    " and '/'",
)
LABEL_VALUE = TextFormat(
    LABEL_VALUE_PATTERN,
    "must be a label value such as canary: up to 63 letters, digits, '-', '_' or '.', starting"
    " and ending with a letter or digit (or empty)",
)
SHA256_DIGEST = TextFormat(r"^sha256:[0-9a-f]{64}$", "must be sha256:<64 lowercase hex digits>")
CONDITION_REASON = TextFormat(
    r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    "must be a CamelCase word like ReleaseNotFound: a letter, then letters, digits, '_', ',' or"
    " ':', not ending in ',' or ':'",
)


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    """What the CRD's matchLabels rules refuse, refused in Python with the same words."""
    for key, value in labels.items():
        for what, fmt, text in (("key", LABEL_KEY, key), ("value", LABEL_VALUE, value)):
            if not fmt.matches(text):
                message = f"every matchLabels {what} {fmt.message(text)}"
                raise PydanticCustomError("string_format", "{message}", {"message": message})
    return labels


class LabelSelectorRequirement(ApiModel):
    """One label requirement, as in metav1.LabelSelectorRequirement."""

    key: Annotated[str, LABEL_KEY.validator()] = Field(
        max_length=317, json_schema_extra=x_validations(LABEL_KEY.rule())
    )
    """The label key, e.g. `feature.node.kubernetes.io/cpu-cpuid.AVX2`."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values: In, NotIn, Exists or DoesNotExist."""
    values: list[Annotated[str, Field(max_length=63), LABEL_VALUE.validator()]] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra=x_validations(
            cel(
                f"self.all(v, v.matches(r'{LABEL_VALUE_PATTERN}'))",
                f"every value {LABEL_VALUE.words}",
            )
        ),
    )
    """Values for In and NotIn (at least one); must be empty for Exists and DoesNotExist."""

    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                " : (!has(self.values) || size(self.values) == 0)",
                "operators In and NotIn need at least one value; Exists and DoesNotExist take no"
                " values: fix values or operator",
            )
        )
    )


class LabelSelector(ApiModel):
    """Selects objects by their labels, as metav1.LabelSelector; empty selects everything."""

    match_labels: Annotated[
        dict[str, Annotated[str, Field(max_length=63)]], AfterValidator(_check_labels)
    ] = Field(
        default_factory=dict,
        max_length=64,
        json_schema_extra=x_validations(
            cel(
                f"self.all(k, k.matches(r'{LABEL_KEY_PATTERN}'))",
                f"every matchLabels key {LABEL_KEY.words}",
            ),
            cel(
                f"self.all(k, self[k].matches(r'{LABEL_VALUE_PATTERN}'))",
                f"every matchLabels value {LABEL_VALUE.words}",
            ),
        ),
    )
    """Labels that must all be present with these values."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=16)
    """Requirements that must all hold."""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A condition in the standard metav1.Condition shape (read by kstatus, Argo CD and Flux)."""

    type: str = Field(max_length=316)
    """Condition type: Ready, Progressing, Degraded, Reconciling or Stalled."""
    status: ConditionStatus
    """True, False or Unknown."""
    observed_generation: int = Field(default=0, ge=0)
    """The metadata.generation this condition was computed from."""
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    """When status last changed (RFC 3339)."""
    reason: Annotated[str, CONDITION_REASON.validator()] = Field(
        max_length=1024, json_schema_extra=x_validations(CONDITION_REASON.rule())
    )
    """A CamelCase word for programs: why the condition is in this state."""
    message: str = Field(default="", max_length=32768)
    """A sentence for people: what happened and what to do."""


CONDITIONS_LIST: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
"""List markers for `conditions`: one entry per type, merged by type under server-side apply."""
