"""String formats refuse in words, in Python as in the CRD: a regex never reaches users."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from edge_rollout.api.common import Condition, LabelSelector, LabelSelectorRequirement
from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.manifest import FileEntry
from edge_rollout.api.modeldeployment import Delivery, ModelRef, Pause, VariantPin, Window
from edge_rollout.api.release import VariantEntry

STORE = {"url": "file:///store"}
ENTRY = {"name": "fleet/classifier", "model": "m", "version": "1", "variant": "fp32",
         "storeUrl": "file:///store"}  # fmt: skip
VARIANT = {"name": "fp32", "precision": "fp32", "manifestDigest": "sha256:" + "a" * 64,
           "measurements": {}}  # fmt: skip
CONDITION = {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}

REFUSED = [
    pytest.param(ModelRef, {"name": "Classifier", "version": "1", "store": STORE},
                 'like resnet50-int8; got "Classifier"', id="model-name-uppercase"),
    pytest.param(ModelRef, {"name": "m", "version": "1.0 beta", "store": STORE},
                 'like 1.4.0 or 2.0.0-rc.1; got "1.0 beta"', id="version-with-space"),
    pytest.param(VariantPin, {"nodeSelector": {}, "variant": "-int8"}, "like int8-cpu",
                 id="pin-variant"),
    pytest.param(Window, {"startTime": "25:00", "endTime": "01:00"}, "24-hour time HH:MM",
                 id="window-hour-25"),
    pytest.param(Delivery, {"maxBandwidth": "fast"}, "optional k, Ki, M, Mi, G or Gi suffix",
                 id="bandwidth-words"),
    pytest.param(Pause, {"duration": "ten minutes"}, "like 30s, 10m or 1h30m", id="duration"),
    pytest.param(LabelSelectorRequirement, {"key": "bad key!", "operator": "Exists"},
                 "must be a label key such as edge", id="expression-key"),
    pytest.param(LabelSelector, {"matchLabels": {"bad key!": "x"}},
                 "every matchLabels key must be a label key", id="match-labels-key"),
    pytest.param(LabelSelector, {"matchLabels": {"edge": "not ok!"}},
                 "every matchLabels value must be a label value", id="match-labels-value"),
    pytest.param(Condition, {**CONDITION, "reason": "not camel"}, "CamelCase word",
                 id="condition-reason"),
    pytest.param(DesiredModel, {**ENTRY, "name": "../../etc/passwd"},
                 "must be <namespace>/<modeldeployment>, like fleet/classifier", id="entry-key"),
    pytest.param(DesiredModel, {**ENTRY, "manifestDigest": "md5:d41d8cd9"},
                 "must be sha256:<64 lowercase hex digits>", id="entry-manifest-digest"),
    pytest.param(VariantEntry, {**VARIANT, "manifestDigest": "sha256:../../etc/passwd"},
                 "must be sha256:<64 lowercase hex digits>", id="release-manifest-digest"),
    pytest.param(FileEntry, {"path": "../x", "size": 1, "digest": "a" * 64, "chunks": []},
                 "must be a plain file name", id="manifest-file-path"),
    pytest.param(FileEntry, {"path": "model.onnx", "size": 1, "digest": "../etc", "chunks": []},
                 "must be 64 lowercase hex digits", id="manifest-chunk-digest"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "document", "words"), REFUSED)
def test_a_malformed_string_is_refused_in_words(
    model: type[BaseModel], document: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(document)
    messages = [e["msg"] for e in info.value.errors()]
    assert any(words in m for m in messages), messages
    assert not any("should match" in m for m in messages), messages


ACCEPTED = [
    pytest.param(ModelRef, {"name": "resnet50-int8", "version": "2.0.0-rc.1", "store": STORE},
                 id="model"),
    pytest.param(Delivery, {"maxBandwidth": ""}, id="no-bandwidth-cap"),
    pytest.param(Delivery, {"maxBandwidth": "2Mi"}, id="bandwidth"),
    pytest.param(Window, {"startTime": "23:59", "endTime": "00:00"}, id="window"),
    pytest.param(DesiredModel, ENTRY, id="entry-without-digest"),
    pytest.param(LabelSelector, {"matchLabels": {"example.com/tier": ""}}, id="labels"),
    pytest.param(Condition, {**CONDITION, "reason": "Release_Not:Found"}, id="condition"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "document"), ACCEPTED)
def test_a_well_formed_string_is_accepted(model: type[BaseModel], document: dict[str, Any]) -> None:
    model.model_validate(document)
