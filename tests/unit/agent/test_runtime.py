"""Loading and smoke-testing real ONNX models with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_rollout.api.manifest import GoldenVectors, Tolerance
from edge_rollout.content import golden
from edge_rollout_agent import policy, runtime

from .models import golden_for, linear_model, random_weights

CPU = ["CPUExecutionProvider"]


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    weights, bias = random_weights(8, 4)
    path = tmp_path / "model.onnx"
    linear_model(path, weights, bias)
    return path, weights, bias


def test_a_good_model_passes_and_is_measured(model: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, weights, bias = model
    check = runtime.check_model(path, golden_for(weights, bias), Tolerance(), CPU, runs=5)
    assert check.ok, check.message
    assert check.provider == "CPUExecutionProvider"
    assert 0 < check.p50_ms <= check.p95_ms


def test_wrong_golden_outputs_are_a_test_vector_mismatch(
    model: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    path, weights, bias = model
    golden = golden_for(weights, bias + 0.5)  # the vectors of another model
    check = runtime.check_model(path, golden, Tolerance(), CPU)
    assert (check.ok, check.reason) == (False, "TestVectorMismatch")
    assert "max abs error" in check.message


def test_a_garbage_file_is_load_failed(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x00not an onnx model")
    check = runtime.check_model(path, None, Tolerance(), CPU)
    assert (check.ok, check.reason) == (False, "LoadFailed")


def test_wrong_input_shape_is_inference_failed(model: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, _, _ = model
    other_w, other_b = random_weights(3, 4)
    check = runtime.check_model(path, golden_for(other_w, other_b), Tolerance(), CPU)
    assert (check.ok, check.reason) == (False, "InferenceFailed")


def test_without_vectors_a_synthetic_smoke_run_is_done(
    model: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    check = runtime.check_model(model[0], None, Tolerance(), CPU, runs=3)
    assert check.ok


@pytest.mark.parametrize(
    ("wanted", "available", "expected"),
    [
        pytest.param([], ["CPUExecutionProvider"], CPU, id="cpu-only"),
        pytest.param(["HailoExecutionProvider"], ["CPUExecutionProvider"], CPU,
                     id="simulated-npu-falls-back"),
        pytest.param(["CUDAExecutionProvider", "CPUExecutionProvider"],
                     ["CUDAExecutionProvider", "CPUExecutionProvider"],
                     ["CUDAExecutionProvider", "CPUExecutionProvider"], id="gpu-first"),
    ],
)  # fmt: skip
def test_choose_providers(wanted: list[str], available: list[str], expected: list[str]) -> None:
    assert runtime.choose_providers(wanted, available) == expected


def test_percentile_nearest_rank() -> None:
    assert runtime.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert runtime.percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert runtime.percentile([], 95) == 0.0


def test_compare_checks_cosine_too() -> None:
    tol = Tolerance(rtol=10.0, atol=10.0, min_cosine=0.99)
    assert golden.compare(np.array([1.0, 0.0]), np.array([0.0, 1.0]), tol) is not None
    assert golden.compare(np.array([1.0, 2.0]), np.array([1.0, 2.0]), tol) is None


def _half_agreeing(weights: np.ndarray, bias: np.ndarray) -> GoldenVectors:
    """Four golden cases of which the last two belong to another model."""
    good = golden_for(weights, bias, cases=2)
    bad = golden_for(weights, bias + 0.5, cases=4)
    return GoldenVectors(cases=[*good.cases, *bad.cases[2:]])


def test_max_latency_refuses_a_model_slower_than_the_gate(
    model: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    path, weights, bias = model
    gate = policy.Gate(max_latency_ms=0.000001)
    check = runtime.check_model(path, golden_for(weights, bias), Tolerance(), CPU, 5, gate)
    assert (check.ok, check.reason) == (False, "LatencyAboveGate")
    assert "spec.healthGate.maxLatencyMs" in check.message
    assert f"p95 latency {check.p95_ms:.3f} ms" in check.message
    roomy = runtime.check_model(path, golden_for(weights, bias), Tolerance(), CPU, 5,
                                policy.Gate(max_latency_ms=60_000.0))  # fmt: skip
    assert roomy.ok, roomy.message


def test_min_agreement_decides_when_some_vectors_disagree(
    model: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    path, weights, bias = model
    vectors = _half_agreeing(weights, bias)
    strict = runtime.check_model(path, vectors, Tolerance(), CPU, 3, policy.Gate())
    assert (strict.ok, strict.reason) == (False, "AgreementBelowGate")
    assert "agreement 0.500 (2 of 4 golden test vectors)" in strict.message
    assert "spec.healthGate.minAgreement 1" in strict.message
    lenient = runtime.check_model(
        path, vectors, Tolerance(), CPU, 3, policy.Gate(min_agreement=0.5)
    )
    assert lenient.ok, lenient.message
