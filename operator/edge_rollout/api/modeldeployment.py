"""ModelDeployment: which model version goes to which edge nodes, and how it rolls out.

The user owns `spec` (kubectl, Helm, Argo CD, Flux); the operator owns `status`. Field names follow
what users of Argo Rollouts (steps, maxUnavailable), Greengrass (abort criteria), Seldon
(requirements), Open Horizon (priority) and system-upgrade-controller (window) already know.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from edge_rollout.api.analysis import RUNS_KEPT, Analysis, AnalysisRun
from edge_rollout.api.common import (
    CONDITIONS_LIST,
    ApiModel,
    Condition,
    Duration,
    IntOrPercent,
    LabelSelector,
    TextFormat,
    cel,
    defaulted,
    x_validations,
)

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$"
NAME_WORDS = (
    "must be lowercase letters, digits, '-', '.' or '_', starting and ending with a letter or digit"
)


def name_format(example: str) -> TextFormat:
    """The format of model, variant and step names, with an example fitting the field."""
    return TextFormat(NAME_PATTERN, f"{NAME_WORDS}, like {example}")


MODEL_NAME = name_format("resnet50-int8")
VARIANT_NAME = name_format("int8-cpu")
STEP_NAME = name_format("canary")
VERSION = TextFormat(
    r"^[A-Za-z0-9][A-Za-z0-9._+-]*$",
    "must be a letter or digit followed by letters, digits, '.', '_', '+' or '-' (no spaces or"
    " '/'), like 1.4.0 or 2.0.0-rc.1",
)
CLOCK_TIME = TextFormat(
    r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
    "must be a 24-hour time HH:MM from 00:00 to 23:59, like 02:30 (hours and minutes, no seconds)",
)
BANDWIDTH = TextFormat(
    r"^[0-9]+(k|Ki|M|Mi|G|Gi)?$",
    "must be bytes per second: a whole number with an optional k, Ki, M, Mi, G or Gi suffix, like"
    " 2Mi or 500k (empty for no cap)",
    empty_ok=True,
)


def _named(fmt: TextFormat) -> object:
    """The Annotated metadata of a name field: its length limits and format."""
    return Field(min_length=1, max_length=63, json_schema_extra=x_validations(fmt.rule()))


VariantName = Annotated[str, _named(VARIANT_NAME), VARIANT_NAME.validator()]
StepName = Annotated[str, _named(STEP_NAME), STEP_NAME.validator()]
ClockTime = Annotated[
    str,
    # maxLength above 5, so that 02:30:00 gets the HH:MM rule rather than "Too long"
    Field(max_length=16, json_schema_extra=x_validations(CLOCK_TIME.rule())),
    CLOCK_TIME.validator(),
]
Precision = Literal["fp32", "fp16", "int8", "int4"]


@functools.cache
def _iana_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_iana_zone(name: str) -> bool:
    """`name` is in the IANA time zone database (when the machine has none, every name is).

    >>> is_iana_zone("Europe/Berlin"), is_iana_zone("UTC+2"), is_iana_zone("Mars/Olympus")
    (True, False, False)
    """
    zones = _iana_zones()
    return not zones or name in zones


def _check_zone(name: str) -> str:
    if name and not is_iana_zone(name):
        message = (
            f'"{name}" is not an IANA time zone: use a name like Europe/Berlin or UTC (an offset'
            " is not a zone: for UTC+2 write Etc/GMT-2), or leave it empty for the node's zone"
        )
        raise PydanticCustomError("time_zone", "{message}", {"message": message})
    return name


SMALL_SELECTOR_LIMITS = (4, 2, 8)
"""matchLabels, matchExpressions, values per expression: the most a pin's or the canary
selector may have (they pick a few labelled nodes), keeping the spec's largest size within what
kubectl apply can store (see docs/troubleshooting.md, "Sizes")."""


def _small_selector_rule(path: str, what: str, optional: bool = False) -> dict[str, str]:
    labels, expressions, values = SMALL_SELECTOR_LIMITS
    s = f"self.{path}"
    rule = (
        f"(!has({s}.matchLabels) || size({s}.matchLabels) <= {labels})"
        f" && (!has({s}.matchExpressions) || (size({s}.matchExpressions) <= {expressions}"
        f" && {s}.matchExpressions.all(e, !has(e.values) || size(e.values) <= {values})))"
    )
    if optional:
        rule = f"!has({s}) || ({rule})"
    message = (
        f"{what} may have at most {labels} matchLabels and {expressions} matchExpressions of at"
        f" most {values} values: label the nodes (kubectl label node NAME ring=canary) and"
        " select that label"
    )
    return cel(rule, message, f".{path}")


def _small(selector: LabelSelector | None, what: str) -> None:
    """Refuse in Python what `_small_selector_rule` refuses in the CRD."""
    if selector is None:
        return
    labels, expressions, values = SMALL_SELECTOR_LIMITS
    if (
        len(selector.match_labels) > labels
        or len(selector.match_expressions) > expressions
        or any(len(e.values) > values for e in selector.match_expressions)
    ):
        rule = _small_selector_rule("x", what)
        raise PydanticCustomError("selector_size", "{message}", {"message": rule["message"]})


MAX_UNAVAILABLE_RULE = cel(
    "!has(self.maxUnavailable) || (type(self.maxUnavailable) == int ? self.maxUnavailable >= 1"
    " : !self.maxUnavailable.matches('^0+%$'))",
    "maxUnavailable 0 would never let a node update: use at least 1, or a percentage such as"
    " 25% (a percentage rounds down but never below 1 node)",
    ".maxUnavailable",
)
AcceleratorClass = Literal["npu", "gpu", "cpu"]


KEY_ID = name_format("release-2026")
MAX_TRUSTED_KEYS = 4
"""Enough for a rotation (old and new key) with room for an overlap; each key is checked."""
TRUSTED_KEYS_SCHEMA_LIMIT = MAX_TRUSTED_KEYS + 1
"""The schema's maxItems: above MAX_TRUSTED_KEYS, so that the CEL rule saying what to do
answers a list of 5 rather than the apiserver's bare `Too many`."""
IMPLICIT_KEY_ID = "publicKey"
"""The id `publicKey` goes by in the trust set (no trustedKeys id can be it: ids are lowercase)."""
TRUSTED_KEYS_RULES = (
    cel(
        f"size(self) <= {MAX_TRUSTED_KEYS}",
        f"trustedKeys may hold at most {MAX_TRUSTED_KEYS} keys: remove keys no release you still"
        " run is signed by (countersign those with a newer key first: docs/operations.md,"
        ' "Rotating the signing key")',
    ),
    cel(
        "self.all(k, self.exists_one(j, j.id == k.id))",
        "trustedKeys ids must be unique: give each key its own id, e.g. the year it was made"
        " (release-2026, release-2027)",
    ),
)


