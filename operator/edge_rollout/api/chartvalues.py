"""The Helm chart's values as a pydantic model: `values.schema.json` is rendered from it.

Pure: `values_schema()` returns the JSON Schema (draft-07 keywords only, `$ref`s inlined, no
titles) that Helm enforces on install, upgrade, lint and template. `charts/edge-rollout/values.yaml`
holds the same defaults with comments; a test keeps the two equal. No I/O, no Kubernetes client.
"""

from __future__ import annotations

import copy
from typing import Literal, cast

from pydantic import ConfigDict, Field, JsonValue

from edge_rollout.api.common import DURATION_PATTERN, ApiModel

Schema = dict[str, JsonValue]
KubeObject = dict[str, JsonValue]
"""A Kubernetes object passed through to the manifests as written (affinity, a toleration)."""

Quantity = int | str
"""A resource quantity: `100m`, `256Mi`, `1`."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
"""Least severe log records written."""
LogFormat = Literal["text", "json"]
"""`text`: one line per record; `json`: one JSON object per line (time, level, logger, object,
message, error)."""

_DIGEST_PATTERN = r"^(sha256:[a-f0-9]{64})?$"
_NAME_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"


class ValuesModel(ApiModel):
    """Base of every values section: camelCase keys, unknown keys refused (typos fail early)."""

    model_config = ConfigDict(extra="forbid")


class Image(ValuesModel):
    """A container image: `repository@digest` when a digest is set, else `repository:tag`."""

    repository: str = Field(min_length=1)
    """Image repository, e.g. `ghcr.io/edge-rollout/operator`."""
    tag: str = ""
    """Image tag; empty means the chart's appVersion."""
    digest: str = Field(default="", pattern=_DIGEST_PATTERN)
    """`sha256:<64 hex>`; when set it wins over the tag (pin images in production)."""
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Kubernetes imagePullPolicy."""


class Resources(ValuesModel):
    """Container resource requests and limits (quantities such as `100m` or `256Mi`)."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    """What the scheduler reserves."""
    limits: dict[str, Quantity] = Field(default_factory=dict)
    """The ceiling; leave cpu unset to avoid throttling, set memory."""


class ServiceAccount(ValuesModel):
    """The ServiceAccount a component runs as."""

    create: bool = True
    """Create the ServiceAccount; when false, `name` must name an existing one."""
    name: str = Field(default="", max_length=253, pattern=_NAME_PATTERN)
    """Name; empty means `<fullname>-<component>`."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations on the ServiceAccount (e.g. cloud workload identity)."""


class Peering(ValuesModel):
    """Kopf peering: a standby or a developer's local operator pauses the lower priority."""

    enabled: bool = True
    """Create the ClusterKopfPeering `edge-rollout` and run with peering; false runs
    `--standalone` and drops the kopf.dev RBAC."""
    priority: int = Field(default=100, ge=0, le=2**31 - 1)
    """This operator's peering priority; give every concurrently running operator a distinct
    one (the highest runs, the others pause)."""


def _operator_resources() -> Resources:
    return Resources(requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "512Mi"})


def _agent_resources() -> Resources:
    return Resources(requests={"cpu": "50m", "memory": "128Mi"}, limits={"memory": "1Gi"})


NON_ROOT = 65532
"""The images' user and group (distroless `nonroot`)."""


def _pod_security_context() -> KubeObject:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT,
        "runAsGroup": NON_ROOT,
        "fsGroup": NON_ROOT,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _security_context() -> KubeObject:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT,
        "runAsGroup": NON_ROOT,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


class Workload(ValuesModel):
    """Scheduling and pod settings shared by the operator and the agent."""

    pod_annotations: dict[str, str] = Field(default_factory=dict)
    """Extra pod annotations."""
    pod_labels: dict[str, str] = Field(default_factory=dict)
    """Extra pod labels."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pods require."""
    tolerations: list[KubeObject] = Field(default_factory=list)
    """Taints the pods tolerate (Kubernetes toleration objects)."""
    affinity: KubeObject = Field(default_factory=dict)
    """A Kubernetes affinity object."""
    priority_class_name: str = Field(default="", max_length=253)
    """PriorityClass of the pods; empty for the cluster default."""
    extra_env: list[KubeObject] = Field(default_factory=list)
    """Extra environment variables (Kubernetes EnvVar objects)."""
    pod_security_context: KubeObject = Field(default_factory=_pod_security_context)
    """The pod's securityContext (non-root 65532, seccomp RuntimeDefault: Pod Security
    "restricted"). Your keys are merged into these; set one to null to drop it."""
    security_context: KubeObject = Field(default_factory=_security_context)
    """The container's securityContext (read-only root, no privilege escalation, every
    capability dropped). Your keys are merged into these; set one to null to drop it."""


