"""`edge-rollout publish` flags become a typed `PublishRequest`; the request checks itself."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edge_rollout.cli import publish
from edge_rollout.publishing.request import PublishRequest

REQUIRED = ["m.onnx", "--name", "det", "--version", "1.0.0", "--store", "s", "--key", "k"]


def parse(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    publish.register(parser.add_subparsers())
    return parser.parse_args(["publish", *REQUIRED, *extra])


def test_the_four_required_flags_make_a_request_with_every_buildable_variant() -> None:
    req = publish.to_request(parse())
    assert (req.model, req.name, req.version, req.store) == (
        Path("m.onnx"),
        "det",
        "1.0.0",
        Path("s"),
    )
    assert req.variants is None
    assert dict(req.input_shapes) == {}
    req.check()


def test_input_shapes_and_variants_are_carried_into_the_request() -> None:
    args = parse("--input-shape", "images=1x3x640x640", "--input-shape", "scale=1x2",
                 "--variants", "fp32, int8")  # fmt: skip
    req = publish.to_request(args)
    assert dict(req.input_shapes) == {"images": (1, 3, 640, 640), "scale": (1, 2)}
    assert req.variants == ("fp32", "int8")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        pytest.param({"variants": ("fp64",)}, "unknown variants", id="unknown-variant"),
        pytest.param({"variants": ()}, "unknown variants", id="no-variant"),
        pytest.param({"name": "Detector"}, "--name 'Detector'", id="bad-name"),
    ],
)
def test_a_request_that_cannot_be_published_says_which_flag(changes, problem: str) -> None:
    base = {"model": Path("m.onnx"), "name": "det", "version": "1", "store": Path("s"),
            "key": Path("k")}  # fmt: skip
    with pytest.raises(ValueError, match=problem):
        PublishRequest(**{**base, **changes}).check()
