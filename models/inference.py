"""Serve the damage model: an exported ONNX graph run by ONNX Runtime, with no torch in sight.

Why ONNX Runtime and not PyTorch: the serving image stays small (no torch wheel), start-up is fast,
and on CPU ORT's fused graph is faster than eager PyTorch (see `bench/bench_inference.py`).

The model contract (the exporter in `training/` follows it):

- one input ``image``: float32 ``[N, 3, 224, 224]``, dynamic N, made by `models.preprocessing.to_input`;
- outputs ``grade_probs`` float32 ``[N, 4]`` (calibrated, rows sum to 1) and ``p_ge`` float32
  ``[N, 3]`` (P(grade >= k), k = 1..3); anything further is optional and ignored;
- ``metadata_props``: ``claimlane.model_version``, ``claimlane.input_size``, ``claimlane.mean``,
  ``claimlane.std``, ``claimlane.temperature``, ``claimlane.grade_names``, ``claimlane.architecture``.

Optional, from v2 models on (older models serve as before):
- outputs ``scene_probs`` and ``quality_probs`` float32 ``[N, 4]``: the photo gate, over
  ``models.inference.SCENES`` and ``QUALITIES``; a photo is usable when P(parcel) x P(ok) reaches
  the gate threshold;
- ``claimlane.fast_lane``: JSON ``{"thresholds": {"0.02": 0.93, ...}, "delta": 0.1,
  "calibration_size": N, "gate_threshold": 0.5, ...}``: per overpay rate, the offer threshold
  certified on calibration data (`models.fastlane`), read by the policy (`claims.policy.certified_threshold`).

The metadata is checked against `models.preprocessing` when the model is loaded: a model trained on
other pixels (another size or normalisation) would still run, silently giving wrong grades, so it is
refused instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from pydantic import ValidationError

from config.settings import Settings
from models.grades import GRADE_NAMES, NUM_GRADES, grade_probs_from_exceedance, most_likely_grade
from models.preprocessing import INPUT_SIZE, MEAN, STD, ImageError, ImageSource, preprocess

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MODEL_FILENAME = "model.onnx"
CHECKSUM_FILENAME = "SHA256SUMS"
DEFAULT_MAX_BATCH = 16
PROB_DECIMALS = 6

# The settings (config.settings) that name the served model and ONNX Runtime's thread pools.
ENV_MODEL_PATH = "CLAIMLANE_MODEL_PATH"

INPUT_NAME = "image"
OUTPUT_GRADE_PROBS = "grade_probs"
OUTPUT_P_GE = "p_ge"
# Optional: the damage score's class activation map (N, h, w), see `models/heatmaps.py`.
OUTPUT_DAMAGE_MAP = "damage_map"
OUTPUT_SCENE = "scene_probs"
OUTPUT_QUALITY = "quality_probs"
SCENES = ("parcel", "product_box", "not_a_photo", "other")
QUALITIES = ("ok", "dark", "blurred", "too_far")
META_FAST_LANE = "claimlane.fast_lane"

META_PREFIX = "claimlane."
META_VERSION = META_PREFIX + "model_version"
META_INPUT_SIZE = META_PREFIX + "input_size"
META_MEAN = META_PREFIX + "mean"
META_STD = META_PREFIX + "std"
META_TEMPERATURE = META_PREFIX + "temperature"
META_GRADE_NAMES = META_PREFIX + "grade_names"
META_ARCHITECTURE = META_PREFIX + "architecture"


class ModelError(RuntimeError):
    """The model cannot be found or loaded, or does not follow the serving contract."""


class ChecksumError(ModelError):
    """model.onnx does not match the SHA256SUMS shipped beside it (corrupt or swapped weights)."""


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Prediction:
    """The grade of one photo. `grade` is the most likely grade (what the policy acts on)."""

    path: str
    grade: int
    grade_probs: list[float]
    p_damaged: float
    model_version: str

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready record the CLI prints (a dict with exactly these five keys)."""
        return {
            "path": self.path,
            "grade": self.grade,
            "grade_probs": [round(float(p), PROB_DECIMALS) for p in self.grade_probs],
            "p_damaged": round(float(self.p_damaged), PROB_DECIMALS),
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class Assessment:
    """What the worker needs from one run: grade probabilities (N, 4), damage maps (N, h, w) or None,
    and per photo the photo gate's problem (None = usable; always None without a gate)."""

    probs: np.ndarray
    maps: np.ndarray | None
    problems: list[str | None]


@dataclass(frozen=True)
class PredictionError:
    """A photo that could not be graded (unreadable, not an image, too large, ...)."""

    path: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error}