class TrustedKey(ApiModel):
    """A public key whose signatures make a release valid (TUF's keyid and key, cosign's
    --key), under an id people and error messages name it by."""

    id: Annotated[str, KEY_ID.validator()] = Field(
        min_length=1, max_length=63, json_schema_extra=x_validations(KEY_ID.rule())
    )
    """The name of the key, e.g. `release-2026`; errors show it next to the key id signatures
    carry (16 hex digits of the key's sha256, `edge-rollout keygen` prints it)."""
    public_key: str = Field(min_length=1, max_length=160)
    """The ed25519 public key (PEM, or raw base64) as `edge-rollout keygen` printed it (a PEM
    is 113 characters)."""


class StoreRef(ApiModel):
    """Where the release lives and which keys may sign it."""

    url: str = Field(
        max_length=2048,
        json_schema_extra=x_validations(
            cel(
                "self.startsWith('http://') || self.startsWith('https://') ||"
                " self.startsWith('file:///')",
                "store url must start with http://, https:// or file:/// (an absolute path),"
                " e.g. https://models.example.com/store",
            ),
            cel(
                "!self.endsWith('/index.json') && !self.endsWith('/index.json.sig')",
                "store url must be the store's base URL, not a file in it: drop the trailing"
                " models/<model>/<version>/index.json (the operator adds it), e.g."
                " https://models.example.com/store",
            ),
        ),
    )
    """Base URL of the store: `https://…`, `http://…` or `file:///absolute/path`."""
    public_key: str = Field(default="", max_length=4096)
    """An ed25519 public key (PEM, or raw base64) that signs this model's releases; trusted
    along with trustedKeys (as id `publicKey`). Empty, with no trustedKeys, means the operator's
    default trusted keys."""
    trusted_keys: list[TrustedKey] = Field(
        default_factory=list,
        max_length=TRUSTED_KEYS_SCHEMA_LIMIT,
        json_schema_extra=x_validations(*TRUSTED_KEYS_RULES),
    )
    """Public keys that sign this model's releases: a release (index and manifests) is valid
    when any one of its signatures is by one of them. Add the new key here before publishing
    with it; remove the old one once no release you may roll back to is signed only by it."""

    @model_validator(mode="after")
    def _few_unique_ids(self) -> StoreRef:
        """Refuse in Python what TRUSTED_KEYS_RULES refuse in the CRD."""
        ids = [k.id for k in self.trusted_keys]
        broken = [len(ids) > MAX_TRUSTED_KEYS, len(set(ids)) != len(ids)]
        for rule, bad in zip(TRUSTED_KEYS_RULES, broken, strict=True):
            if bad:
                message = rule["message"]
                raise PydanticCustomError("trusted_keys", "{message}", {"message": message})
        return self

    def trust_set(self) -> list[tuple[str, str]]:
        """(id, public key) of every key this store trusts."""
        return trust_pairs(self.public_key, self.trusted_keys)


