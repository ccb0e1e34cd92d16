"""Evaluate a damage model on a manifest and write a report anyone can read and re-slice.

    python -m training.evaluate --model models/weights/v3 --data data/manifest.csv --out runs/eval \
        --split test --focus real-intact-brown

Writes to the output folder:
- `metrics.json`: overall binary metrics, grade metrics over graded rows, a per-source breakdown,
  bootstrap 95% intervals, counts, failed images, model version, manifest path and sha256, date.
- `predictions.csv`: one line per evaluated photo (labels, p0..p3, p_damaged, predicted grade).
- `summary.md`: headline table, per-source table, focus subsets, grade confusion matrix, plots.
- `roc.png`, `confusion_grades.png`, `reliability.png`.

`evaluate_predictions` builds the same report from manifest rows and an (N, 4) array of grade
probabilities, so the training loop and tests produce it without ONNX.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models import metrics as M
from models.grades import GRADE_NAMES, NUM_GRADES, most_likely_grade, p_damaged
from models.inference import sha256_file
from training.manifest import SPLITS, Row, read_manifest

THRESHOLD = 0.5
N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0
FILES = {
    "metrics": "metrics.json",
    "predictions": "predictions.csv",
    "summary": "summary.md",
    "roc": "roc.png",
    "confusion": "confusion_grades.png",
    "reliability": "reliability.png",
}
MAX_LISTED = 20  # failed images / false positives listed in summary.md (metrics.json has them all)


# --- numbers -------------------------------------------------------------------------------------


def _ci(fn, *arrays: np.ndarray, n: int) -> list[float]:
    return list(M.bootstrap_ci(fn, *arrays, n=n, seed=BOOTSTRAP_SEED))


def _auroc_ci(y: np.ndarray, p: np.ndarray, n: int) -> list[float]:
    if len(np.unique(y)) < 2:
        return [math.nan, math.nan]  # undefined on a one-class subset: do not pretend otherwise
    return _ci(M.auroc, y, p, n=n)


def _binary_block(y: np.ndarray, p: np.ndarray, n_boot: int) -> dict[str, Any]:
    block: dict[str, Any] = M.binary_metrics(y, p, THRESHOLD)
    fpr_bootstrap = (
        _ci(lambda yy, pp: M.false_positive_rate(yy, pp, THRESHOLD), y, p, n=n_boot)
        if block["negatives"]
        else [math.nan, math.nan]
    )
    block["ci95"] = {
        "auroc": _auroc_ci(y, p, n_boot),
        "fpr": fpr_bootstrap,
        "fpr_wilson": list(M.wilson_interval(block["fp"], block["negatives"])),
    }
    return block


def _grade_block(grades: np.ndarray, probs: np.ndarray) -> dict[str, Any] | None:
    graded = grades >= 0
    if not graded.any():
        return None
    return M.grade_metrics(grades[graded], probs[graded])


def _jsonable(obj: Any) -> Any:
    """NaN/inf -> null (strict JSON), numpy scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


# --- the report ----------------------------------------------------------------------------------


