"""Export a trained network to ONNX and lay out a model version folder.

    <version>/model.onnx     image (N,3,224,224) -> grade_probs (N,4), p_ge (N,3); temperature inside
              checkpoint.pt  the network's weights in float16 (fine-tuning start, PyTorch benchmark)
              calibration.json, training.json, SHA256SUMS

Why fold the Pads: TF "SAME" padding exports as a Pad before each stride-2 Conv. A Conv can pad
asymmetrically itself, so each such Pad is folded into its Conv's `pads`: one op fewer per stride-2
layer, and the file shows what runs. Graph optimisation stays at ORT_ENABLE_ALL when serving.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from models.inference import sha256_file
from models.preprocessing import INPUT_SIZE, MEAN, STD
from training.config import RunConfig, config_dict
from training.networks import CalibratedDamageNet, DamageNet, build_network

PARITY_ATOL = 1e-4
OUTPUT_NAMES = ("grade_probs", "p_ge", "damage_map")


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def fold_pads_into_convs(model: onnx.ModelProto) -> int:
    """Fold zero-constant Pad nodes that feed only Convs into the Convs' `pads`. Returns the count."""
    graph = model.graph
    constants = _constant_values(graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    removed = []
    for node in graph.node:
        if node.op_type != "Pad" or node.output[0] in graph_outputs:
            continue
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "constant")
        if mode != "constant" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        if len(node.input) > 2 and node.input[2]:
            value = constants.get(node.input[2])
            if value is None or np.any(value != 0):
                continue
        if len(node.input) > 3 and node.input[3]:
            continue  # pads on selected axes only: leave it
        pads = constants[node.input[1]].astype(np.int64).tolist()
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
            continue  # only spatial padding of an NCHW tensor folds into a Conv
        users = consumers.get(node.output[0], [])
        if not users or any(u.op_type != "Conv" or u.input[0] != node.output[0] for u in users):
            continue
        extra = [pads[2], pads[3], pads[6], pads[7]]  # H_begin, W_begin, H_end, W_end
        for conv in users:
            attrs = {a.name: a for a in conv.attribute}
            if "auto_pad" in attrs and attrs["auto_pad"].s not in (b"", b"NOTSET"):
                break
        else:
            for conv in users:
                attrs = {a.name: a for a in conv.attribute}
                current = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
                merged = [a + b for a, b in zip(current, extra, strict=True)]
                if "pads" in attrs:
                    conv.attribute.remove(attrs["pads"])
                conv.attribute.append(onnx.helper.make_attribute("pads", merged))
                conv.input[0] = node.input[0]
            removed.append(node)
    for node in removed:
        graph.node.remove(node)
    return len(removed)


def export_onnx(
    model: torch.nn.Module,
    path: Path,
    *,
    opset: int,
    metadata: dict[str, str],
    size: int = INPUT_SIZE,
    output_names: tuple[str, ...] = OUTPUT_NAMES,
) -> Path:
    model.eval()
    example = torch.randn(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=["image"],
        output_names=list(output_names),
        dynamic_shapes={"image": {0: batch}},
        optimize=True,
        verbose=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program (dynamo export expected)")
    proto = program.model_proto
    folded = fold_pads_into_convs(proto)
    metadata = dict(metadata) | {"claimlane.folded_pads": str(folded)}
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, path)
    return path


