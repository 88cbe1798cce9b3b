"""The one exception type of the store: which file, which check failed, and what to do about it.

Raised by readers, writers and key loading. Pure data, no I/O.
"""

from __future__ import annotations

SHORT_READ = "short-read"
"""The `check` of a StoreError for a store that kept answering 200 with a short body."""


class StoreError(Exception):
    """A store object could not be read, failed a check, or a write was refused."""

    def __init__(self, path: str, check: str, problem: str, action: str) -> None:
        self.path = path
        """The store path or URL of the file concerned."""
        self.check = check
        """The check that failed: `signature`, `digest`, `size`, `name`, `schema`, `fetch`, ..."""
        self.problem = problem
        """What was found."""
        self.action = action
        """What the user should do."""
        super().__init__(f"{path}: {check} check failed: {problem}. {action}")


class NotFoundError(StoreError):
    """The object does not exist in the store (HTTP 404, missing file)."""


class VerificationError(StoreError):
    """The object exists but does not verify (signature, digest, size, schema, name)."""
