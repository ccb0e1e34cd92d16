"""The import graph the README's layout section describes, checked on every run.

Imports point down: `api` (the web layer and CLI, the composition root) on top; `workers` and
`training` beside each other under it; `services` (use cases) under them; `models` and `storage`
under the services (`models` may read the object store: the model registry lives there); `config`
(the one Settings) and `claims` (the pure domain) at the bottom. An import is allowed only from a
higher layer to a strictly lower one, so there can be no package cycle. Every import counts,
including those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: dict[str, int] = {
    "claims": 0,
    "config": 1,
    "storage": 2,
    "models": 3,
    "services": 4,
    "workers": 5,
    "training": 5,
    "api": 6,
    "bench": 7,  # measurements: may use anything; nothing imports them
}
# Packages that run in production; none of them may import torch (the image does not carry it).
SERVING = ("api", "workers", "services", "models", "storage", "config", "claims")


def _imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported top-level project package) for every import in `package`."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in LAYERS and top != package:
                    found.append((str(path.relative_to(ROOT)), node.lineno, top))
    return found


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_point_down(package: str) -> None:
    wrong = [
        f"{file}:{line} imports {target} (layer {LAYERS[target]} is not below {package}'s {LAYERS[package]})"
        for file, line, target in _imports(package)
        if LAYERS[target] >= LAYERS[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_claims_imports_no_other_project_package() -> None:
    assert not _imports("claims")


def test_lower_packages_import_neither_api_nor_workers() -> None:
    for package in ("storage", "models", "claims", "config", "services"):
        assert not [i for i in _imports(package) if i[2] in ("api", "workers")], package


def test_every_package_is_placed() -> None:
    """A new top-level package must be given a layer here (and in the README)."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    assert packages == set(LAYERS), packages ^ set(LAYERS)


def test_serving_imports_no_torch() -> None:
    """Import every serving module in a fresh interpreter; torch must not come with any of them."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in SERVING
        for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'torch' not in sys.modules, f'{name} imports torch'\n"
        "print('ok', len(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_only_config_reads_the_environment() -> None:
    """Settings are read once, by `config.settings`; a second reader would drift from it."""
    readers = []
    for package in ("api", "workers", "services", "models", "storage", "claims"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for needle in ("os.environ", "os.getenv", "getenv("):
                if needle in text:
                    readers.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not readers, "\n".join(readers)
