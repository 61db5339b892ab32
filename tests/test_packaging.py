"""The package as a user installs it: one top-level name, every import declared, the commands,
and no way for a user's own folders to shadow ours."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("chat", "personas", "tools", "serve", "supervise")


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _normal(re.split(r"[\s<>=!~;\[(]", spec.strip(), maxsplit=1)[0])


def _sources() -> list[Path]:
    files = sorted((REPO / "gridchat").glob("*.py"))
    for package in PACKAGES:
        files += sorted((REPO / package).rglob("*.py"))
    return files


def test_every_folder_of_the_package_is_listed():
    """A folder left off pyproject's list still imports in a checkout (its parent's folder is on the
    path) but is missing from the wheel: every folder holding code or data must be listed."""
    setuptools = _pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    mapped = {folder: name for name, folder in setuptools["package-dir"].items()}
    found = set()
    for folder, name in mapped.items():
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".yaml", ".jinja") and "__pycache__" not in path.parts:
                relative = path.parent.relative_to(REPO / folder).parts
                found.add(".".join((name, *relative)))
    assert found - listed == set(), f"folders missing from pyproject's packages: {sorted(found - listed)}"


def test_the_checkout_imports_what_the_wheel_holds_and_nothing_else(tmp_path):
    """An editable install maps its folders: the checkout's tests/, bench/ and build/ are not parts
    of gridchat, and the package imports the same under any folder name the checkout has."""
    for name in ("gridchat.tests", "gridchat.bench", "gridchat.build"):
        r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode != 0 and "No module named" in r.stderr, (name, r.stderr)


def test_the_sdist_holds_the_tests_it_can_run(tmp_path):
    out = tmp_path / "sdist"
    subprocess.run([sys.executable, "-c", "import setuptools.build_meta as b, sys; b.build_sdist(sys.argv[1])", str(out)],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    import tarfile

    (sdist,) = out.glob("gridchat-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("pyproject.toml", "README.md", "gridchat/__init__.py", "chat/cli.py", "personas/builtin/none.yaml"
                   if (REPO / "personas/builtin/none.yaml").exists() else "personas/builtin/lawful_evil.yaml",
                   "tests/conftest.py", "tests/fake_backend.py", "bench/__main__.py"):
        assert needed in names, needed
    assert not any(n.startswith((".venv/", "build/")) or "__pycache__" in n for n in names)


def _imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a module (relative ones are our own)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_declared():
    project = _pyproject()["project"]
    declared = {_requirement_name(s): "dependencies" for s in project["dependencies"]}
    for extra, specs in project.get("optional-dependencies", {}).items():
        for spec in specs:
            declared.setdefault(_requirement_name(spec), f"the [{extra}] extra")
    providers = importlib.metadata.packages_distributions()
    problems = []
    for path in _sources():
        for name in _imports(path) - set(sys.stdlib_module_names) - {"gridchat"}:
            dists = providers.get(name)
            if not dists:
                problems.append(f"{path.relative_to(REPO)} imports {name}, which no installed distribution provides")
            elif not any(_normal(d) in declared for d in dists):
                problems.append(f"{path.relative_to(REPO)} imports {name} ({', '.join(dists)}), not declared in pyproject")
    assert not problems, "\n".join(problems)


def test_optional_engine_is_only_imported_where_it_is_used():
    """xllamacpp (the [local] extra) may only be imported by the engine process, lazily: the client
    itself must run with the core dependencies alone."""
    core = {_requirement_name(s) for s in _pyproject()["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: imports inside functions are lazy
            if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "level", 0) == 0:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top == "gridchat":
                        continue
                    dists = {_normal(d) for d in providers.get(top, [top])}
                    assert dists & core, f"{path.relative_to(REPO)} imports {top} at module level, but it is optional"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, text=True, timeout=300,
                   env={**__import__("os").environ, "TMPDIR": str(build)})
    wheels = list(out.glob("gridchat-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_installs_exactly_one_top_level_name(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
        assert top == {"gridchat"}
        assert "gridchat/personas/builtin/lawful_evil.yaml" in names
        assert "gridchat/chat/probes/sets/sycophancy.yaml" in names
        assert "gridchat/serve/templates/chatml_tools.jinja" in names
        assert "gridchat/chat/slash/registry.py" in names
        assert not any(n.startswith(("gridchat/tests/", "gridchat/bench/")) for n in names)
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = z.read(info).decode()
    for line in ("chat = gridchat.chat.cli:main", "gridchat = gridchat.chat.cli:main", "serve = gridchat.serve.cli:main"):
        assert line in scripts


def test_installed_commands_and_module():
    bin_dir = Path(sys.executable).parent
    for command in ("chat", "gridchat"):
        out = subprocess.run([str(bin_dir / command), "--version"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout.startswith("gridchat ")
    module = subprocess.run([sys.executable, "-m", "gridchat", "--version"], capture_output=True, text=True, timeout=30)
    assert module.stdout == out.stdout


def test_chat_serve_is_serve(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2"}')
    bin_dir = Path(sys.executable).parent
    via_serve = subprocess.run([str(bin_dir / "serve"), "vllm", str(model), "--dry-run"], capture_output=True,
                               text=True, timeout=30)
    via_chat = subprocess.run([str(bin_dir / "chat"), "serve", "vllm", str(model), "--dry-run"], capture_output=True,
                              text=True, timeout=30)
    assert via_serve.returncode == via_chat.returncode == 0
    assert via_serve.stdout == via_chat.stdout and "--tool-call-parser hermes" in via_chat.stdout


def test_a_users_own_folders_do_not_shadow_ours(tmp_path):
    """Run from a directory holding its own chat/, tools/, serve/ and personas/ packages."""
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise SystemExit('the user package was imported')\n")
    code = "import gridchat.chat.repl, gridchat.chat.session, gridchat.serve.cli, gridchat.chat.probes.cli; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    r = subprocess.run([sys.executable, "-m", "gridchat", "--help"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "usage: chat" in r.stdout


def test_the_checkout_is_not_importable_under_other_names():
    """The tests see the installed gridchat only: the checkout's folders are not top-level modules."""
    for name in PACKAGES:
        assert name not in sys.modules, f"a second copy was imported as {name!r}"
