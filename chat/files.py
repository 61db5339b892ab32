"""Writing a file the user names (/save, /export, probe exports): whole or not at all, and only
where a regular file is or may be — never over a directory, a device or a FIFO."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import FileError
from .redact import redact

__all__ = ["FileError", "write_whole"]




def write_whole(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename, so a full disk or a
    kill leaves the old file or none, never half of one. Returns the path written."""
    path = Path(path).expanduser()
    tmp = None
    try:  # even looking can fail: a name too long for the file system, a folder we may not enter
        if not path.name or path.is_dir():
            raise FileError(f"{path}: is a directory; give a file name")
        if path.exists() and not path.is_file():
            raise FileError(f"{path}: not a regular file (a device, a FIFO …): give another name")
        data = redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")  # chat/redact.py
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise FileError(f"cannot write {path}: {e.strerror or e}") from None
    return path
