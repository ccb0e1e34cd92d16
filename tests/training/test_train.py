"""A tiny synthetic training run: seconds, end to end, and better than chance."""

import json
from pathlib import Path

import pytest

from training.config import load_config
from training.train import run

pytestmark = pytest.mark.slow  # a real training run (seconds to a minute)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    cfg = load_config("training/configs/tiny.toml")
    cfg.out_dir = str(out / "run")
    cfg.data.cache_dir = str(out / "data")
    return cfg, run(cfg)


def test_tiny_run_writes_a_complete_version(tiny_run):
    cfg, version_dir = tiny_run
    for name in ("model.onnx", "checkpoint.pt", "calibration.json", "training.json", "SHA256SUMS"):
        assert (version_dir / name).exists(), name
    history = [json.loads(line) for line in Path(cfg.out_dir, "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(cfg.train.epochs))
    assert (version_dir.parent.parent / "curves.png").exists()


def test_tiny_run_beats_chance_on_its_test_split(tiny_run):
    cfg, _ = tiny_run
    report = json.loads(Path(cfg.out_dir, "eval/test/metrics.json").read_text())
    assert report["binary"]["auroc"] > 0.6


def test_resume_after_the_last_epoch_trains_nothing_more(tiny_run):
    cfg, _ = tiny_run
    before = Path(cfg.out_dir, "metrics.jsonl").read_text()
    run(cfg, resume=True)
    assert Path(cfg.out_dir, "metrics.jsonl").read_text() == before
