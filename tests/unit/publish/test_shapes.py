"""Concrete shapes for dynamic dimensions: which plans are tried, in which order; overrides."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.api.manifest import TensorInfo
from edge_rollout.publishing import request, shapes


def info(name: str, *shape: int | str, dtype: str = "float32") -> TensorInfo:
    return TensorInfo(name=name, dtype=dtype, shape=list(shape))


IMAGE = info("images", "batch", 3, "height", "width")
TOKENS = [info("ids", "batch", "sequence", dtype="int64"), info("mask", "batch", "sequence")]
# silero_vad.onnx: unnamed dims everywhere, the state's second axis is the batch
VAD = [info("input", 0, 0), info("state", 2, 0, 128), info("sr", dtype="int64")]


def first(inputs: list[TensorInfo], count: int, sizes: tuple[int, ...] = ()) -> list[shapes.Shapes]:
    return list(itertools.islice(shapes.shape_plans(inputs, {}, sizes), count))


def test_an_image_input_tries_the_metadata_size_then_common_image_sizes() -> None:
    plans = first([IMAGE], 3, sizes=(320,))
    assert [p["images"] for p in plans] == [(1, 3, 320, 320), (1, 3, 224, 224), (1, 3, 640, 640)]


def test_dimensions_sharing_a_name_take_one_value() -> None:
    for plan in first(TOKENS, 8):
        assert plan["ids"] == plan["mask"]
    assert [p["ids"] for p in first(TOKENS, 4)] == [(1, 1), (1, 2), (1, 8), (1, 32)]


def test_unnamed_dimensions_may_each_be_pinned_to_1_after_the_ladder() -> None:
    plans = list(shapes.shape_plans(VAD, {}))
    wanted = {"input": (1, 512), "state": (2, 1, 128), "sr": ()}
    assert wanted in plans
    assert plans.index(wanted) > len(shapes.LADDER)  # after the plain ladder failed


def test_overrides_are_kept_as_given_and_static_inputs_untouched() -> None:
    inputs = [IMAGE, info("scale", 1, 2)]
    plan = next(shapes.shape_plans(inputs, {"images": (2, 3, 96, 128)}))
    assert plan == {"images": (2, 3, 96, 128), "scale": (1, 2)}


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        pytest.param({"image": (1, 3, 8, 8)}, "has no input 'image'", id="unknown-name"),
        pytest.param({"images": (1, 3, 8)}, "give 4 sizes", id="wrong-rank"),
        pytest.param({"images": (1, 1, 8, 8)}, "keeping the fixed ones", id="fixed-dim-changed"),
    ],
)
def test_bad_overrides_say_what_to_give(overrides, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        shapes.check_overrides([IMAGE], overrides)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        pytest.param("images=1x3x320x320", ("images", (1, 3, 320, 320)), id="image"),
        pytest.param("a=b=4X2", ("a=b", (4, 2)), id="name-with-equals-and-upper-x"),
    ],
)
def test_input_shape_flag_is_parsed(spec: str, parsed) -> None:
    assert request.parse_input_shape(spec) == parsed


@pytest.mark.parametrize("spec", ["images", "images=", "images=1x3xhx4", "=1x2", "x=1x-2"])
def test_a_bad_input_shape_flag_shows_an_example(spec: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. images=1x3x320x320"):
        request.parse_input_shape(spec)


@pytest.mark.parametrize(
    ("metadata", "sizes"),
    [
        pytest.param({"imgsz": "[320, 320]"}, [320], id="ultralytics"),
        pytest.param({"img_size": "640"}, [640], id="single-number"),
        pytest.param({"input_size": "(256, 192)"}, [256, 192], id="tuple-text"),
        pytest.param({"author": "x"}, [], id="none"),
    ],
)
def test_image_sizes_are_read_from_metadata(metadata: dict[str, str], sizes: list[int]) -> None:
    assert shapes.metadata_sizes(metadata) == sizes


dims = st.one_of(st.integers(1, 4), st.sampled_from(["batch", "seq", "height", "?", 0, -1]))


@given(st.lists(st.lists(dims, max_size=4), min_size=1, max_size=3))
def test_every_plan_is_concrete_keeps_fixed_sizes_and_plans_do_not_repeat(raw) -> None:
    inputs = [info(f"in{i}", *shape) for i, shape in enumerate(raw)]
    plans = list(shapes.shape_plans(inputs, {}))
    assert plans
    assert len(plans) <= shapes.MAX_PLANS
    assert all(plans[i] != plans[j] for i in range(len(plans)) for j in range(i))
    for plan in plans:
        for i in inputs:
            assert len(plan[i.name]) == len(i.shape)
            for size, d in zip(plan[i.name], i.shape, strict=True):
                assert size >= 1
                assert shapes.is_dynamic(d) or size == d
