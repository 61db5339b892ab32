"""The architecture as a contract: pyproject's [tool.importlinter] says which layer may import which
(ui > probes > core > backends > conversation > leaves > supervision > base), that the core knows nothing
of the terminal, and that slash commands never reach into the REPL; import-linter checks it here.

import-linter walks a package's folder, and a checkout maps gridchat's subpackages from folders beside it,
so the check runs on a copy laid out as the wheel lays it out."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("importlinter")
tomllib = pytest.importorskip("tomllib")


def _config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _wheel_layout(into: Path) -> Path:
    """gridchat/ with each mapped folder copied where the wheel puts it."""
    for name, folder in _config()["tool"]["setuptools"]["package-dir"].items():
        target = into.joinpath(*name.split("."))
        if name == "gridchat":
            target.mkdir(parents=True)
            for path in (REPO / folder).glob("*.py"):
                shutil.copy(path, target)
        else:
            shutil.copytree(REPO / folder, target, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def _lint(root: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(script), "--no-cache", str(REPO / "pyproject.toml")], cwd=root, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin",
                                                        "LANG": "C.UTF-8"})


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    return _wheel_layout(tmp_path_factory.mktemp("wheel-layout"))


def test_every_contract_is_kept(layout):
    r = _lint(layout)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " 0 broken" in r.stdout


def test_every_module_has_a_layer(layout, monkeypatch):
    """A module in no layer is free to import anything: a new module must be placed. A package's
    __init__ that only gathers its own modules needs no place."""
    grimp = pytest.importorskip("grimp")
    monkeypatch.syspath_prepend(str(layout))
    graph = grimp.build_graph("gridchat", cache_dir=None)
    layers = next(c for c in _config()["tool"]["importlinter"]["contracts"] if c["type"] == "layers")["layers"]
    placed = [name.strip() for layer in layers for name in layer.replace("|", ":").split(":")]
    homeless = [m for m in sorted(graph.modules) if m != "gridchat"
                and not any(m == p or m.startswith(p + ".") for p in placed)
                and not all(i.startswith(m + ".") for i in graph.find_modules_directly_imported_by(m))]
    assert not homeless, f"modules in no layer of pyproject's contract: {homeless}"


@pytest.mark.parametrize("module, line, contract", [
    ("chat/slash/files.py", "from ..repl import Repl", "Slash commands reach the REPL only through their context"),
    ("chat/turn.py", "from .output import say", "The core and the probe logic know nothing of the terminal"),
    ("chat/backends/base.py", "from ..session import Session", "ui > probes > core"),
    ("tools/bash.py", "from ..personas import Persona", "Personas, the model's tools and serving stand apart"),
])
def test_an_import_across_a_boundary_breaks_a_contract(tmp_path, module, line, contract):
    """The check can fail: one import that crosses a boundary is named."""
    root = _wheel_layout(tmp_path)
    path = root / "gridchat" / module
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("\nfrom __future__ import annotations\n")
    path.write_text(head + sep + line + "\n" + rest if sep else line + "\n" + text, encoding="utf-8")
    r = _lint(root)
    assert r.returncode != 0
    broken = r.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, r.stdout[-3000:]