def trust_pairs(public_key: str, trusted_keys: Sequence[TrustedKey]) -> list[tuple[str, str]]:
    """(id, public key) of every trusted key: publicKey (id `publicKey`) first, then the rest.

    >>> trust_pairs("A", [TrustedKey(id="new", public_key="B")])
    [('publicKey', 'A'), ('new', 'B')]
    """
    implicit = [(IMPLICIT_KEY_ID, public_key)] if public_key.strip() else []
    return implicit + [(k.id, k.public_key) for k in trusted_keys]


class ModelRef(ApiModel):
    """The model and the release of it to run."""

    name: Annotated[str, MODEL_NAME.validator()] = Field(
        min_length=1,
        max_length=63,
        json_schema_extra=x_validations(
            MODEL_NAME.rule(),
            cel(
                "self == oldSelf",
                "model.name cannot change after creation: create a new ModelDeployment"
                " for another model",
            ),
        ),
    )
    """Model name in the store (`models/<name>/…`). Immutable."""
    version: Annotated[str, VERSION.validator()] = Field(
        min_length=1, max_length=128, json_schema_extra=x_validations(VERSION.rule())
    )
    """Release version to roll out, e.g. `1.4.0`. Changing it starts a rollout."""
    store: StoreRef
    """The store that serves the release."""


class VariantPin(ApiModel):
    """Force one variant on the nodes a selector picks (e.g. a lab rack that must run fp32)."""

    node_selector: LabelSelector
    """Nodes the pin applies to (at most 4 matchLabels and 2 matchExpressions)."""
    variant: VariantName
    """Variant name from the release index, e.g. `int8-cpu`."""

    model_config = ConfigDict(
        json_schema_extra=x_validations(
            _small_selector_rule("nodeSelector", "a pin's nodeSelector")
        )
    )

    @model_validator(mode="after")
    def _pin_selector_small(self) -> VariantPin:
        _small(self.node_selector, "a pin's nodeSelector")
        return self


