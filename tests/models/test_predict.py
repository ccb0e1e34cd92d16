"""The `python -m models.predict` CLI, run as external evaluation runs it: as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.preprocessing import iter_image_files

REPO_ROOT = Path(__file__).resolve().parents[2]
PREDICTION_KEYS = {"path", "grade", "grade_probs", "p_damaged", "model_version"}
ERROR_KEYS = {"path", "error"}


def run_cli(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "CLAIMLANE_ORT_INTRA_THREADS": "1", "CLAIMLANE_ORT_INTER_THREADS": "1"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "models.predict", *map(str, args)],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def parse_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def check_prediction(record: dict) -> None:
    assert set(record) == PREDICTION_KEYS, record
    probs = record["grade_probs"]
    assert len(probs) == 4 and all(0.0 <= p <= 1.0 for p in probs)
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert record["grade"] == int(np.argmax(probs))
    assert record["p_damaged"] == pytest.approx(1.0 - probs[0], abs=2e-6)
    assert record["model_version"] == "tiny-0.0.1"


def test_mixed_folder(tiny_onnx_model, bad_files):
    (bad_files.bad_dir / "notes.txt").write_text("not an image suffix: skipped")
    (bad_files.bad_dir / "empty_subdir").mkdir()
    missing = bad_files.bad_dir / "missing.jpg"
    result = run_cli("--model", tiny_onnx_model, "--batch-size", "2", bad_files.bad_dir.parent, missing)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr

    records = parse_lines(result.stdout)
    expected_paths = [str(p) for p in iter_image_files([bad_files.bad_dir.parent])] + [str(missing)]
    assert [r["path"] for r in records] == expected_paths  # one line per file, in input order
    bad_paths = {str(p) for p in bad_files.bad.values()} | {str(missing)}
    for record in records:
        if record["path"] in bad_paths:
            assert set(record) == ERROR_KEYS, record
            assert isinstance(record["error"], str) and record["error"]
        else:
            check_prediction(record)
    assert sum("error" in r for r in records) == len(bad_paths)


def test_all_good_exits_zero(tiny_onnx_model, bad_files):
    files = sorted(bad_files.good.values())
    result = run_cli("--model", tiny_onnx_model, *files)
    assert result.returncode == 0, result.stderr
    records = parse_lines(result.stdout)
    assert [r["path"] for r in records] == [str(p) for p in files]
    for record in records:
        check_prediction(record)


def test_empty_folder_prints_nothing(tiny_onnx_model, tmp_path):
    result = run_cli("--model", tiny_onnx_model, tmp_path)
    assert (result.returncode, result.stdout) == (0, "")


def test_model_from_environment(tiny_onnx_model, bad_files):
    result = run_cli(bad_files.good["alpha.png"], env={"CLAIMLANE_MODEL_PATH": str(tiny_onnx_model)})
    assert result.returncode == 0, result.stderr
    check_prediction(parse_lines(result.stdout)[0])


def test_missing_model_exits_2(tmp_path, bad_files):
    result = run_cli("--model", tmp_path / "absent.onnx", bad_files.good["alpha.png"])
    assert result.returncode == 2
    assert result.stdout == ""
    assert "model" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [[], ["--batch-size", "0", "x.jpg"], ["--bogus", "x.jpg"]])
def test_usage_errors_exit_2(args):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == "" and "usage" in result.stderr


def test_serving_modules_do_not_import_torch():
    code = (
        "import sys, models.predict, models.inference; "
        "bad = sorted(m for m in ('torch', 'torchvision', 'onnx') if m in sys.modules); "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
