"""How a command ends when the user's environment stops it: one line, never a traceback.

A full disk, a permission refused, a closed pipe (`edge-rollout keygen KEY | head`) or Ctrl-C are
not bugs: `run` turns each into one line on stderr saying what happened and what to do, and the
exit code a shell expects. Bugs (anything else) still raise with their traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

EXIT_INTERRUPTED = 130
"""128 + SIGINT, as a shell reports Ctrl-C."""
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, as a shell reports a reader that went away."""

FIXES = {
    errno.ENOSPC: "free some space there (or write elsewhere: --store, or TMPDIR for temporary "
    "files) and run the command again",
    errno.EDQUOT: "free some space within your quota, or write elsewhere, and run it again",
    errno.EACCES: "run it as a user that may write there, or choose a directory you own",
    errno.EPERM: "run it as a user that may write there, or choose a directory you own",
    errno.EROFS: "the file system is read-only: choose a writable directory",
}
"""The fix for each environment error, by errno."""

SAFE = "nothing was published half-way: a release becomes visible only when its signed index is"
"""What an interrupted or failed publish leaves (store/writer.py writes the signed index last)."""


def describe(command: str, error: OSError) -> str:
    """One line for an OSError: the command, what failed on which file, the fix."""
    where = f" ({error.filename})" if error.filename else ""
    fix = FIXES.get(error.errno or 0, "check the path and run it again")
    text = f"{command}: {error.strerror or error}{where}; {fix}"
    return f"{text}; {SAFE}" if command.endswith("publish") else text


def run(command: str, handler: Callable[[], int | None]) -> int:
    """Run `handler`; environment failures end with one line on stderr and their exit code."""
    try:
        return handler() or 0
    except BrokenPipeError:
        # The reader is gone: say nothing more to it (Python would complain at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        tail = f"; {SAFE}" if command.endswith("publish") else ""
        print(f"{command}: interrupted{tail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        if error.errno not in FIXES:
            raise
        print(describe(command, error), file=sys.stderr)
        return 1
