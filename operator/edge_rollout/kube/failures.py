"""What a failed request or handler says to a user: a CamelCase reason and one sentence.

The apiserver's refusals carry their own message (`spec.models: Invalid value: ...`) inside a
JSON body; this digs it out so conditions and Events show that, not a dump of headers. No I/O.
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from edge_rollout.kube.logrecords import api_error_line

API_REFUSED = "ApiRequestFailed"
"""The apiserver refused or failed a request of the operator."""
API_UNREACHABLE = "ApiUnreachable"
"""The apiserver did not answer (connection refused, reset, timed out)."""
HANDLER_FAILED = "HandlerFailed"
"""Anything else went wrong in a handler (a bug: the message says where to report it)."""


def describe(error: BaseException) -> tuple[str, str]:
    """(reason, message) for a failure, the message naming the error as the apiserver put it.

    >>> describe(ValueError("bad date"))
    ('HandlerFailed', 'ValueError: bad date')
    """
    if isinstance(error, ApiException):
        return API_REFUSED, api_message(error)
    if isinstance(error, HTTPError | OSError):
        return API_UNREACHABLE, f"the apiserver did not answer: {error}"[:2000]
    return HANDLER_FAILED, f"{type(error).__name__}: {error}"[:2000]


def api_message(error: ApiException) -> str:
    """`HTTP 422 Unprocessable Entity: <the apiserver's message>` (its Status body's message)."""
    return f"HTTP {api_error_line(error) or error.status}"[:2000]
