"""Tiny ONNX models that follow the serving contract, built with onnx.helper (no torch): the
test suites' stand-ins for a trained damage model."""

from __future__ import annotations

import json

import numpy as np
import pytest


def tiny_model_proto(
    version: str,
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    architecture: str = "tiny-gap-gemm",
    extra_props: dict[str, str] | None = None,
    gate: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    """A tiny model that follows the serving contract: per-channel mean -> Gemm(weight, bias) -> three
    sigmoids whose cumulative product is P(grade >= k) -> grade probabilities. Opset 17, no torch."""
    weight = np.asarray(weight, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)
    initializers = [
        numpy_helper.from_array(weight, "W"),
        numpy_helper.from_array(bias, "B"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([0, 1, 0, 0], dtype=np.int64), "pad_front"),
        numpy_helper.from_array(np.array([0, 0, 0, 1], dtype=np.int64), "pad_back"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    nodes = [
        # Per-channel mean -> 3 logits -> 3 sigmoids s_k.
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "W", "B"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["s"]),
        # p_ge_k = s_1 * ... * s_k (a cumulative product, via exp(cumsum(log))): non-increasing in k.
        helper.make_node("Log", ["s"], ["log_s"]),
        helper.make_node("CumSum", ["log_s", "axis1"], ["cum_log_s"]),
        helper.make_node("Exp", ["cum_log_s"], ["p_ge"]),
        # grade_probs = [1, p1, p2, p3] - [p1, p2, p3, 0].
        helper.make_node("Pad", ["p_ge", "pad_front", "one"], ["upper"], mode="constant"),
        helper.make_node("Pad", ["p_ge", "pad_back", "zero"], ["lower"], mode="constant"),
        helper.make_node("Sub", ["upper", "lower"], ["grade_probs"]),
    ]
    outputs = [
        helper.make_tensor_value_info("grade_probs", TensorProto.FLOAT, ["N", 4]),
        helper.make_tensor_value_info("p_ge", TensorProto.FLOAT, ["N", 3]),
    ]
    if gate is not None:
        # The v2 photo gate: (scene W, scene b, quality W, quality b) on the per-channel means.
        ws, bs, wq, bq = (np.asarray(a, dtype=np.float32) for a in gate)
        initializers += [
            numpy_helper.from_array(ws, "WS"),
            numpy_helper.from_array(bs, "BS"),
            numpy_helper.from_array(wq, "WQ"),
            numpy_helper.from_array(bq, "BQ"),
        ]
        nodes += [
            helper.make_node("Gemm", ["features", "WS", "BS"], ["scene_logits"]),
            helper.make_node("Softmax", ["scene_logits"], ["scene_probs"], axis=1),
            helper.make_node("Gemm", ["features", "WQ", "BQ"], ["quality_logits"]),
            helper.make_node("Softmax", ["quality_logits"], ["quality_probs"], axis=1),
        ]
        outputs += [
            helper.make_tensor_value_info("scene_probs", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("quality_probs", TensorProto.FLOAT, ["N", 4]),
        ]
    graph = helper.make_graph(
        nodes,
        "claimlane_tiny",
        inputs=[helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])],
        outputs=outputs,
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="claimlane-tests"
    )
    model.ir_version = 8  # the IR of opset 17, which any supported onnxruntime reads
    helper.set_model_props(
        model,
        {
            "claimlane.model_version": version,
            "claimlane.input_size": "224",
            "claimlane.mean": json.dumps([0.5, 0.5, 0.5]),
            "claimlane.std": json.dumps([0.5, 0.5, 0.5]),
            "claimlane.temperature": "1.0",
            "claimlane.grade_names": json.dumps(["none", "cosmetic", "structural", "severe"]),
            "claimlane.architecture": architecture,
            **(extra_props or {}),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model
