"""`make generate`: write the CRDs, the chart's copies and the CRD reference from the API models.

Thin I/O around `edge_rollout.api.generated.generated_files()`; never hand-edit its outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge_rollout.api import generated


def write_generated(root: Path) -> list[Path]:
    """Write every generated file under `root`; return the paths that changed."""
    changed = []
    for relative, text in sorted(generated.generated_files().items()):
        path = root / relative
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        changed.append(path)
    return changed


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    for path in write_generated(root):
        print(f"generated {path.relative_to(root)}")


if __name__ == "__main__":
    main()