class SelectionPolicy(ApiModel):
    """How the operator picks a variant for each node: filter, then score."""

    prefer: Literal["quality", "latency", "size"] = "quality"
    """What decides between variants that fit: the best agreement with fp32 (quality), the lowest
    measured latency (latency), or the smallest memory and download (size)."""
    allowed_precisions: list[Precision] = Field(
        default_factory=lambda: list[Precision](["fp32", "fp16", "int8", "int4"]),
        min_length=1,
        max_length=4,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """Precisions that may be used at all."""
    min_agreement: float = Field(default=0.0, ge=0.0, le=1.0)
    """Lowest agreement with fp32 outputs (0 to 1, measured at publish time) a variant may have."""
    memory_headroom_percent: int = Field(default=10, ge=0, le=90)
    """Share of a node's memory kept free when fitting models."""
    pins: list[VariantPin] = Field(default_factory=list, max_length=16)
    """Variants forced on nodes by label; the first matching pin wins."""
    allowed_variants: list[VariantName] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """If set, only these variants of the release may be chosen."""


class Pause(ApiModel):
    """Wait before the next step: for a duration, or (no duration) until resumed."""

    duration: Duration | None = None
    """How long to wait, e.g. `10m`. Omit to wait until `kubectl edge-rollout resume`."""


class Step(ApiModel):
    """One rollout step; exactly one of setNodePercent, setNodeCount or pause."""

    name: StepName | None = None
    """Optional name shown in status and events; unique within the steps."""
    set_node_percent: int | None = Field(default=None, ge=0, le=100)
    """Bring the new version to this percentage of the selected nodes (0 to 100)."""
    set_node_count: int | None = Field(default=None, ge=0, le=1_000_000)
    """Bring the new version to this many of the selected nodes."""
    pause: Pause | None = None
    """Wait before the next step."""

    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel(
                "[has(self.setNodePercent), has(self.setNodeCount), has(self.pause)]"
                ".filter(x, x).size() == 1",
                "each step sets exactly one of setNodePercent, setNodeCount or pause",
            )
        )
    )


class Approval(ApiModel):
    """Let a rollout of one version pass its pauses up to a step (`kubectl edge-rollout promote`).

    Kept in spec so GitOps users can write it in Git; bound to a version so it never carries over
    to the next rollout.
    """

    version: Annotated[str, VERSION.validator()] = Field(
        min_length=1, max_length=128, json_schema_extra=x_validations(VERSION.rule())
    )
    """The version this approval is for."""
    through_step: int = Field(ge=0, le=64)
    """Pauses at step indexes up to and including this one are passed."""


class Strategy(ApiModel):
    """Waves over nodes, in Argo Rollouts' vocabulary adapted to nodes."""

    canary_selector: LabelSelector | None = None
    """Nodes that go first, before any other node, e.g. `matchLabels: {ring: canary}`."""
    steps: list[Step] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra=x_validations(
            cel(
                "self.all(s, !has(s.name) || self.filter(t, has(t.name) && t.name == s.name)"
                ".size() == 1)",
                "step names must be unique: rename or remove the duplicate step",
            )
        ),
    )
    """Steps in order; after the last one every selected node gets the new version.
    Empty means all nodes at once, limited by maxUnavailable."""
    max_unavailable: Annotated[IntOrPercent, Field(json_schema_extra={"maxLength": 4})] = "25%"
    """Most nodes updating or failed at once: a count (2) or a percentage of selected nodes."""
    progress_deadline_seconds: int = Field(default=600, ge=10, le=86_400)
    """A node that is not Ready on the new version this long after it was asked counts as
    TimedOut."""
    min_ready_seconds: int = Field(default=30, ge=0, le=86_400)
    """A node counts as updated only after it has been Ready on the new version this long."""
    approved: Approval | None = None
    """Pass the pauses of this version's rollout up to a step (a promote, written in spec)."""
    analysis: Analysis | None = None
    """Prometheus queries judged after each setNodePercent or setNodeCount step, before the
    rollout moves on; a failed analysis aborts the rollout. Omit for none."""

    model_config = ConfigDict(
        json_schema_extra=x_validations(
            MAX_UNAVAILABLE_RULE,
            _small_selector_rule("canarySelector", "strategy.canarySelector", optional=True),
        )
    )

    @model_validator(mode="after")
    def _checked(self) -> Strategy:
        _small(self.canary_selector, "strategy.canarySelector")
        value = self.max_unavailable
        if value == 0 or (isinstance(value, str) and re.fullmatch(r"0+%", value)):
            message = MAX_UNAVAILABLE_RULE["message"]
            raise PydanticCustomError("max_unavailable", "{message}", {"message": message})
        return self


