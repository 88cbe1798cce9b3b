"""Generated files match the API models (Argo's "verify codegen", as a test)."""

from __future__ import annotations

import pytest

from edge_rollout.api import generated
from tests.support import REPO

FILES = generated.generated_files()


@pytest.mark.parametrize("relative", sorted(FILES))
def test_checked_in_file_matches_the_models(relative: str) -> None:
    path = REPO / relative
    assert path.exists(), f"{relative} is missing: run `make generate` and commit it"
    assert path.read_text() == FILES[relative], (
        f"{relative} drifted from operator/edge_rollout/api: run `make generate` and commit it"
    )
