"""kube/failures: a failed request or handler becomes a reason and the apiserver's own words."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from edge_rollout.kube import failures

REFUSAL = {
    "kind": "Status",
    "status": "Failure",
    "message": 'EdgeNode.edgerollout.dev "n1" is invalid: spec.models: Invalid value: "null":'
    " spec.models in body must be of type array",
    "reason": "Invalid",
    "code": 422,
}


def refused(body: str | None) -> ApiException:
    error = ApiException(status=422, reason="Unprocessable Entity")
    error.body = body
    return error


@pytest.mark.parametrize(
    ("error", "reason", "message"),
    [
        pytest.param(
            refused(json.dumps(REFUSAL)),
            "ApiRequestFailed",
            f"HTTP 422 Unprocessable Entity: {REFUSAL['message']}",
            id="status-body",
        ),
        pytest.param(
            refused("upstream connect error"),
            "ApiRequestFailed",
            "HTTP 422 Unprocessable Entity: upstream connect error",
            id="plain-body",
        ),
        pytest.param(refused(None), "ApiRequestFailed", "HTTP 422 Unprocessable Entity", id="none"),
        pytest.param(
            MaxRetryError(None, "/apis", "connection refused"),  # type: ignore[arg-type]
            "ApiUnreachable",
            "the apiserver did not answer: None: Max retries exceeded with url: /apis"
            " (Caused by 'connection refused')",
            id="unreachable",
        ),
        pytest.param(
            ValueError("Invalid isoformat string: 'yesterday'"),
            "HandlerFailed",
            "ValueError: Invalid isoformat string: 'yesterday'",
            id="bug",
        ),
    ],
)
def test_failures_are_described_by_reason_and_the_apiservers_message(
    error: BaseException, reason: str, message: str
) -> None:
    assert failures.describe(error) == (reason, message)
