"""Pairing a changed tensor with its counterpart in the previous release: by name, then by dtype,
size and file order; unchanged tensors (found by content) are never paired."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.content.counterparts import TensorKey, counterparts


def _key(name: str, digest: str, size: int = 16, dtype: str = "float32") -> TensorKey:
    return TensorKey(name, dtype, size, digest)


def test_a_changed_tensor_pairs_with_the_same_name() -> None:
    old = [_key("w", "old-w"), _key("b", "old-b")]
    new = [_key("b", "new-b"), _key("w", "new-w")]
    assert counterparts(new, old) == {"b": "b", "w": "w"}


def test_renamed_tensors_pair_by_shape_in_file_order() -> None:
    old = [_key("onnx::Conv_1", "a"), _key("onnx::Conv_2", "b"), _key("head", "c", size=32)]
    new = [_key("onnx::Conv_7", "a2"), _key("onnx::Conv_8", "b2"), _key("fc", "c2", size=32)]
    assert counterparts(new, old) == {
        "onnx::Conv_7": "onnx::Conv_1",
        "onnx::Conv_8": "onnx::Conv_2",
        "fc": "head",
    }


def test_an_unchanged_tensor_is_not_paired_and_its_base_is_not_taken() -> None:
    old = [_key("x", "same"), _key("y", "old-y")]
    new = [_key("renamed", "same"), _key("z", "new-z")]
    assert counterparts(new, old) == {"z": "y"}


def test_same_name_of_another_size_is_not_a_counterpart() -> None:
    old = [_key("w", "a", size=16), _key("v", "b", size=32)]
    new = [_key("w", "c", size=32)]
    assert counterparts(new, old) == {"w": "v"}


def test_no_counterpart_for_a_shape_the_base_does_not_have() -> None:
    assert counterparts([_key("w", "a", dtype="int8")], [_key("w", "b")]) == {}


_keys = st.lists(
    st.builds(
        TensorKey,
        name=st.sampled_from("abcdefgh"),
        dtype=st.sampled_from(["float32", "int8"]),
        size=st.sampled_from([4, 8]),
        digest=st.sampled_from("0123456789"),
    ),
    max_size=8,
    unique_by=lambda k: k.name,
)


@given(_keys, _keys)
def test_pairs_are_one_to_one_same_shape_and_only_for_changed_tensors(
    new: list[TensorKey], old: list[TensorKey]
) -> None:
    pairs = counterparts(new, old)
    by_new, by_old = {k.name: k for k in new}, {k.name: k for k in old}
    reused = {k.digest for k in old} & {k.digest for k in new}
    assert len(set(pairs.values())) == len(pairs)
    for n, o in pairs.items():
        assert by_new[n].shape == by_old[o].shape
        assert by_new[n].digest not in reused
        assert by_old[o].digest not in reused
    for k in new:  # a changed tensor whose name and shape the base has keeps that name
        same = by_old.get(k.name)
        changed = k.digest not in reused and same is not None and same.digest not in reused
        if changed and same is not None and same.shape == k.shape:
            assert pairs[k.name] == k.name


@given(_keys, _keys)
def test_every_changed_tensor_gets_a_counterpart_while_its_shape_has_free_ones(
    new: list[TensorKey], old: list[TensorKey]
) -> None:
    pairs = counterparts(new, old)
    reused = {k.digest for k in old} & {k.digest for k in new}
    for shape in {k.shape for k in new}:
        changed = [k for k in new if k.shape == shape and k.digest not in reused]
        free = [k for k in old if k.shape == shape and k.digest not in reused]
        assert sum(1 for k in changed if k.name in pairs) == min(len(changed), len(free))