# --------------------------------------------------------------------------------------------------
# Locating and verifying weights


def default_model_path(weights_dir: str | os.PathLike[str] | None = None) -> Path:
    """The bundled model: ``$CLAIMLANE_MODEL_PATH`` if set, else the newest version folder under
    ``models/weights/`` (newest = last by folder name, e.g. ``effnetlite0-2026.11.22``) that holds a
    ``model.onnx``.

    Raises ModelError when there is none, so a missing model fails loudly at start-up rather than at
    the first claim.
    """
    configured = Settings().model_path
    if configured is not None and str(configured).strip():
        return _model_file(configured)
    root = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    folders = root.iterdir() if root.is_dir() else ()
    candidates = sorted(
        (d for d in folders if d.is_dir() and (d / MODEL_FILENAME).is_file()), key=lambda d: d.name
    )
    if not candidates:
        raise ModelError(
            f"no bundled model: no folder under {root} contains {MODEL_FILENAME}; "
            f"export one there or set {ENV_MODEL_PATH} (or pass --model)"
        )
    return candidates[-1] / MODEL_FILENAME


def verify_checksum(version_dir: str | os.PathLike[str]) -> bool:
    """Check ``model.onnx`` against the ``SHA256SUMS`` file (sha256sum format) of a weights folder.

    Returns True when verified, False when the folder carries no SHA256SUMS (nothing to check).
    Raises ChecksumError on a mismatch or when SHA256SUMS has no entry for model.onnx: serving
    corrupted or swapped weights would give plausible-looking but wrong grades, which is worse than
    not starting.
    """
    version_dir = Path(version_dir)
    sums_file = version_dir / CHECKSUM_FILENAME
    if not sums_file.is_file():
        return False
    expected: str | None = None
    for line in sums_file.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or parts[0].startswith("#"):
            continue
        digest, name = parts
        name = name.lstrip("*")  # binary-mode marker of sha256sum
        if name.removeprefix("./") == MODEL_FILENAME:
            expected = digest.lower()
    if expected is None:
        raise ChecksumError(f"{sums_file} has no entry for {MODEL_FILENAME}")
    actual = sha256_file(version_dir / MODEL_FILENAME)
    if actual != expected:
        raise ChecksumError(
            f"{version_dir / MODEL_FILENAME} does not match {sums_file}: sha256 {actual}, expected {expected}"
        )
    return True


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (model files are tens of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _model_file(path: str | os.PathLike[str]) -> Path:
    """A model path, or a version folder holding model.onnx, as a resolved file path."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / MODEL_FILENAME
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return p.resolve()


# Claims assessed at once in one process (workers.dispatch's pool, Celery's prefork concurrency):
# by default ONNX Runtime gets cores / this many threads per run, so the assessments running side by
# side (and the uploads' decoders) do not oversubscribe the cores.
CONCURRENT_ASSESSMENTS = 2


def _thread_count(value: int | None, configured: int, *, default: int = 0) -> int:
    if value is None:
        value = configured or default
    if value < 0:
        raise ModelError(f"thread count must be >= 0 (0 = ONNX Runtime default), got {value}")
    return value


# --------------------------------------------------------------------------------------------------
# The model


_RUNS: ThreadPoolExecutor | None = None
_RUNS_LOCK = threading.Lock()


def _runs() -> ThreadPoolExecutor:
    """The threads that run a claim's chunks side by side, one per core, shared by every model of
    the process (a model swapped for a new champion leaves no threads behind), so concurrent
    assessments never run more chunks at once than there are cores."""
    global _RUNS
    with _RUNS_LOCK:
        if _RUNS is None:
            _RUNS = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="onnx-run")
        return _RUNS


class DamageModel:
    """One ONNX Runtime session over one exported damage model.

    `InferenceSession.run` is thread-safe, so a single instance can serve concurrent requests; build
    instances through `load_model`, which shares one per model file per process.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        intra_op_num_threads: int | None = None,
        inter_op_num_threads: int | None = None,
        verify: bool = True,
    ) -> None:
        """Load and check a model. Thread counts default to ``$CLAIMLANE_ORT_INTRA_THREADS`` /
        ``$CLAIMLANE_ORT_INTER_THREADS``; 0 (or unset) means ONNX Runtime's own default (one
        thread per physical core). Pin them when several workers share a machine, or they fight
        over the cores.
        """
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.path: Path = _model_file(path)
        self.max_batch = max_batch
        if verify:
            verify_checksum(self.path.parent)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            settings = Settings()
        except ValidationError as exc:
            raise ModelError(f"invalid ONNX Runtime settings: {exc}") from exc
        fair_share = max(1, (os.cpu_count() or 1) // CONCURRENT_ASSESSMENTS)
        options.intra_op_num_threads = _thread_count(
            intra_op_num_threads, settings.ort_intra_threads, default=fair_share
        )
        options.inter_op_num_threads = _thread_count(inter_op_num_threads, settings.ort_inter_threads)
        # How many session runs fit the cores side by side: `assess` splits a claim's photos over
        # them, so one claim on an idle machine uses every core, without oversubscribing a busy one
        # (each run uses its caller's thread plus intra_op - 1 of ONNX Runtime's).
        self.parallel_runs = max(1, (os.cpu_count() or 1) // max(1, options.intra_op_num_threads))
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelError(f"cannot load ONNX model {self.path}: {exc}") from exc

        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_io()
        self._read_metadata()

    def __repr__(self) -> str:
        return f"DamageModel(version={self.version!r}, path={str(self.path)!r})"

    # -- contract checks ---------------------------------------------------------------------------

    def _check_io(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        if INPUT_NAME not in inputs:
            raise ModelError(f"{self.path}: no input named {INPUT_NAME!r} (has {sorted(inputs)})")
        shape = inputs[INPUT_NAME].shape
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise ModelError(f"{self.path}: input {INPUT_NAME!r} must be [N, 3, H, W], got {shape}")
        self._graph_input_size = next((d for d in shape[2:] if isinstance(d, int)), None)

        outputs = {o.name: o for o in self.session.get_outputs()}
        if OUTPUT_GRADE_PROBS in outputs:
            self._output = OUTPUT_GRADE_PROBS
        elif OUTPUT_P_GE in outputs:
            # Older or partial exports: per-grade probabilities follow from the exceedances.
            self._output = OUTPUT_P_GE
        else:
            raise ModelError(
                f"{self.path}: no output named {OUTPUT_GRADE_PROBS!r} or {OUTPUT_P_GE!r} "
                f"(has {sorted(outputs)})"
            )
        self.has_damage_map = OUTPUT_DAMAGE_MAP in outputs
        self.has_gate = OUTPUT_SCENE in outputs and OUTPUT_QUALITY in outputs

    def _read_metadata(self) -> None:
        meta = self.metadata
        fallback_version = self.path.parent.name if self.path.name == MODEL_FILENAME else self.path.stem
        self.version: str = meta.get(META_VERSION) or fallback_version
        missing = [
            k for k in (META_VERSION, META_INPUT_SIZE, META_MEAN, META_STD, META_GRADE_NAMES) if k not in meta
        ]
        if missing:
            logger.warning("%s: metadata %s missing; assuming the serving defaults", self.path, missing)

        # Input size: metadata, else the graph's static shape, else ours.
        if META_INPUT_SIZE in meta:
            try:
                self.input_size = int(meta[META_INPUT_SIZE])
            except ValueError:
                raise ModelError(
                    f"{self.path}: {META_INPUT_SIZE} is not an integer: {meta[META_INPUT_SIZE]!r}"
                ) from None
        else:
            self.input_size = self._graph_input_size or INPUT_SIZE
        # Serving preprocesses to the model's own size (`preprocess(data, model.input_size)`); the
        # metadata and the graph must agree, or the model would be fed pixels of the wrong size.
        if not 32 <= self.input_size <= 1024 or self._graph_input_size not in (None, self.input_size):
            raise ModelError(
                f"{self.path}: model metadata says {self.input_size}px input but the graph takes "
                f"{self._graph_input_size}px; re-export the model"
            )

        mean = self._json_list(META_MEAN, default=list(MEAN))
        std = self._json_list(META_STD, default=list(STD))
        for name, got, ours in (("mean", mean, MEAN), ("std", std, STD)):
            if len(got) != len(ours) or not np.allclose(got, ours, rtol=0, atol=1e-6):
                raise ModelError(
                    f"{self.path}: model was trained with normalisation {name}={got} but serving "
                    f"uses {list(ours)}; it would be fed wrong pixels"
                )

        grade_names = self._json_list(META_GRADE_NAMES, default=list(GRADE_NAMES))
        if tuple(grade_names) != GRADE_NAMES:
            raise ModelError(
                f"{self.path}: model grades {grade_names} differ from the grade scale {list(GRADE_NAMES)}"
            )
        self.grade_names: tuple[str, ...] = tuple(grade_names)

        self.temperature: float | None = None
        if META_TEMPERATURE in meta:
            try:
                self.temperature = float(meta[META_TEMPERATURE])
            except ValueError:
                logger.warning("%s: unparsable %s=%r", self.path, META_TEMPERATURE, meta[META_TEMPERATURE])
        self.architecture: str | None = meta.get(META_ARCHITECTURE)
        self.fast_lane: dict[str, Any] | None = None
        if META_FAST_LANE in meta:
            try:
                fast_lane = json.loads(meta[META_FAST_LANE])
                thresholds = {
                    Decimal(rate): None if t is None else Decimal(str(t))
                    for rate, t in fast_lane["thresholds"].items()
                }
                gate = fast_lane.get("gate_threshold")
            except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                raise ModelError(f"{self.path}: unreadable {META_FAST_LANE}: {exc}") from None
            self.fast_lane = fast_lane
            self.fast_lane_thresholds: dict[Decimal, Decimal | None] | None = thresholds
            self.gate_threshold: float | None = None if gate is None else float(gate)
        else:
            self.fast_lane_thresholds = None
            self.gate_threshold = None

    def _json_list(self, key: str, default: list[Any]) -> list[Any]:
        if key not in self.metadata:
            return default
        try:
            value = json.loads(self.metadata[key])
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, list):
            raise ModelError(f"{self.path}: metadata {key} is not a JSON list: {self.metadata[key]!r}")
        return value

    # -- inference ---------------------------------------------------------------------------------

    def predict_arrays(self, batch: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Preprocessed inputs ``(N, 3, 224, 224)`` -> grade probabilities ``(N, 4)`` float64.

        Runs in chunks of `batch_size` (default `max_batch`) so memory stays bounded whatever N is.
        """
        batch = np.asarray(batch)
        size = self.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            raise ValueError(f"expected an array of shape (N, 3, {size}, {size}), got {batch.shape}")
        step = batch_size or self.max_batch
        if step < 1:
            raise ValueError(f"batch_size must be >= 1, got {step}")
        chunks = [
            self._run(np.ascontiguousarray(batch[i : i + step], dtype=np.float32))
            for i in range(0, len(batch), step)
        ]
        if not chunks:
            return np.zeros((0, NUM_GRADES), dtype=np.float64)
        return np.concatenate(chunks, axis=0)

    def predict_with_maps(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Grade probabilities and, when the model exports one, the damage map of each input
        (N, h, w): where the model's damage score came from. One session run for both."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if not self.has_damage_map:
            return self.predict_arrays(batch), None
        probs, maps = [], []
        for i in range(0, len(batch), self.max_batch):
            p, m = self._run(batch[i : i + self.max_batch], with_map=True)
            probs.append(p)
            maps.append(m)
        if not probs:
            return np.zeros((0, NUM_GRADES)), None
        return np.concatenate(probs), np.concatenate(maps)

    def assess(self, batch: np.ndarray) -> Assessment:
        """Grades, damage maps and the photo gate's verdicts of preprocessed inputs, in one session
        run per chunk (the gate shares the backbone's features, so it costs nothing extra). The
        chunks (at most `max_batch` inputs, and the batch split over `parallel_runs`) run side by
        side: a claim's photos are graded on every core instead of one after the other on one."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        runs = min(self.parallel_runs, len(batch))
        step = min(self.max_batch, -(-len(batch) // runs)) if runs else self.max_batch
        chunks = [batch[i : i + step] for i in range(0, len(batch), step)]
        if len(chunks) > 1:
            results = list(_runs().map(self._assess_chunk, chunks))
        else:
            results = [self._assess_chunk(chunk) for chunk in chunks]
        probs_parts = [r[0] for r in results]
        map_parts = [r[1] for r in results if r[1] is not None]
        problems = [p for r in results for p in r[2]]
        probs = np.concatenate(probs_parts) if probs_parts else np.zeros((0, NUM_GRADES))
        maps = np.concatenate(map_parts) if map_parts else None
        return Assessment(probs, maps, problems)

    def _assess_chunk(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, list[str | None]]:
        """One session run: (grade probabilities, damage maps or None, the gate's verdicts)."""
        names = [self._output]
        if self.has_damage_map:
            names.append(OUTPUT_DAMAGE_MAP)
        if self.has_gate:
            names += [OUTPUT_SCENE, OUTPUT_QUALITY]
        results = self.session.run(names, {INPUT_NAME: chunk})
        probs = self._grade_probs(np.asarray(results[0], dtype=np.float64), len(chunk))
        maps = np.asarray(results[1], dtype=np.float32) if self.has_damage_map else None
        if self.has_gate:
            scene = np.asarray(results[-2], dtype=np.float64)
            quality = np.asarray(results[-1], dtype=np.float64)
            problems = gate_problems(scene, quality, self.gate_threshold)
        else:
            problems = [None] * len(chunk)
        return probs, maps, problems

    def _run(self, batch: np.ndarray, *, with_map: bool = False):
        names = [self._output, OUTPUT_DAMAGE_MAP] if with_map else [self._output]
        results = self.session.run(names, {INPUT_NAME: batch})
        out = self._grade_probs(np.asarray(results[0], dtype=np.float64), len(batch))
        if with_map:
            return out, np.asarray(results[1], dtype=np.float32)
        return out

    def _grade_probs(self, out: np.ndarray, n: int) -> np.ndarray:
        if self._output == OUTPUT_P_GE:
            out = grade_probs_from_exceedance(out)
        if out.shape != (n, NUM_GRADES):
            raise ModelError(
                f"{self.path}: expected grade probabilities of shape {(n, NUM_GRADES)}, got {out.shape}"
            )
        if not np.all(np.isfinite(out)):
            raise ModelError(f"{self.path}: model produced non-finite probabilities")
        # Renormalise in float64: the float32 rows sum to 1 only within ~1e-7.
        out = np.clip(out, 0.0, 1.0)
        return out / out.sum(axis=1, keepdims=True)

    def predict_images(
        self, sources: Iterable[ImageSource], *, batch_size: int | None = None
    ) -> list[Prediction | PredictionError]:
        """Grade photos (paths, bytes or files), one result per source in order. A photo that
        cannot be decoded gives a `PredictionError`; the others are still graded."""
        return list(self.iter_predictions(sources, batch_size=batch_size))

    def iter_predictions(
        self, sources: Iterable[ImageSource], *, batch_size: int | None = None
    ) -> Iterator[Prediction | PredictionError]:
        """Like `predict_images`, but lazy: decodes and yields batch by batch, in input order, so
        a huge folder never sits in memory at once (at most `batch_size` results are pending)."""
        step = batch_size or self.max_batch
        if step < 1:
            raise ValueError(f"batch_size must be >= 1, got {step}")
        pending: list[tuple[str, np.ndarray | str]] = []
        for index, source in enumerate(sources):
            name = _source_name(source, index)
            try:
                pending.append((name, preprocess(source, self.input_size)))
            except Exception as exc:  # one bad photo must never stop the others
                pending.append((name, _describe_error(exc)))
            if len(pending) >= step:
                yield from self._flush(pending)
                pending = []
        yield from self._flush(pending)

    def _flush(self, pending: list[tuple[str, np.ndarray | str]]) -> list[Prediction | PredictionError]:
        arrays = [item for _, item in pending if isinstance(item, np.ndarray)]
        probs = self.predict_arrays(np.stack(arrays)) if arrays else np.zeros((0, NUM_GRADES))
        grades = most_likely_grade(probs)
        results: list[Prediction | PredictionError] = []
        row = 0
        for name, item in pending:
            if isinstance(item, str):
                results.append(PredictionError(path=name, error=item))
                continue
            p = probs[row]
            results.append(
                Prediction(
                    path=name,
                    grade=int(grades[row]),
                    grade_probs=[float(x) for x in p],
                    p_damaged=float(1.0 - p[0]),
                    model_version=self.version,
                )
            )
            row += 1
        return results


def gate_problems(scene: np.ndarray, quality: np.ndarray, threshold: float | None) -> list[str | None]:
    """The photo gate's verdict per photo from its scene and quality probabilities.

    Usable when P(parcel) x P(ok) >= threshold (0.5 when the model names none). An unusable photo's
    problem is `not_a_parcel` when the scene is the weaker factor, else its most likely quality
    problem: what the customer should change when retaking it.
    """
    t = 0.5 if threshold is None else threshold
    p_parcel = scene[:, SCENES.index("parcel")]
    p_ok = quality[:, QUALITIES.index("ok")]
    out: list[str | None] = []
    for i in range(len(scene)):
        if p_parcel[i] * p_ok[i] >= t:
            out.append(None)
        elif p_parcel[i] <= p_ok[i]:
            out.append("not_a_parcel")
        else:
            worst = 1 + int(np.argmax(quality[i, 1:]))
            out.append(QUALITIES[worst])
    return out


def _source_name(source: ImageSource, index: int) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else f"<input {index}>"


def _describe_error(exc: Exception) -> str:
    """A one-line, user-facing reason (no traceback) for a photo that could not be decoded."""
    if isinstance(exc, ImageError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError):
        return f"cannot read file: {exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding the image"
    return f"cannot decode image ({type(exc).__name__}: {exc})"


# --------------------------------------------------------------------------------------------------
# Process-wide cache

_MODELS: dict[Path, DamageModel] = {}
_MODELS_LOCK = threading.Lock()


def load_model(path: str | os.PathLike[str] | None = None) -> DamageModel:
    """The `DamageModel` for a model file (or version folder); None = `default_model_path()`.

    One ONNX Runtime session per model file per process: a session holds the weights plus its own
    thread pools, so one per request (or per caller) would multiply memory and oversubscribe the
    cores, and loading costs far more than an inference. Sessions are thread-safe, so sharing is
    safe. The lock makes concurrent first calls build a single session rather than racing.
    """
    file = _model_file(path if path is not None else default_model_path())
    with _MODELS_LOCK:
        model = _MODELS.get(file)
        if model is None:
            model = DamageModel(file)
            _MODELS[file] = model
        return model