def evaluate_predictions(
    rows: Sequence[Row],
    grade_probs: Any,
    out_dir: str | os.PathLike[str],
    *,
    model_version: str,
    title: str = "ClaimLane damage model evaluation",
    manifest_path: str | os.PathLike[str] | None = None,
    split: str | None = None,
    focus: Sequence[str] = (),
    failed: Sequence[tuple[Row, str]] = (),
    n_bootstrap: int = N_BOOTSTRAP,
) -> dict[str, Any]:
    """Write metrics.json, predictions.csv, summary.md and the plots for `rows` and their predictions.

    `grade_probs[i]` is the model's (4,) grade distribution for `rows[i]`. `failed` lists rows that
    could not be predicted (with the reason): counted and listed, not scored. `focus` names sources
    that get their own prominent section (false positive rate with interval). Returns the metrics dict
    (as written to metrics.json, NaN as None).
    """
    rows = list(rows)
    probs = np.asarray(grade_probs, dtype=np.float64)
    if not rows and probs.size == 0:
        probs = probs.reshape(0, NUM_GRADES)
    if probs.shape != (len(rows), NUM_GRADES):
        raise ValueError(f"grade_probs must have shape ({len(rows)}, {NUM_GRADES}), got {probs.shape}")
    if not np.all(np.isfinite(probs)):
        raise ValueError("grade_probs contains NaN or infinite values")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    y = np.array([r.damaged for r in rows], dtype=np.int64)
    grades = np.array([-1 if r.grade is None else r.grade for r in rows], dtype=np.int64)
    sources = np.array([r.source for r in rows], dtype=object)
    pd = np.clip(p_damaged(probs), 0.0, 1.0)
    pred_grade = most_likely_grade(probs).astype(np.int64)

    failed_sources = [r.source for r, _ in failed]
    by_source: dict[str, Any] = {}
    for source in sorted(set(sources.tolist()) | set(failed_sources)):
        mask = sources == source
        by_source[source] = {
            "failed": failed_sources.count(source),
            "binary": _binary_block(y[mask], pd[mask], n_bootstrap),
            "grade": _grade_block(grades[mask], probs[mask]),
        }

    focus_blocks: dict[str, Any] = {}
    for source in dict.fromkeys(focus):  # keep order, drop repeats
        mask = sources == source
        if not mask.any():
            focus_blocks[source] = {"present": False, "count": 0}
            continue
        intact = mask & (y == 0)
        fp_idx = np.flatnonzero(intact & (pd >= THRESHOLD))
        fp_idx = fp_idx[np.argsort(-pd[fp_idx], kind="mergesort")]
        block = by_source[source]["binary"]
        focus_blocks[source] = {
            "present": True,
            "count": int(mask.sum()),
            "intact": int(intact.sum()),
            "false_positives": int(len(fp_idx)),
            "fpr": block["fpr"],
            "fpr_ci95_wilson": block["ci95"]["fpr_wilson"],
            "fpr_ci95_bootstrap": block["ci95"]["fpr"],
            "p_damaged_median_intact": float(np.median(pd[intact])) if intact.any() else math.nan,
            "false_positive_examples": [
                {"path": str(rows[i].path), "p_damaged": float(pd[i])} for i in fp_idx
            ],
        }

    manifest_info = None
    if manifest_path is not None:
        mp = Path(manifest_path)
        manifest_info = {"path": str(mp), "sha256": sha256_file(mp) if mp.is_file() else None}

    result: dict[str, Any] = {
        "title": title,
        "model_version": model_version,
        "manifest": manifest_info,
        "split": split,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "threshold": THRESHOLD,
        "bootstrap": {"n": n_bootstrap, "seed": BOOTSTRAP_SEED, "level": 0.95, "method": "percentile"},
        "counts": {
            "evaluated": len(rows),
            "failed": len(failed),
            "damaged": int(y.sum()),
            "intact": int(len(y) - y.sum()),
            "graded": int((grades >= 0).sum()),
            "by_source": {s: int((sources == s).sum()) for s in by_source},
        },
        "binary": _binary_block(y, pd, n_bootstrap),
        "grade": _grade_block(grades, probs),
        "by_source": by_source,
        "focus": focus_blocks,
        "failed": [{"path": str(r.path), "source": r.source, "error": err} for r, err in failed],
        "files": dict(FILES),
    }
    result = _jsonable(result)

    (out / FILES["metrics"]).write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    _write_predictions(out / FILES["predictions"], rows, probs, pd, pred_grade)
    _plot_roc(out / FILES["roc"], y, pd, sources)
    _plot_confusion(out / FILES["confusion"], y, pd, grades, pred_grade)
    _plot_reliability(out / FILES["reliability"], y, pd, result["binary"]["ece"])
    (out / FILES["summary"]).write_text(_summary_markdown(result))
    return result