HTTP_URL = TextFormat(
    r"^https?://[^ /?#]+(/[^ ]*)?$",
    "must be an http:// or https:// URL the node itself can reach, like"
    " http://127.0.0.1:8000/healthz",
)


class HttpGetCheck(ApiModel):
    """An HTTP GET the agent sends on the node; any 2xx answer is healthy (a Kubernetes
    httpGet probe, with the whole URL)."""

    url: Annotated[str, HTTP_URL.validator()] = Field(
        max_length=512, json_schema_extra=x_validations(HTTP_URL.rule())
    )
    """URL to GET from the node, usually loopback (the application beside the agent), like
    `http://127.0.0.1:8000/healthz`; redirects are not followed."""


class ExecCheck(ApiModel):
    """A command the agent runs on the node; exit status 0 is healthy (a Kubernetes exec
    probe)."""

    command: list[Annotated[str, Field(max_length=256)]] = Field(min_length=1, max_length=8)
    """argv of the command, run without a shell as the agent's user, like
    `["/usr/local/bin/app-health", "--model", "resnet"]`."""


class AppCheck(ApiModel):
    """The application's own health on the new version, checked on the node after `current`
    switches (the commit step of Mender and Greengrass): not healthy within timeoutSeconds, the
    agent switches back to `previous` and reports AppUnhealthy (release-wide: no other variant is
    tried)."""

    http_get: HttpGetCheck | None = None
    """Healthy when a GET of this URL answers 2xx."""
    exec: ExecCheck | None = None
    """Healthy when this command exits 0."""
    timeout_seconds: int = Field(default=30, ge=1, le=3600)
    """How long the application may take to become healthy on the new version."""
    period_seconds: int = Field(default=2, ge=1, le=300)
    """Seconds between attempts (each attempt may take at most this long)."""

    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel(
                "has(self.httpGet) != has(self.exec)",
                "appCheck needs exactly one of httpGet or exec",
            )
        )
    )

    @model_validator(mode="after")
    def _one_kind(self) -> AppCheck:
        if (self.http_get is None) == (self.exec is None):
            raise PydanticCustomError(
                "app_check",
                "{message}",
                {"message": "appCheck needs exactly one of httpGet or exec"},
            )
        return self


class HealthGate(ApiModel):
    """What an agent must prove before a node counts as healthy on the new version."""

    require_test_vectors: bool = True
    """Run the golden test vectors shipped with the release before the new version goes active;
    when none agrees the node fails with TestVectorMismatch (release-wide: no other variant is
    tried)."""
    max_latency_ms: float | None = Field(default=None, ge=0.0, le=600_000.0)
    """Highest p95 latency of one inference, measured on the node before the new version goes
    active, in milliseconds; above it the node fails with LatencyAboveGate and the operator tries
    the next variant. Omit for no limit."""
    min_agreement: float = Field(default=1.0, ge=0.0, le=1.0)
    """Lowest share (0 to 1) of the golden test vectors whose outputs must agree with the expected
    ones when they run (1, the default: every one); below it, with at least one agreeing, the node
    fails with AgreementBelowGate and the operator tries the next variant."""
    app_check: AppCheck | None = None
    """The application's health check the agent runs after switching to the new version; omit
    for none."""


