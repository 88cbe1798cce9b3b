"""EdgeNode spec.models is never null: the CRD defaults it to [] and the model reads null as []."""

from __future__ import annotations

import pytest

from edge_rollout.api import crds
from edge_rollout.api.edgenode import EdgeNodeSpec


@pytest.mark.parametrize("spec", [{"models": None}, {"models": []}, {}], ids=["null", "[]", "none"])
def test_a_null_missing_or_empty_models_list_reads_as_no_entries(spec: dict[str, object]) -> None:
    assert EdgeNodeSpec.model_validate(spec).models == []


def test_the_crd_defaults_models_to_an_empty_list() -> None:
    (edgenodes,) = [c for c in crds.render_crds() if c["spec"]["names"]["kind"] == "EdgeNode"]
    schema = edgenodes["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["models"]["default"] == []