def _write_predictions(
    path: Path, rows: list[Row], probs: np.ndarray, pd: np.ndarray, pred_grade: np.ndarray
) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        prob_cols = [f"p{k}" for k in range(NUM_GRADES)]
        writer.writerow(
            ["path", "source", "split", "group", "damaged", "grade", *prob_cols, "p_damaged", "pred_grade"]
        )
        for i, row in enumerate(rows):
            writer.writerow(
                [
                    str(row.path),
                    row.source,
                    row.split,
                    row.group,
                    row.damaged,
                    "" if row.grade is None else row.grade,
                    *(f"{v:.6f}" for v in probs[i]),
                    f"{pd[i]:.6f}",
                    int(pred_grade[i]),
                ]
            )


# --- plots ---------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _plot_roc(path: Path, y: np.ndarray, pd: np.ndarray, sources: np.ndarray) -> None:
    fig = _figure(6.4, 5.6)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance (AUROC 0.50)")
    skipped = []
    names = sorted(set(sources.tolist()))
    curves = [("all", np.ones(len(y), dtype=bool))]
    if len(names) > 1:  # one source: its curve is the overall curve
        curves += [(s, sources == s) for s in names]
    for name, mask in curves:
        yy, pp = y[mask], pd[mask]
        if len(np.unique(yy)) < 2:
            skipped.append(name)
            continue
        fpr, tpr, _ = M.roc_curve(yy, pp)
        label = f"{name}: AUROC {M.auroc(yy, pp):.3f} (n={mask.sum()})"
        if name == "all":
            ax.plot(fpr, tpr, color="black", linewidth=2.4, label=label, zorder=3)
        else:
            ax.plot(fpr, tpr, linewidth=1.4, label=label)
    if skipped:
        ax.plot([], [], " ", label="one class only, no curve: " + ", ".join(skipped))
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_xlabel("False positive rate (intact parcels flagged as damaged)")
    ax.set_ylabel("True positive rate (damaged parcels caught)")
    ax.set_title("ROC: damaged vs intact")
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path)


def _heatmap(ax, cm: np.ndarray, labels: Sequence[str]) -> None:
    n = len(labels)
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(int(cm.max()), 1))
    row_totals = cm.sum(axis=1)
    for i in range(n):
        for j in range(n):
            share = f"\n{cm[i, j] / row_totals[i]:.0%}" if row_totals[i] else ""
            dark = cm[i, j] > 0.55 * max(cm.max(), 1)
            ax.text(
                j,
                i,
                f"{cm[i, j]}{share}",
                ha="center",
                va="center",
                fontsize=11,
                color="white" if dark else "black",
            )
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")


def _plot_confusion(
    path: Path, y: np.ndarray, pd: np.ndarray, grades: np.ndarray, pred_grade: np.ndarray
) -> None:
    fig = _figure(6.0, 5.4)
    ax = fig.add_subplot()
    graded = grades >= 0
    if graded.any():
        cm = M.confusion_matrix(grades[graded], pred_grade[graded], NUM_GRADES)
        _heatmap(ax, cm, [f"{k} {name}" for k, name in enumerate(GRADE_NAMES)])
        ax.set_title(f"Damage grade confusion (graded photos, n={graded.sum()})\ncount and share of true row")
    else:
        cm = M.confusion_matrix(y, (pd >= THRESHOLD).astype(np.int64), 2)
        _heatmap(ax, cm, ["intact", "damaged"])
        ax.set_title(
            f"Damaged vs intact at p_damaged >= {THRESHOLD} (no graded photos, n={len(y)})\n"
            "count and share of true row"
        )
    fig.savefig(path)


