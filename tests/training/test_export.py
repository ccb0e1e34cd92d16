"""ONNX export: Pad folding on a hand-built graph, and ORT-vs-PyTorch parity of a real network."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from training.config import load_config
from training.export import PARITY_ATOL, export_version, fold_pads_into_convs, load_torch_model
from training.networks import build_network


def _pad_conv_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    pads = numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=np.int64), "pads")
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["padded"], mode="constant"),
        helper.make_node("Conv", ["padded", "w"], ["y"], strides=[2, 2], kernel_shape=[3, 3]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[w, pads],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_pads_fold_into_convs_without_changing_results():
    model = _pad_conv_model()
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    before = _run(model, x)
    assert fold_pads_into_convs(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    pads = next(a for a in model.graph.node[0].attribute if a.name == "pads")
    assert list(pads.ints) == [0, 0, 1, 1]
    np.testing.assert_allclose(_run(model, x), before, atol=1e-6)


@pytest.mark.slow
def test_onnx_runtime_matches_pytorch(tmp_path):
    cfg = load_config(None, export={"version": "parity-test"})
    net = build_network("efficientnet_lite0", pretrained=True).eval()
    images = np.random.default_rng(2).uniform(-1, 1, size=(3, 3, 224, 224)).astype(np.float32)
    version_dir = export_version(net, 1.7, cfg, tmp_path, parity_images=images)
    model = onnx.load(version_dir / "model.onnx")
    assert model.opset_import[0].version >= 17
    assert not [n for n in model.graph.node if n.op_type == "Pad"]  # folded into the convs
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["claimlane.model_version"] == "parity-test" and meta["claimlane.temperature"].startswith(
        "1.7"
    )

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        str(version_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    for batch in (images[:1], images):  # dynamic batch
        ort_probs = session.run(["grade_probs"], {"image": batch})[0]
        import torch

        from training.networks import CalibratedDamageNet

        with torch.no_grad():
            torch_probs = CalibratedDamageNet(net, 1.7).eval()(torch.from_numpy(batch))[0].numpy()
        assert np.abs(ort_probs - torch_probs).max() <= PARITY_ATOL
    # the float16 checkpoint reloads into an eager twin that still agrees closely
    twin = load_torch_model(version_dir)
    import torch

    with torch.no_grad():
        twin_probs = twin(torch.from_numpy(images))[0].numpy()
    assert np.abs(twin_probs - session.run(["grade_probs"], {"image": images})[0]).max() < 1e-2


@pytest.mark.slow
def test_damage_map_output_is_the_score_decomposed_by_location(tmp_path):
    """The exported damage_map is Grad-CAM for this head: its mean plus the head's bias is the
    damage score itself, so the heatmap shows exactly what drove the grade."""
    import torch

    from training.networks import CalibratedDamageNet

    cfg = load_config(None, export={"version": "map-test"})
    net = build_network("mobilenet_v3_small", pretrained=False).eval()
    version_dir = export_version(net, 1.5, cfg, tmp_path)
    session = ort.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["grade_probs", "p_ge", "damage_map"]
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, 3, 224, 224)).astype(np.float32)
    _, p_ge, damage_map = session.run(None, {"image": x})
    assert damage_map.shape == (2, 7, 7)
    with torch.no_grad():
        first_logit = torch.logit(torch.from_numpy(p_ge[:, 0]).double()) * 1.5
        score = torch.from_numpy(damage_map).double().mean((1, 2)) + net.head.score.bias.double()
        np.testing.assert_allclose(score - net.head.cut_points()[0].double(), first_logit, atol=1e-3)
        torch_map = CalibratedDamageNet(net, 1.5)(torch.from_numpy(x))[2].numpy()
    np.testing.assert_allclose(damage_map, torch_map, atol=1e-4)