class Operator(Workload):
    """The operator Deployment (one replica, `Recreate`: Kopf peering is not leader election)."""

    image: Image = Field(default_factory=lambda: Image(repository="ghcr.io/edge-rollout/operator"))
    """The operator image (`operator/Dockerfile`)."""
    peering: Peering = Field(default_factory=Peering)
    """Kopf peering."""
    resources: Resources = Field(default_factory=_operator_resources)
    """Requests and limits of the operator container."""
    service_account: ServiceAccount = Field(default_factory=ServiceAccount)
    """The operator's ServiceAccount."""
    metrics_port: int = Field(default=8081, ge=1024, le=65535)
    """Port of the operator's Prometheus /metrics (plans, EdgeNode writes, nodes by outcome)."""
    log_level: LogLevel = "INFO"
    """Operator log level (`--log-level`); DEBUG adds tracebacks and the replan timer's ticks."""
    log_format: LogFormat = "text"
    """Operator log format (`--log-format`): `text` or `json`, one line per record naming its
    object."""


class DataDir(ValuesModel):
    """Where the agent keeps models on the node (survives agent restarts and upgrades)."""

    host_path: str = Field(default="/var/lib/edge-rollout", pattern=r"^/.*")
    """Directory on the node, created when missing."""
    init_permissions: bool = True
    """Run a tiny init container (root with only CAP_CHOWN) that hands the directory to the
    agent's non-root user; turn off when the directory is provisioned with the right owner."""


class HardwareProfile(ValuesModel):
    """A hardware profile file on the node that overrides or extends discovery."""

    host_path: str = Field(default="", pattern=r"^(/.*)?$")
    """File on the node (YAML, see the agent docs); empty to rely on discovery alone."""


class AgentMetrics(ValuesModel):
    """The agent's /metrics, /healthz and /defer endpoint."""

    port: int = Field(default=9464, ge=1024, le=65535)
    """Container port (non-root, so 1024 or above)."""


class Token(ValuesModel):
    """The agent's projected, pod-bound service-account token."""

    expiration_seconds: int = Field(default=600, ge=600, le=86400)
    """Lifetime; the kubelet rotates it at 80 % and the agent re-reads it (minimum 600)."""


class AdmissionPolicy(ValuesModel):
    """The ValidatingAdmissionPolicy that confines each agent to the EdgeNode of its node."""

    enabled: bool = True
    """Install the policy and its binding (keep on: RBAC cannot tell nodes apart)."""


AGENT_NODE_SELECTOR = {"edge": "true"}
"""What `agent.nodeSelector` means when left empty (the template's fallback)."""


class RollingUpdate(ValuesModel):
    """How many agents a DaemonSet rolling update restarts at once (no surge: two agents on one
    node would share its model directory)."""

    max_unavailable: Quantity = "10%"
    """Agents restarted at once: a count or a percentage of the edge nodes."""


class UpdateStrategy(ValuesModel):
    """The agent DaemonSet's updateStrategy."""

    type: Literal["RollingUpdate", "OnDelete"] = "RollingUpdate"
    """RollingUpdate: replaced a few at a time; OnDelete: only when you delete an agent pod."""
    rolling_update: RollingUpdate = Field(default_factory=RollingUpdate)
    """Used with type RollingUpdate."""


def _agent_tolerations() -> list[KubeObject]:
    return [{"key": "node-role.kubernetes.io/edge", "operator": "Exists", "effect": "NoSchedule"}]


class Agent(Workload):
    """The agent DaemonSet on edge nodes."""

    enabled: bool = True
    """Run the agent DaemonSet (off when devices run the agent outside Kubernetes)."""
    image: Image = Field(default_factory=lambda: Image(repository="ghcr.io/edge-rollout/agent"))
    """The agent image (`edge-agent/Dockerfile`)."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Nodes that run an agent. Empty means `edge: "true"` (label your edge nodes `edge=true`, the
    label the example ModelDeployment targets too); your selector replaces it, it is not merged
    with it (every Linux node: `kubernetes.io/os: linux`)."""
    tolerations: list[KubeObject] = Field(default_factory=_agent_tolerations)
    """Taints of edge nodes the agent tolerates."""
    data_dir: DataDir = Field(default_factory=DataDir)
    """Model storage on the node."""
    hardware_profile: HardwareProfile = Field(default_factory=HardwareProfile)
    """Optional hardware profile file on the node."""
    metrics: AgentMetrics = Field(default_factory=AgentMetrics)
    """The local HTTP endpoint."""
    token: Token = Field(default_factory=Token)
    """The projected service-account token."""
    admission_policy: AdmissionPolicy = Field(default_factory=AdmissionPolicy)
    """Per-node write restriction."""
    heartbeat_seconds: float = Field(default=30.0, gt=0)
    """Seconds between status reports."""
    max_temperature_celsius: float = Field(default=85.0, gt=0)
    """Hold downloads and model loading back above this SoC temperature."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Parallel chunk downloads."""
    log_level: LogLevel = "INFO"
    """Agent log level (`--log-level`)."""
    log_format: LogFormat = "text"
    """Agent log format (`--log-format`): `text` or `json`, one line per record."""
    update_strategy: UpdateStrategy = Field(default_factory=UpdateStrategy)
    """DaemonSet updateStrategy: agents restarted at once when the chart or image changes."""
    resources: Resources = Field(default_factory=_agent_resources)
    """Requests and limits of the agent container; the memory limit must hold the largest model
    the agent loads for its smoke test."""
    service_account: ServiceAccount = Field(default_factory=ServiceAccount)
    """The agent's ServiceAccount (the admission policy matches its name)."""


