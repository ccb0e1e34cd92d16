"""Benchmark serving: ONNX Runtime vs PyTorch eager on the same model, and draft-mode JPEG decoding.

    python bench/bench_inference.py [--model PATH] [--iters N] [--warmup N]

Prints a markdown table: images/second and p50/p95 latency per call for ONNX Runtime and PyTorch
eager at batch 1 and 8, and for decode + preprocess of a 12-megapixel JPEG with draft mode (what
serving does) vs a full decode then resize. The ratio column is the speed-up of the first of each
pair over the second. This is a measurement, not a test: numbers depend on the machine and load.

PyTorch rows need the `train` extra and a ``checkpoint.pt`` beside ``model.onnx``; without them they
read "n/a" rather than failing.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from models.inference import DamageModel, ModelError, load_model  # noqa: E402
from models.preprocessing import INPUT_SIZE, preprocess, to_input  # noqa: E402

NA_EAGER = "n/a (train extra or checkpoint missing)"
ONE_CORE_BUDGET_MS = 25.0


@dataclass
class Timing:
    batch: int
    latencies: np.ndarray  # seconds per call

    @property
    def images_per_s(self) -> float:
        return self.batch * len(self.latencies) / float(self.latencies.sum())

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.latencies, 50) * 1e3)

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.latencies, 95) * 1e3)


def time_calls(fn: Callable[[], object], *, batch: int, iters: int, warmup: int) -> Timing:
    """Per-call wall-clock latency of `fn`, after `warmup` untimed calls (thread pools spin up,
    allocators and caches warm, so the first calls are not representative)."""
    for _ in range(warmup):
        fn()
    latencies = np.empty(iters)
    for i in range(iters):
        start = time.perf_counter()
        fn()
        latencies[i] = time.perf_counter() - start
    return Timing(batch, latencies)


def synthetic_photo_jpeg(width: int = 4000, height: int = 3000, seed: int = 0) -> bytes:
    """A 12-megapixel phone-photo-like JPEG, made in memory: smooth shading plus sensor noise
    (pure noise would be unrealistically slow to decode, a flat image unrealistically fast)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    base = np.stack(
        [150 + 60 * np.sin(6 * x + 2 * y), 120 + 50 * np.cos(4 * y - 3 * x), 90 + 40 * (x * y)], axis=-1
    )
    noisy = base + rng.normal(0.0, 6.0, size=(height, width, 1)).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def preprocess_full_decode(data: bytes, size: int = INPUT_SIZE) -> np.ndarray:
    """The naive path: decode every pixel of the JPEG, then resize (no draft mode)."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        upright = ImageOps.exif_transpose(img).convert("RGB")
    return to_input(upright, size)


def load_eager(model: DamageModel):
    """The same network as a PyTorch eager module, or (None, reason) when unavailable."""
    checkpoint = model.path.parent / "checkpoint.pt"
    try:
        import torch

        from training.export import load_torch_model
    except ImportError:
        return None, NA_EAGER
    if not checkpoint.is_file():
        return None, NA_EAGER
    try:
        net = load_torch_model(model.path.parent).eval()
    except Exception as exc:  # a broken checkpoint should not hide the other rows
        print(f"warning: cannot load {checkpoint}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None, f"n/a (checkpoint failed to load: {type(exc).__name__})"
    return (torch, net), ""


def fmt_ratio(numerator: Timing | None, denominator: Timing | None, label: str) -> str:
    if numerator is None or denominator is None:
        return "n/a"
    return f"{numerator.images_per_s / denominator.images_per_s:.2f}x {label}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", metavar="PATH", help="model.onnx or version folder (default: bundled)")
    parser.add_argument("--iters", type=int, default=50, help="timed calls per row (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error("--iters must be >= 1 and --warmup >= 0")

    try:
        model = load_model(args.model)
    except ModelError as exc:
        print(f"error: cannot load model: {exc}", file=sys.stderr)
        return 2
    timing = {"iters": args.iters, "warmup": args.warmup}
    rng = np.random.default_rng(0)
    size = model.input_size
    inputs = {b: rng.uniform(-1, 1, size=(b, 3, size, size)).astype(np.float32) for b in (1, 8)}

    rows: list[tuple[str, int, Timing | None, str]] = []  # (case, batch, timing, ratio or n/a text)
    ort_t = {b: time_calls(partial(model.predict_arrays, inputs[b]), batch=b, **timing) for b in (1, 8)}

    eager, reason = load_eager(model)
    eager_t: dict[int, Timing | None] = {1: None, 8: None}
    notes: list[str] = []
    if eager is not None:
        torch, net = eager

        def run_eager(b: int):
            with torch.inference_mode():
                return net(torch.from_numpy(inputs[b]))

        eager_t = {b: time_calls(partial(run_eager, b), batch=b, **timing) for b in (1, 8)}
        diff = np.abs(
            model.predict_arrays(inputs[8]) - run_eager(8)[0].double().numpy()
        ).max()  # grade_probs first
        notes.append(f"max |ONNX Runtime - eager| grade probability on the batch-8 input: {diff:.2e}")
    for b in (1, 8):
        rows.append(("ONNX Runtime", b, ort_t[b], fmt_ratio(ort_t[b], eager_t[b], "vs eager")))
    # The model's budget (issue 11): at most 25 ms per photo on one core.
    one_core = DamageModel(model.path, intra_op_num_threads=1, inter_op_num_threads=1)
    one_t = time_calls(lambda: one_core.predict_arrays(inputs[1]), batch=1, **timing)
    budget = (
        f"budget {ONE_CORE_BUDGET_MS:.0f} ms: {'within' if one_t.p50_ms <= ONE_CORE_BUDGET_MS else 'OVER'}"
    )
    rows.append(("ONNX Runtime, one core", 1, one_t, budget))
    size_mb = model.path.stat().st_size / 1e6
    notes.append(f"model.onnx is {size_mb:.1f} MB (budget 30 MB), input {size}x{size} px")
    for b in (1, 8):
        rows.append(("PyTorch eager", b, eager_t[b], "baseline" if eager_t[b] else reason))

    jpeg = synthetic_photo_jpeg()
    draft_t = time_calls(lambda: preprocess(jpeg, size), batch=1, **timing)
    full_t = time_calls(lambda: preprocess_full_decode(jpeg), batch=1, **timing)
    diff = np.abs(preprocess(jpeg, size) - preprocess_full_decode(jpeg, size)).mean()
    notes.append(f"draft vs full decode: mean |input difference| {diff:.4f} (pixels in [-1, 1])")
    rows.append(
        ("12 MP JPEG decode+preprocess, draft mode", 1, draft_t, fmt_ratio(draft_t, full_t, "vs full"))
    )
    rows.append(("12 MP JPEG decode+preprocess, full decode", 1, full_t, "baseline"))

    print_report(model, rows, notes, args, eager, len(jpeg))
    return 0


def print_report(model, rows, notes, args, eager, jpeg_bytes: int) -> None:
    options = model.session.get_session_options()
    threads = [
        f"intra={options.intra_op_num_threads or 'default'}",
        f"inter={options.inter_op_num_threads or 'default'}",
    ]
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    print(f"# Inference benchmark: {model.version}\n")
    cpu = f"{platform.machine()} {platform.processor() or ''}".rstrip()
    print(f"- machine: {cpu}, {os.cpu_count()} CPU cores ({usable} usable by this process)")
    print(
        f"- Python {platform.python_version()}, ONNX Runtime {ort.__version__}, threads {' '.join(threads)}"
    )
    if eager is not None:
        torch, _ = eager
        print(f"- PyTorch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    print(
        f"- {args.iters} timed calls per row after {args.warmup} warm-up calls; latency is per call "
        f"(a whole batch); JPEG is 4000x3000, {jpeg_bytes / 1e6:.1f} MB\n"
    )
    print("| Case | Batch | Images/s | p50 latency (ms) | p95 latency (ms) | Ratio |")
    print("|---|---:|---:|---:|---:|---|")
    for case, batch, timing, ratio in rows:
        if timing is None:
            print(f"| {case} | {batch} | {ratio} | | | |")
        else:
            print(
                f"| {case} | {batch} | {timing.images_per_s:.1f} | {timing.p50_ms:.2f} "
                f"| {timing.p95_ms:.2f} | {ratio} |"
            )
    if notes:
        print()
        for note in notes:
            print(f"- {note}")


if __name__ == "__main__":
    sys.exit(main())
