"""strategy.analysis and status.analysisRuns: Prometheus queries judged between rollout steps.

The names are those of Argo Rollouts' AnalysisTemplate (metrics[].interval, count,
successCondition, failureCondition, failureLimit, provider prometheus.address) and of its
AnalysisRun status (phase, metricResults, measurements). Pure data; core/analysis judges.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from edge_rollout.api.common import ApiModel, Duration, TextFormat, cel, x_validations

_NUMBER = r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?"
_COMPARISON = r" *result(\[0\])? *(<=|>=|==|!=|<|>) *" + _NUMBER + " *"
CONDITION = TextFormat(
    rf"^{_COMPARISON}((&&|\|\|){_COMPARISON})*$",
    "must compare result with a number, comparisons joined by && or || (&& binds first, no"
    " parentheses), like result < 0.05 or result >= 0.95 && result <= 1 (result[0] is result)",
    empty_ok=True,
)
PROMETHEUS_URL = TextFormat(
    r"^https?://[^ /?#]+(/[^ ?#]*)?$",
    "must be the http:// or https:// base URL of Prometheus the operator can reach, like"
    " http://prometheus.monitoring:9090 (no /api/v1/query: the operator adds it)",
)
METRIC_NAME = TextFormat(
    r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$",
    "must be lowercase letters, digits, '-', '.' or '_', starting and ending with a letter or"
    " digit, like error-rate",
)
Condition = Annotated[
    str, Field(max_length=64, json_schema_extra=x_validations(CONDITION.rule())),
    CONDITION.validator(),
]  # fmt: skip
FAILURE_LIMIT_RULE = cel(
    "self.failureLimit < self.count",
    "failureLimit must be below count (with failureLimit >= count the metric could never fail):"
    " lower failureLimit or raise count",
)
ONE_CONDITION_RULE = cel(
    "self.successCondition != '' || self.failureCondition != ''",
    "a metric needs a successCondition or a failureCondition (or both), like"
    " failureCondition: result > 0.05",
)
MAX_METRICS = 3
"""Queries per analysis (each spec field's size counts against what kubectl apply can store:
tests/unit/api/test_limits.py)."""


class PrometheusProvider(ApiModel):
    """The Prometheus the operator queries (Argo Rollouts' provider.prometheus)."""

    address: Annotated[str, PROMETHEUS_URL.validator()] = Field(
        max_length=256, json_schema_extra=x_validations(PROMETHEUS_URL.rule())
    )
    """Base URL of Prometheus's HTTP API as the operator reaches it, like
    `http://prometheus.monitoring:9090`; the operator GETs `<address>/api/v1/query`."""


class Metric(ApiModel):
    """One query, measured `count` times every `interval`; each result is judged by the
    conditions, and more than failureLimit failed or inconclusive measurements fail the
    analysis."""

    name: Annotated[str, METRIC_NAME.validator()] = Field(
        min_length=1, max_length=63, json_schema_extra=x_validations(METRIC_NAME.rule())
    )
    """Name shown in status and events, unique within the metrics."""
    query: str = Field(min_length=1, max_length=768)
    """PromQL instant query returning one value (a scalar, or a vector of one series: aggregate
    with sum() or max()), like
    `sum(rate(app_errors_total[1m])) / sum(rate(app_requests_total[1m]))`."""
    interval: Duration = "30s"
    """Time between measurements, like `30s` or `1m`."""
    count: int = Field(default=1, ge=1, le=100)
    """Measurements to take; the metric passes once all are taken with at most failureLimit
    failed or inconclusive."""
    success_condition: Condition = ""
    """A measurement is Successful when true, like `result >= 0.95`."""
    failure_condition: Condition = ""
    """A measurement is Failed when true, like `result > 0.05` (with both conditions set and
    neither true, the measurement is Inconclusive, as in Argo Rollouts)."""
    failure_limit: int = Field(default=0, ge=0, le=99)
    """Failed plus inconclusive measurements tolerated; one more fails the analysis and aborts
    the rollout. An unreachable Prometheus, an empty result or NaN is inconclusive."""

    model_config = ConfigDict(
        json_schema_extra=x_validations(FAILURE_LIMIT_RULE, ONE_CONDITION_RULE)
    )

    @model_validator(mode="after")
    def _judgeable(self) -> Metric:
        for rule, broken in (
            (FAILURE_LIMIT_RULE, self.failure_limit >= self.count),
            (ONE_CONDITION_RULE, not (self.success_condition or self.failure_condition)),
        ):
            if broken:
                raise PydanticCustomError("metric", "{message}", {"message": rule["message"]})
        return self


class Analysis(ApiModel):
    """Queries Prometheus must answer well before the rollout moves past a setNodePercent or
    setNodeCount step (Argo Rollouts' AnalysisTemplate, run at every step boundary). A failed
    analysis aborts the rollout as failed nodes do (spec.abort.failureHandlingPolicy)."""

    prometheus: PrometheusProvider
    """Where the queries go."""
    metrics: list[Metric] = Field(
        min_length=1,
        max_length=MAX_METRICS,
        json_schema_extra=x_validations(
            cel(
                "self.all(m, self.filter(n, n.name == m.name).size() == 1)",
                "metric names must be unique: rename or remove the duplicate metric",
            )
        ),
    )
    """The queries; every one must pass."""

    @model_validator(mode="after")
    def _unique(self) -> Analysis:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            message = "metric names must be unique: rename or remove the duplicate metric"
            raise PydanticCustomError("metrics", "{message}", {"message": message})
        return self


MeasurementPhase = Literal["Successful", "Failed", "Inconclusive"]
RunPhase = Literal["Running", "Successful", "Failed"]
MEASUREMENTS_KEPT = 10
"""Measurements kept per metric in status (the latest; Argo's measurementRetention default)."""
RUNS_KEPT = 8
"""Analysis runs kept in status (the latest, all of the target version)."""


class Measurement(ApiModel):
    """One query result and how it was judged."""

    phase: MeasurementPhase
    """Successful, Failed or Inconclusive (no answer, no data, NaN, several series)."""
    value: str = Field(default="", max_length=64)
    """The value Prometheus returned, as it wrote it; empty when there was none."""
    message: str = Field(default="", max_length=512)
    """Why it is inconclusive, or the condition that decided."""
    finished_at: str = Field(default="", max_length=64)
    """When the operator took it (RFC 3339)."""


class MetricResult(ApiModel):
    """Where one metric of a run stands."""

    name: str = Field(max_length=63)
    """The metric's name."""
    phase: RunPhase = "Running"
    """Running until count measurements are taken (Successful) or more than failureLimit failed
    or were inconclusive (Failed)."""
    count: int = Field(default=0, ge=0)
    """Measurements taken."""
    successful: int = Field(default=0, ge=0)
    """Successful measurements."""
    failed: int = Field(default=0, ge=0)
    """Failed measurements."""
    inconclusive: int = Field(default=0, ge=0)
    """Inconclusive measurements."""
    measurements: list[Measurement] = Field(default_factory=list, max_length=MEASUREMENTS_KEPT)
    """The latest measurements, oldest first."""


class AnalysisRun(ApiModel):
    """The analysis at one step boundary of the target version."""

    step: int = Field(ge=0)
    """Index of the step whose nodes it judges (the rollout moves past it once Successful)."""
    version: str = Field(max_length=128)
    """The target version it judged."""
    phase: RunPhase = "Running"
    """Running, Successful (every metric passed) or Failed (a metric failed: the rollout is
    aborted)."""
    started_at: str = Field(default="", max_length=64)
    """When the step's nodes had finished and the analysis began (RFC 3339)."""
    message: str = Field(default="", max_length=1024)
    """What decided, with the values."""
    metric_results: list[MetricResult] = Field(default_factory=list, max_length=MAX_METRICS)
    """One per metric, in spec order."""