_KEY_ID_PATTERN = r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$"


class StoreTrustedKey(ValuesModel):
    """A public key the operator trusts by default, under an id (a ModelDeployment's
    spec.model.store.trustedKeys, for every deployment that sets no key of its own)."""

    id: str = Field(min_length=1, max_length=63, pattern=_KEY_ID_PATTERN)
    """The key's name, e.g. `release-2026` (the file `<id>.pub` in the operator's key
    directory); ids must be unique."""
    public_key: str = Field(min_length=1, max_length=160)
    """The ed25519 public key `edge-rollout keygen` printed (PEM or base64)."""


class Store(ValuesModel):
    """The ed25519 public keys that sign release indexes, mounted into the operator."""

    public_key: str = Field(default="", max_length=4096)
    """The key `edge-rollout keygen` printed (PEM or base64); the chart puts it in a ConfigMap."""
    existing_secret: str = Field(default="", max_length=253, pattern=_NAME_PATTERN)
    """Or: a Secret in the release namespace that holds the key (set one of the two)."""
    existing_secret_key: str = Field(default="public-key.pem", min_length=1)
    """The key of that Secret's data entry."""
    trusted_keys: list[StoreTrustedKey] = Field(default_factory=list, max_length=4)
    """More trusted keys, with ids (at most 4, ids unique): a release signed by any of them, or
    by publicKey, verifies. Add the new key here to rotate (docs/operations.md)."""


class ServiceMonitor(ValuesModel):
    """A Prometheus Operator ServiceMonitor for the agents' metrics."""

    enabled: bool = False
    """Create it (only when the cluster serves monitoring.coreos.com/v1)."""
    interval: str = Field(default="30s", pattern=DURATION_PATTERN)
    """Scrape interval."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels, e.g. the `release` label your Prometheus selects."""


class Metrics(ValuesModel):
    """Metrics discovery."""

    service: bool = True
    """A headless Service in front of the agents' metrics port."""
    service_monitor: ServiceMonitor = Field(default_factory=ServiceMonitor)
    """Optional ServiceMonitor."""


class Rbac(ValuesModel):
    """Role-based access control."""

    create: bool = True
    """Create the ClusterRoles and bindings of the operator and the agent."""
    aggregate_to_user_roles: bool = True
    """Add ModelDeployment/EdgeNode rights to the built-in view/edit/admin ClusterRoles."""


class Crds(ValuesModel):
    """The edgerollout.dev CRDs (rendered as templates, kept on uninstall)."""

    enabled: bool = True
    """Install and upgrade the CRDs with the release; false when you apply `crds/` yourself."""


class ChartValues(ValuesModel):
    """Values of the edge-rollout Helm chart."""

    global_: dict[str, JsonValue] = Field(default_factory=dict, alias="global")
    """Values a parent chart shares with all its subcharts; accepted so that this chart works as
    a subchart, not read."""
    name_override: str = Field(default="", max_length=63, pattern=_NAME_PATTERN)
    """Replaces the chart name in object names."""
    fullname_override: str = Field(default="", max_length=63, pattern=_NAME_PATTERN)
    """Replaces `<release>-<chart>` in object names."""
    image_pull_secrets: list[KubeObject] = Field(default_factory=list)
    """Pull secrets for both images, as `[{name: regcred}]`."""
    common_labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to every object the chart makes, pods included (not to the selectors)."""
    crds: Crds = Field(default_factory=Crds)
    """CRDs."""
    operator: Operator = Field(default_factory=Operator)
    """The operator."""
    agent: Agent = Field(default_factory=Agent)
    """The agent."""
    store: Store = Field(default_factory=Store)
    """The store's signing keys."""
    metrics: Metrics = Field(default_factory=Metrics)
    """Metrics."""
    rbac: Rbac = Field(default_factory=Rbac)
    """RBAC."""


def default_values() -> dict[str, JsonValue]:
    """The defaults, as values.yaml spells them."""
    return cast(dict[str, JsonValue], ChartValues().model_dump(mode="json", by_alias=True))


def values_schema() -> Schema:
    """values.schema.json: the model's JSON Schema with `$ref`s inlined and titles dropped."""
    raw = cast(Schema, ChartValues.model_json_schema(by_alias=True, mode="validation"))
    defs = cast(dict[str, Schema], raw.pop("$defs", {}))
    schema = cast(Schema, _inline(raw, defs))
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": _TITLE, **schema}


_TITLE = "edge-rollout chart values"
_LITERAL_KEYS = {"default", "enum", "const"}


def _inline(node: JsonValue, defs: dict[str, Schema]) -> JsonValue:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    out: Schema = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key in _LITERAL_KEYS:
            out[key] = copy.deepcopy(value)
        elif key == "description" and isinstance(value, str):
            out[key] = " ".join(value.split())
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _inline(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _inline(value, defs)
    return out