def _plot_reliability(path: Path, y: np.ndarray, pd: np.ndarray, ece: float | None) -> None:
    fig = _figure(6.4, 6.4)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    bins = M.reliability_bins(y, pd)
    centres = (bins.edges[:-1] + bins.edges[1:]) / 2
    width = bins.edges[1] - bins.edges[0]
    filled = bins.count > 0
    top.plot([0, 1], [0, 1], color="0.4", linestyle="--", linewidth=1, label="perfect calibration")
    top.bar(
        centres[filled],
        bins.frequency[filled],
        width=width * 0.9,
        color="tab:blue",
        alpha=0.75,
        edgecolor="tab:blue",
        label="observed share damaged",
    )
    top.plot(
        bins.confidence[filled],
        bins.frequency[filled],
        "o",
        color="tab:red",
        ms=4,
        label="bin mean p_damaged",
    )
    for c, f, n in zip(centres[filled], bins.frequency[filled], bins.count[filled], strict=True):
        top.text(c, min(f + 0.02, 0.97), str(n), ha="center", va="bottom", fontsize=7, color="0.25")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.05)
    top.set_ylabel("Observed share damaged")
    ece_text = "n/a" if ece is None or not math.isfinite(ece) else f"{ece:.3f}"
    top.set_title(f"Reliability of p_damaged (ECE {ece_text}, {len(bins.count)} bins, n={len(y)})")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.bar(centres, bins.count, width=width * 0.9, color="0.55")
    bottom.set_ylabel("Photos per bin")
    bottom.set_xlabel("Predicted p_damaged")
    bottom.grid(alpha=0.3)
    fig.savefig(path)