def onnx_parity(model: CalibratedDamageNet, path: Path, images: np.ndarray) -> float:
    """Max abs difference of grade probabilities between ONNX Runtime (ALL optimisations) and eager."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ort_probs = session.run(["grade_probs"], {"image": images.astype(np.float32)})[0]
    with torch.no_grad():
        torch_probs = model.eval()(torch.from_numpy(images.astype(np.float32)))[0].numpy()
    return float(np.abs(ort_probs - torch_probs).max())


def write_checksums(version_dir: Path) -> Path:
    files = sorted(p for p in version_dir.iterdir() if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{sha256_file(p)}  {p.name}" for p in files]
    out = version_dir / "SHA256SUMS"
    out.write_text("\n".join(lines) + "\n")
    return out


def default_version(arch: str) -> str:
    return f"{arch.replace('_', '')}-{time.strftime('%Y.%m.%d')}"


def export_version(
    net: DamageNet,
    temperature: float,
    cfg: RunConfig,
    out_root: Path,
    *,
    train_manifest: Path | None = None,
    training_summary: dict | None = None,
    parity_images: np.ndarray | None = None,
) -> Path:
    """Write `<out_root>/<version>/` and check ONNX Runtime against PyTorch on real inputs."""
    version = cfg.export.version or default_version(cfg.model.arch)
    version_dir = Path(out_root) / version
    version_dir.mkdir(parents=True, exist_ok=True)
    calibrated = CalibratedDamageNet(net, temperature).eval()
    metadata = {
        "claimlane.model_version": version,
        "claimlane.architecture": cfg.model.arch,
        "claimlane.input_size": str(INPUT_SIZE),
        "claimlane.mean": json.dumps(list(MEAN)),
        "claimlane.std": json.dumps(list(STD)),
        "claimlane.temperature": f"{temperature:.6f}",
        "claimlane.grade_names": json.dumps(["none", "cosmetic", "structural", "severe"]),
        "claimlane.train_manifest_sha256": sha256_file(train_manifest) if train_manifest else "",
        "claimlane.created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    onnx_path = export_onnx(calibrated, version_dir / "model.onnx", opset=cfg.export.opset, metadata=metadata)
    if parity_images is None:
        parity_images = np.random.default_rng(0).uniform(-1, 1, (4, 3, INPUT_SIZE, INPUT_SIZE))
    diff = onnx_parity(calibrated, onnx_path, parity_images)
    if diff > PARITY_ATOL:
        raise RuntimeError(f"ONNX Runtime and PyTorch disagree: max |diff| {diff:.2e} > {PARITY_ATOL}")
    torch.save(
        {
            "arch": cfg.model.arch,
            "temperature": temperature,
            "version": version,
            "model": {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()},
        },
        version_dir / "checkpoint.pt",
    )
    (version_dir / "calibration.json").write_text(
        json.dumps(
            {"method": "temperature scaling on the validation split", "temperature": temperature}, indent=2
        )
    )
    (version_dir / "training.json").write_text(
        json.dumps(
            {
                "config": config_dict(cfg),
                "train_manifest_sha256": metadata["claimlane.train_manifest_sha256"],
                "onnx_parity_max_abs_diff": diff,
                **(training_summary or {}),
            },
            indent=2,
            default=str,
        )
    )
    write_checksums(version_dir)
    print(
        f"exported {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB), ONNX vs PyTorch max |diff| {diff:.1e}"
    )
    return version_dir


def load_torch_model(version_dir: str | Path) -> torch.nn.Module:
    """The eager PyTorch twin of a version's model.onnx (weights from its float16 checkpoint).

    v2 models (`training.grading`) store their heads and the name of their ImageNet backbone."""
    state = torch.load(Path(version_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)
    if state.get("format") == "grading-v2":
        from training.grading import load_grading_net

        return load_grading_net(state)
    net = build_network(state["arch"], pretrained=False)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    return CalibratedDamageNet(net, state["temperature"]).eval()


def export_run(run_dir: str | Path, out_root: str | Path, *, version: str | None = None) -> Path:
    """Re-export a finished training run (its best checkpoint and fitted temperature) into
    `out_root/<version>/`, e.g. to ship it under `models/weights/` or after the exporter changed."""
    from training.config import load_config

    run_dir = Path(run_dir)
    raw = json.loads((run_dir / "config.json").read_text())
    cfg = load_config(None, **raw)
    if version:
        cfg.export.version = version
    exports = sorted((run_dir / "export").glob("*/calibration.json"))
    if not exports:
        raise SystemExit(f"{run_dir}: no exported version with calibration.json (has the run finished?)")
    previous = exports[-1].parent
    temperature = json.loads((previous / "calibration.json").read_text())["temperature"]
    summary = json.loads((previous / "training.json").read_text())
    summary = {
        k: v
        for k, v in summary.items()
        if k not in ("config", "train_manifest_sha256", "onnx_parity_max_abs_diff")
    }
    state = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)
    net = build_network(cfg.model.arch, pretrained=False)
    net.load_state_dict(state["model"])
    manifest = run_dir / "manifest.csv"
    return export_version(
        net.eval(),
        temperature,
        cfg,
        Path(out_root),
        train_manifest=manifest if manifest.exists() else None,
        training_summary=summary,
    )


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Re-export a finished training run to ONNX.")
    parser.add_argument("--run", required=True, help="the run folder (runs/<name>)")
    parser.add_argument("--out", default="models/weights", help="where the version folder goes")
    parser.add_argument("--version", help="version name (default: the run's)")
    args = parser.parse_args(argv)
    print(export_run(args.run, args.out, version=args.version))


if __name__ == "__main__":
    main()