class AbortCriterion(ApiModel):
    """Stop the rollout when too many finished nodes fail (Greengrass abortConfig)."""

    failure_type: Literal["Failed", "TimedOut", "All"] = "All"
    """Which outcomes count: Failed (load or test failed), TimedOut (progress deadline) or All."""
    threshold_percentage: int = Field(ge=0, le=100)
    """Abort when this percentage (0 to 100) of finished nodes failed this way."""
    min_number_of_executed_nodes: int = Field(default=1, ge=1, le=1_000_000)
    """Judge only after at least this many nodes finished."""


class Abort(ApiModel):
    """When to stop a rollout, and what to do then."""

    criteria: list[AbortCriterion] = Field(default_factory=list, max_length=8)
    """Any matching criterion aborts the rollout."""
    failure_handling_policy: Literal["Rollback", "Pause"] = "Rollback"
    """On abort: Rollback (every node returns to the stable version) or Pause (leave nodes as they
    are and wait for a person)."""


class Window(ApiModel):
    """When nodes may update (system-upgrade-controller's window); times in the node's zone."""

    days: list[Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]] = Field(
        default_factory=list,
        max_length=7,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """Days the window opens; empty means every day."""
    start_time: ClockTime
    """Opening time, `HH:MM` (24 h)."""
    end_time: ClockTime
    """Closing time, `HH:MM`; earlier than startTime means the window spans midnight."""
    time_zone: Annotated[str, AfterValidator(_check_zone)] = Field(default="", max_length=64)
    """IANA zone such as `Europe/Berlin`; empty means the node's local zone. A name the IANA
    database does not have stalls the deployment (InvalidSpec) before any node is touched."""

    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel(
                "self.startTime != self.endTime",
                "window startTime and endTime must differ (for a window open all day, omit window)",
            )
        )
    )


class Delivery(ApiModel):
    """How bytes reach the node."""

    delta: Literal["Preferred", "Required", "Off"] = "Preferred"
    """Use deltas against what the node holds: Preferred, Required (never a full download) or
    Off."""
    metered: Literal["Wait", "DeltaOnly", "Allow"] = "Wait"
    """On a metered link: Wait for an unmetered one, fetch DeltaOnly, or Allow everything."""
    max_bandwidth: Annotated[str, BANDWIDTH.validator()] = Field(
        default="", max_length=16, json_schema_extra=x_validations(BANDWIDTH.rule())
    )
    """Cap on download speed per node in bytes per second, e.g. `2Mi`; empty means no cap."""

    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel(
                "self.delta != 'Off' || self.metered != 'DeltaOnly'",
                "metered: DeltaOnly needs deltas: set delta to Preferred or Required,"
                " or metered to Wait or Allow",
            )
        )
    )


class UpdatePolicy(ApiModel):
    """When and how nodes may take the update."""

    window: Window | None = None
    """Maintenance window; omit to update at any time."""
    delivery: Delivery = defaulted(Delivery)
    """Network and delta policy."""


class ModelDeploymentSpec(ApiModel):
    """Desired state of a ModelDeployment."""

    model: ModelRef
    """Which model and release."""
    node_selector: LabelSelector = defaulted(LabelSelector)
    """Nodes (by Node labels) that run this model; empty selects every node with an agent."""
    priority: int = Field(default=0, ge=-1000, le=1000)
    """When models on a node compete for memory, higher priority fits first; lower ones get a
    smaller variant or none."""
    selection: SelectionPolicy = defaulted(SelectionPolicy)
    """How a variant is chosen for each node."""
    strategy: Strategy = defaulted(Strategy)
    """How the rollout proceeds over nodes."""
    health_gate: HealthGate = defaulted(HealthGate)
    """What makes a node healthy on the new version."""
    abort: Abort = defaulted(Abort)
    """When to stop and roll back."""
    update_policy: UpdatePolicy = defaulted(UpdatePolicy)
    """When and how nodes take the update."""
    paused: bool = False
    """Freeze the rollout where it is: no new nodes are asked to update."""


