"""Process set-up that must happen before anything imports prometheus-client (so not in
`config.metrics`, which does): where multiprocess metrics live."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_metrics_folder(folder: Path) -> Path:
    """Multiprocess metrics (config.metrics): every server process writes its values under one
    folder, emptied now, before any process has imported prometheus-client; the variable is
    inherited by the processes uvicorn starts. An operator's own PROMETHEUS_MULTIPROC_DIR is used
    as it is (and not emptied)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        return Path(given)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder.resolve())
    return folder