# --- summary.md ----------------------------------------------------------------------------------


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _interval(ci: Sequence[Any] | None, fmt=_f) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "n/a"
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _summary_markdown(r: dict[str, Any]) -> str:
    b = r["binary"]
    c = r["counts"]
    lines = [f"# {r['title']}", ""]
    meta = [f"Model `{r['model_version']}`"]
    if r["manifest"]:
        sha = (r["manifest"]["sha256"] or "?")[:12]
        meta.append(f"manifest `{r['manifest']['path']}` (sha256 `{sha}…`)")
    meta.append(f"split `{r['split'] or 'all'}`")
    meta.append(r["date"])
    lines += [", ".join(meta) + ".", ""]
    lines.append(
        f"{c['evaluated']} photos evaluated ({c['damaged']} damaged, {c['intact']} intact, "
        f"{c['graded']} graded); {c['failed']} could not be read. "
        f"Decision threshold: damaged when p_damaged >= {r['threshold']}."
    )
    lines.append("")

    for source, fb in r["focus"].items():
        lines += [f"## Focus: `{source}`", ""]
        if not fb["present"]:
            lines += [f"> **Not evaluated:** no photos with source `{source}` in this manifest/split.", ""]
            continue
        lines.append(
            f"> **{fb['false_positives']} of {fb['intact']} intact parcels wrongly flagged as damaged** "
            f"— false positive rate **{_pct(fb['fpr'])}** "
            f"(95% CI {_interval(fb['fpr_ci95_wilson'], _pct)}, Wilson; "
            f"bootstrap {_interval(fb['fpr_ci95_bootstrap'], _pct)})."
        )
        lines.append(
            f"> {fb['count']} photos in this subset; median p_damaged on its intact photos: "
            f"{_f(fb['p_damaged_median_intact'])}."
        )
        lines.append("")
        examples = fb["false_positive_examples"]
        if examples:
            lines += ["Wrongly flagged (highest p_damaged first):", "", "| photo | p_damaged |", "|---|---|"]
            lines += [f"| `{e['path']}` | {_f(e['p_damaged'])} |" for e in examples[:MAX_LISTED]]
            if len(examples) > MAX_LISTED:
                lines.append(f"| … {len(examples) - MAX_LISTED} more in metrics.json | |")
            lines.append("")

    lines += ["## Headline: damaged vs intact", "", "| metric | value | 95% CI |", "|---|---|---|"]
    lines.append(
        f"| AUROC (damaged ranked above intact) | {_f(b['auroc'])} | {_interval(b['ci95']['auroc'])} |"
    )
    lines.append(f"| Accuracy at {r['threshold']} | {_f(b['accuracy'])} | |")
    lines.append(
        f"| False positive rate at {r['threshold']} | {_f(b['fpr'])} ({b['fp']}/{b['negatives']}) "
        f"| {_interval(b['ci95']['fpr_wilson'])} |"
    )
    lines.append(f"| Recall (damaged caught) | {_f(b['recall'])} ({b['tp']}/{b['positives']}) | |")
    lines.append(f"| Precision | {_f(b['precision'])} | |")
    lines.append(f"| ECE of p_damaged (15 bins) | {_f(b['ece'])} | |")
    lines.append(f"| Brier score | {_f(b['brier'])} | |")
    lines += ["", "AUROC interval: percentile bootstrap; FPR interval: Wilson score.", ""]

    g = r["grade"]
    if g:
        lines += ["## Damage grade (graded photos)", ""]
        lines.append(
            f"{g['count']} graded photos: accuracy {_f(g['accuracy'])}, mean absolute grade error "
            f"{_f(g['mean_abs_error'])}, quadratic weighted kappa {_f(g['qwk'])}, "
            f"top-label ECE {_f(g['ece_top_label'])}."
        )
        lines += ["", "Confusion matrix (rows: true grade, columns: predicted grade):", ""]
        names = [f"{k} {n}" for k, n in enumerate(GRADE_NAMES)]
        lines.append("| true \\ predicted | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for name, row in zip(names, g["confusion"], strict=True):
            lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
        lines.append("")
    else:
        lines += [
            "## Damage grade",
            "",
            "No graded photos in this set; only damaged-vs-intact is scored.",
            "",
        ]

    lines += [
        "## Per source",
        "",
        "| source | n | damaged | intact | AUROC [95% CI] | accuracy "
        f"| FPR at {r['threshold']} | recall | ECE | graded | grade acc | grade QWK | unreadable |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for source, sb in r["by_source"].items():
        sbin, sg = sb["binary"], sb["grade"]
        auroc_cell = (
            f"{_f(sbin['auroc'])} {_interval(sbin['ci95']['auroc'])}" if sbin["auroc"] is not None else "n/a"
        )
        lines.append(
            f"| `{source}` | {sbin['count']} | {sbin['positives']} | {sbin['negatives']} | {auroc_cell} "
            f"| {_f(sbin['accuracy'])} | {_f(sbin['fpr'])} | {_f(sbin['recall'])} | {_f(sbin['ece'])} "
            f"| {sg['count'] if sg else 0} | {_f(sg['accuracy']) if sg else 'n/a'} "
            f"| {_f(sg['qwk']) if sg else 'n/a'} | {sb['failed']} |"
        )
    lines += ["", "AUROC is n/a for a source with only one class (e.g. all intact): look at its FPR.", ""]

    if r["failed"]:
        lines += ["## Photos that could not be read", "", "| photo | source | error |", "|---|---|---|"]
        for item in r["failed"][:MAX_LISTED]:
            error = str(item["error"]).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{item['path']}` | {item['source']} | {error} |")
        if len(r["failed"]) > MAX_LISTED:
            lines.append(f"| … {len(r['failed']) - MAX_LISTED} more in metrics.json | | |")
        lines.append("")

    files = r["files"]
    lines += [
        "## Plots",
        "",
        f"![ROC curves]({files['roc']})",
        "",
        f"![Grade confusion matrix]({files['confusion']})",
        "",
        f"![Reliability diagram]({files['reliability']})",
        "",
        f"Every prediction is in [`{files['predictions']}`]({files['predictions']}); all numbers, "
        f"with intervals, in [`{files['metrics']}`]({files['metrics']}).",
        "",
        "## How to read this",
        "",
        "**AUROC** is the probability that a randomly chosen damaged parcel gets a higher p_damaged than "
        "a randomly chosen intact one: 0.5 is guessing, 1.0 is perfect ranking, whatever threshold the "
        "policy uses. **Accuracy, FPR and recall** are at the fixed threshold above; the false positive "
        "rate is the share of intact parcels that would be treated as damaged. **ECE** (expected "
        "calibration error) is how far the stated probabilities are from observed frequencies, on "
        "average: ECE 0.05 means photos are, on average, 5 percentage points more or less often damaged "
        "than their p_damaged says; in "
        "the reliability diagram, bars on the diagonal mean calibrated. **Per source** matters because "
        "sources differ in bias (lighting, backgrounds, how damage was staged or photographed): a good "
        "overall number can hide a source where the model fails, and sources with few photos have wide "
        "intervals, so compare intervals, not just point estimates.",
        "",
    ]
    return "\n".join(lines)


# --- the model -----------------------------------------------------------------------------------


def resolve_model_path(model: str | os.PathLike[str]) -> Path:
    """An ONNX file, or a weights version folder containing model.onnx."""
    path = Path(model)
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX model at {path}")
    return path


def evaluate(
    model_path: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    split: str | None = None,
    *,
    batch_size: int = 16,
    focus: Sequence[str] = (),
    title: str | None = None,
    n_bootstrap: int = N_BOOTSTRAP,
) -> dict[str, Any]:
    """Predict every manifest row (of `split`, if given) with the ONNX model and write the report."""
    from tqdm import tqdm

    from models.inference import load_model  # imported here: report-only callers need no ONNX

    manifest = Path(manifest)
    rows = read_manifest(manifest)
    if split is not None:
        rows = [r for r in rows if r.split == split]
    if not rows:
        raise ValueError(f"{manifest}: no rows" + (f" in split {split!r}" if split else ""))
    model = load_model(resolve_model_path(model_path))

    ok_rows: list[Row] = []
    probs: list[list[float]] = []
    failed: list[tuple[Row, str]] = []
    with tqdm(total=len(rows), unit="img", desc="evaluate", dynamic_ncols=True) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            results = model.predict_images([str(r.path) for r in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"model returned {len(results)} results for {len(batch)} images")
            for row, res in zip(batch, results, strict=True):
                if hasattr(res, "grade_probs"):  # Prediction; a PredictionError has .error instead
                    ok_rows.append(row)
                    probs.append(list(res.grade_probs))
                else:
                    failed.append((row, str(getattr(res, "error", res))))
            bar.update(len(batch))
            bar.set_postfix(failed=len(failed))

    version = str(getattr(model, "version", "unknown"))
    return evaluate_predictions(
        ok_rows,
        np.asarray(probs, dtype=np.float64).reshape(-1, NUM_GRADES),
        out_dir,
        model_version=version,
        title=title or f"Model {version} on {manifest.name}" + (f" ({split} split)" if split else ""),
        manifest_path=manifest,
        split=split,
        focus=focus,
        failed=failed,
        n_bootstrap=n_bootstrap,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="ONNX file, or a weights folder with model.onnx")
    parser.add_argument("--data", required=True, help="manifest CSV (path,grade,damaged,group,source,split)")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument(
        "--split", choices=SPLITS, default=None, help="evaluate only this split (default: all)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--focus",
        action="append",
        default=[],
        metavar="SOURCE",
        help="source that gets its own section with its false positive rate (repeatable)",
    )
    parser.add_argument("--title", default=None)
    parser.add_argument("--bootstrap", type=int, default=N_BOOTSTRAP, help="bootstrap resamples for CIs")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")

    result = evaluate(
        args.model,
        args.data,
        args.out,
        args.split,
        batch_size=args.batch_size,
        focus=args.focus,
        title=args.title,
        n_bootstrap=args.bootstrap,
    )
    b = result["binary"]
    print(
        f"{result['counts']['evaluated']} evaluated, {result['counts']['failed']} unreadable; "
        f"AUROC {_f(b['auroc'])} {_interval(b['ci95']['auroc'])}, accuracy {_f(b['accuracy'])}, "
        f"FPR {_f(b['fpr'])}, ECE {_f(b['ece'])}"
    )
    for source, fb in result["focus"].items():
        if fb["present"]:
            print(
                f"focus {source}: {fb['false_positives']}/{fb['intact']} intact flagged, "
                f"FPR {_pct(fb['fpr'])} {_interval(fb['fpr_ci95_wilson'], _pct)}"
            )
        else:
            print(f"focus {source}: not present", file=sys.stderr)
    print(f"report: {Path(args.out) / FILES['summary']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