class NodeReport(ApiModel):
    """One node worth a look: failing, stuck or rolled back."""

    node: str = Field(max_length=253)
    """Node name."""
    phase: str = Field(max_length=32)
    """The node's phase for this model."""
    reason: str = Field(default="", max_length=128)
    """CamelCase reason."""
    message: str = Field(default="", max_length=1024)
    """What went wrong and what to do."""
    since: str = Field(default="", max_length=64)
    """When the node entered this phase (RFC 3339), as its agent reported it."""


class VariantCount(ApiModel):
    """How many nodes were given one variant."""

    variant: str = Field(max_length=63)
    """Variant name."""
    nodes: int = Field(default=0, ge=0)
    """Number of nodes."""


class PhaseCounts(ApiModel):
    """Nodes by rollout outcome (Azure ADU's Targeted/Applied/Succeeded/Failed)."""

    targeted: int = Field(default=0, ge=0)
    """Nodes selected by nodeSelector."""
    applied: int = Field(default=0, ge=0)
    """Nodes asked to run the target version."""
    succeeded: int = Field(default=0, ge=0)
    """Nodes Ready on the target version."""
    failed: int = Field(default=0, ge=0)
    """Nodes that do not run the target version and will not without a change: Failed or
    TimedOut on it, no fitting variant, or no agent. After an abort, the nodes that failed (kept
    until the next version)."""
    pending: int = Field(default=0, ge=0)
    """Nodes not yet asked, or working on it."""


class ModelDeploymentStatus(ApiModel):
    """Observed state, written by the operator only."""

    observed_generation: int = Field(default=0, ge=0)
    """The metadata.generation the operator last acted on."""
    phase: Literal[
        "", "Pending", "Progressing", "Paused", "Ready", "Degraded", "RolledBack", "Failed"
    ] = ""
    """One word for people: Pending, Progressing, Paused, Ready, Degraded, RolledBack or Failed."""
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, json_schema_extra=CONDITIONS_LIST
    )
    """Ready, Progressing, Degraded, Reconciling and Stalled, with reasons."""
    stable_version: str = Field(default="", max_length=128)
    """The version every node falls back to: the last one that completed."""
    target_version: str = Field(default="", max_length=128)
    """The version being rolled out."""
    abort_reason: str = Field(default="", max_length=1024)
    """Why the rollout of targetVersion was aborted (empty while it is not); an aborted rollout
    stays aborted until spec.model.version changes."""
    current_step_index: int = Field(default=0, ge=0)
    """Index of the step in progress (equal to the number of steps when all are done)."""
    step_started_at: str = Field(default="", max_length=64)
    """When the current step began (RFC 3339), for pauses with a duration."""
    counts: PhaseCounts = Field(default_factory=PhaseCounts)
    """Nodes by outcome."""
    variants: list[VariantCount] = Field(default_factory=list, max_length=64)
    """Nodes by chosen variant."""
    bytes_fetched: int = Field(default=0, ge=0)
    """Bytes downloaded across the fleet for the target version."""
    bytes_reused: int = Field(default=0, ge=0)
    """Bytes taken from files the nodes already held (what deltas saved)."""
    worst_nodes: list[NodeReport] = Field(default_factory=list, max_length=10)
    """Up to ten failing or stuck nodes with reasons."""
    analysis_runs: list[AnalysisRun] = Field(default_factory=list, max_length=RUNS_KEPT)
    """The analyses of targetVersion's step boundaries (spec.strategy.analysis), latest last:
    the query results that let the rollout move on or aborted it."""
    message: str = Field(default="", max_length=4096)
    """Summary for people."""


class ModelDeployment(ApiModel):
    """A model rolled out to edge nodes, one variant per node."""

    api_version: Literal["edgerollout.dev/v1alpha1"] = "edgerollout.dev/v1alpha1"
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
