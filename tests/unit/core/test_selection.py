"""Variant selection: filter with a reason for every rejection, then score by policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.api.common import LabelSelector
from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.modeldeployment import SelectionPolicy, VariantPin
from edge_rollout.api.release import Release
from edge_rollout.core import selection
from tests.unit.core.fixtures import GIB, MIB, hardware, release, variant


def facts(kind: str = "cpu", memory: int = 4 * GIB, **labels: str) -> selection.NodeFacts:
    return selection.NodeFacts(f"{kind}-node", labels, hardware(kind, memory))


def choose(
    node: selection.NodeFacts,
    policy: SelectionPolicy | None = None,
    budget: int | None = None,
    excluded: tuple[str, ...] = (),
) -> selection.Choice:
    policy = policy or SelectionPolicy()
    if budget is None:
        budget = selection.memory_budget(node.hardware, policy, [])
    return selection.select_variant(node, release("1.0"), policy, budget, excluded)


@pytest.mark.parametrize(
    ("kind", "prefer", "expected"),
    [
        pytest.param("npu", "quality", "int8-npu", id="npu-node-takes-the-npu-variant"),
        pytest.param("gpu", "quality", "fp16", id="gpu-node-takes-fp16"),
        pytest.param("cpu", "quality", "fp32", id="cpu-quality-takes-fp32"),
        pytest.param("cpu", "latency", "int8", id="cpu-latency-takes-int8"),
        pytest.param("cpu", "size", "int8", id="cpu-size-takes-int8"),
    ],
)
def test_each_kind_of_node_gets_the_variant_it_runs_best(
    kind: str, prefer: str, expected: str
) -> None:
    choice = choose(facts(kind), SelectionPolicy(prefer=prefer))  # type: ignore[arg-type]
    assert choice.variant == expected
    assert choice.reason == "BestScore"


def test_every_other_candidate_gets_a_reason() -> None:
    choice = choose(facts("cpu"))
    reasons = {r.variant: r.reason for r in choice.rejections}
    assert reasons == {
        "fp16": "NoExecutionProvider",
        "int8": "Outranked",
        "int8-npu": "NoExecutionProvider",
    }
    assert all(r.message for r in choice.rejections)


def test_a_small_node_gets_a_smaller_variant_with_the_reason() -> None:
    choice = choose(facts("cpu", memory=256 * MIB))
    assert choice.variant == "int8"
    fp32 = next(r for r in choice.rejections if r.variant == "fp32")
    assert fp32.reason == "DoesNotFit"
    assert "MiB" in fp32.message


def test_higher_priority_claims_shrink_the_budget() -> None:
    node = facts("cpu", memory=1 * GIB)
    claim = DesiredModel(
        name="ns/other",
        model="x",
        version="1",
        variant="v",
        store_url="http://s",
        memory_bytes=700 * MIB,
    )
    budget = selection.memory_budget(node.hardware, SelectionPolicy(), [claim])
    assert choose(node, budget=budget).variant == "int8"


def test_nothing_fits_gives_no_variant_and_says_why() -> None:
    choice = choose(facts("cpu", memory=64 * MIB))
    assert choice.variant is None
    assert choice.reason == "NoVariantFits"
    assert "DoesNotFit" in choice.message


def test_failed_variants_fall_back_to_the_next_candidate() -> None:
    choice = choose(facts("npu"), excluded=("int8-npu",))
    assert choice.variant == "fp32"
    assert any(r.reason == "FailedOnNode" for r in choice.rejections)


def test_pins_win_over_the_score() -> None:
    pin = VariantPin(node_selector=LabelSelector(match_labels={"rack": "lab"}), variant="int8")
    policy = SelectionPolicy(pins=[pin])
    choice = choose(facts("npu", rack="lab"), policy)
    assert (choice.variant, choice.reason) == ("int8", "Pinned")
    reasons = {r.variant: r.reason for r in choice.rejections}
    assert reasons == {"fp16": "NoExecutionProvider", "fp32": "NotPinned", "int8-npu": "NotPinned"}


def test_policy_filters_come_first() -> None:
    policy = SelectionPolicy(allowed_precisions=["fp32", "fp16"], min_agreement=0.999)
    choice = choose(facts("npu"), policy)
    reasons = {r.variant: r.reason for r in choice.rejections}
    assert choice.variant == "fp32"
    assert reasons["int8"] == "PrecisionNotAllowed"


def test_arch_mismatch_is_a_reason() -> None:
    arm_only = release("1.0", variant("arm", arch=("arm64",)), variant("any"))
    choice = selection.select_variant(facts("cpu"), arm_only, SelectionPolicy(), None)
    assert choice.variant == "any"
    assert choice.rejections[0].reason == "ArchMismatch"


memories = st.integers(min_value=0, max_value=8 * GIB)
claims = st.lists(st.integers(min_value=0, max_value=2 * GIB), max_size=4)


@given(
    memory=memories,
    claimed=claims,
    kind=st.sampled_from(["cpu", "gpu", "npu"]),
    prefer=st.sampled_from(["quality", "latency", "size"]),
)
def test_selection_never_exceeds_memory_and_explains_every_rejection(
    memory: int, claimed: list[int], kind: str, prefer: str
) -> None:
    node = selection.NodeFacts("n", {}, hardware(kind, memory))
    policy = SelectionPolicy(prefer=prefer)  # type: ignore[arg-type]
    entries = [
        DesiredModel(
            name=f"ns/o{i}",
            model="x",
            version="1",
            variant="v",
            store_url="http://s",
            memory_bytes=c,
        )
        for i, c in enumerate(claimed)
    ]
    budget = selection.memory_budget(node.hardware, policy, entries)
    choice = selection.select_variant(node, release("1.0"), policy, budget)
    names = {v.name for v in release("1.0").variants}
    assert {r.variant for r in choice.rejections} | {choice.variant} - {None} == names
    assert all(r.reason and r.message for r in choice.rejections)
    if choice.variant is not None and budget is not None and memory > 0:
        assert choice.memory_bytes + sum(claimed) <= memory


def unmeasured_npu_release() -> Release:
    npu = variant("int8-hailo", "int8", accel="npu", providers=("HailoExecutionProvider",))
    npu = npu.model_copy(
        update={
            "measurements": npu.measurements.model_copy(
                update={"not_measured": "HailoExecutionProvider is not available on the publisher"}
            )
        }
    )
    return release("1.0", variant("fp32", memory=400 * MIB), npu)


def test_an_unmeasured_npu_variant_still_goes_to_npu_nodes_and_says_so() -> None:
    choice = selection.select_variant(
        facts("npu"), unmeasured_npu_release(), SelectionPolicy(), None
    )
    assert choice.variant == "int8-hailo"
    assert "not measured" in choice.message


def test_an_unmeasured_variant_cannot_meet_min_agreement() -> None:
    policy = SelectionPolicy(min_agreement=0.99)
    choice = selection.select_variant(facts("npu"), unmeasured_npu_release(), policy, None)
    assert choice.variant == "fp32"
    assert {r.variant: r.reason for r in choice.rejections}["int8-hailo"] == "NotMeasured"


def test_a_pin_to_a_variant_the_release_lacks_says_so_and_names_the_variants() -> None:
    pin = VariantPin(node_selector=LabelSelector(), variant="int4")
    choice = choose(facts("cpu"), SelectionPolicy(pins=[pin]))
    assert (choice.variant, choice.reason) == (None, "PinnedVariantNotInRelease")
    assert "pins this node to variant int4, which release" in choice.message
    assert "it has fp16, fp32, int8, int8-npu" in choice.message
    assert "set the pin's variant to one of those or remove the pin" in choice.message
    assert {r.variant for r in choice.rejections} == {"fp16", "fp32", "int8", "int8-npu"}


def test_allowed_variants_the_release_lacks_say_so_and_name_the_variants() -> None:
    choice = choose(facts("cpu"), SelectionPolicy(allowed_variants=["int4", "int2"]))
    assert (choice.variant, choice.reason) == (None, "AllowedVariantsNotInRelease")
    assert "allowedVariants (int2, int4) names no variant of release" in choice.message
    assert "it has fp16, fp32, int8, int8-npu" in choice.message


def test_a_pin_to_a_variant_the_release_has_that_does_not_fit_is_still_no_variant_fits() -> None:
    pin = VariantPin(node_selector=LabelSelector(), variant="int8-npu")
    choice = choose(facts("cpu"), SelectionPolicy(pins=[pin]))
    assert (choice.variant, choice.reason) == (None, "NoVariantFits")
    assert "NoExecutionProvider" in choice.message
