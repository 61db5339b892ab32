"""The one writer: every file the client writes — session transcripts, probe run directories, run.json,
cells, hand-order.json, /save, /export, probe exports, probe sets, the input history, the editor's
scratch file — is written here, in one of these ways:

- ``write_whole``: replaced whole — a temporary file beside it, fsync, rename, fsync of the directory —
  so a kill or a full disk leaves the old file or the new one, never half of one; never over a
  directory, a device or a FIFO;
- ``AppendFile`` / ``append``: appended to (a log) — each block written whole with O_APPEND under an
  flock, so two writers' blocks never interleave, and fsync'd; a block that fails is cut off again;
- ``set_aside``: moved out of the way, kept (a probe cell to be redone that holds verdicts);
- ``hold_lock``: an advisory lock (flock) on a lock file that names its holder, for a file two clients
  could both write (a session's transcript, a probe run's directory): a second one is refused with
  one line naming the process that has it. A file's own lock (``lock_path``) is keyed on where it
  really is, so a symlink to it finds the same lock, and ``write_whole`` holds it while it replaces
  the file: a transcript a chat has open is never replaced under it.

Every byte passes ``_outgoing`` on its way to disk. An OSError, or a ValueError from the OS layer (a
NUL in a path), is a FileError: one line saying what could not be written and why. The model's own
write_file/edit_file (tools/files.py) write the user's files verbatim and stay outside.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from contextlib import nullcontext
from pathlib import Path

from .errors import FileError, Locked
from .redact import redact

__all__ = ["AppendFile", "FileError", "Lock", "Locked", "append", "hold_lock", "lock_path", "make_dir", "remove",
           "scratch_file", "set_aside", "typed_path", "write_whole"]


_UMASK = os.umask(0o022)  # read once, while nothing else runs: os.umask can only be read by setting it
os.umask(_UMASK)


def _why(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _cannot(path, error: Exception) -> FileError:
    return FileError(f"cannot write {path}: {_why(error)}")


def _outgoing(data: bytes) -> bytes:
    """The one place every byte passes before it reaches a file: no secret the client holds is ever
    written (chat/redact.py)."""
    return redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(_outgoing(data))
    while view:
        view = view[os.write(fd, view):]


def _sync_dir(directory: Path) -> None:
    """Make a rename or a new name in ``directory`` last (where the system lets a directory be synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def typed_path(path: str | Path) -> Path:
    """A path as the user typed it, ``~`` and ``~user`` expanded as a shell does: an unknown user's
    ``~name`` stays as typed, to be refused as a missing file (pathlib's expanduser raises instead)."""
    return Path(os.path.expanduser(path))


def make_dir(path: str | Path) -> Path:
    """A directory (and its parents) to write into."""
    path = typed_path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:
        raise _cannot(path, e) from None
    return path


def write_whole(path: str | Path, data: bytes, *, parents: bool = False) -> Path:
    """Replace ``path`` with ``data`` whole (see the module's docstring); ``parents``: create missing
    directories first. A new file gets the usual permissions (the umask's), a replaced one keeps its
    own. Returns the path written."""
    path = typed_path(path)
    tmp = None
    try:  # even looking can fail: a name too long for the file system, a folder we may not enter
        if not path.name or path.is_dir():
            raise FileError(f"{path}: is a directory; give a file name")
        exists = path.exists()
        if exists and not path.is_file():
            raise FileError(f"{path}: not a regular file (a device, a FIFO …): give another name")
        mode = stat.S_IMODE(path.stat().st_mode) if exists else 0o666 & ~_UMASK
        if parents:
            make_dir(path.parent)
        # a transcript a chat has open is not replaced under it: that chat would go on writing a deleted file
        with _taken(lock_path(path), "it") if exists else nullcontext():
            # the name's start only: a name near the length limit must still leave room for the suffix
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:32]}.", suffix=".tmp")
            try:
                _write_all(fd, data)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            tmp = None
        _sync_dir(path.parent)
    except Locked as e:
        raise Locked(f"cannot write {path}: {e}; give another name", e.pid) from None
    except (OSError, ValueError) as e:
        raise _cannot(path, e) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


class AppendFile:
    """A file kept open to append to (a log). Raises FileError; a block that could not be written
    whole is cut off again, so a failure never leaves half of one behind."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            except (OSError, ValueError) as e:
                raise _cannot(self.path, e) from None
        return self._fd

    def size(self) -> int:
        try:
            return os.fstat(self._open()).st_size
        except OSError as e:
            raise _cannot(self.path, e) from None

    def read(self, offset: int, n: int) -> bytes:
        """``n`` bytes from ``offset`` (to look at the tail before appending)."""
        try:
            return os.pread(self._open(), n, offset)
        except OSError as e:
            raise _cannot(self.path, e) from None

    def truncate(self, size: int) -> None:
        try:
            os.ftruncate(self._open(), size)
        except OSError as e:
            raise _cannot(self.path, e) from None

    def write(self, data: bytes) -> None:
        """Append ``data`` as one block, then fsync."""
        fd = self._open()
        size = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as e:
            if size is not None:
                try:
                    os.ftruncate(fd, size)  # no half block left behind
                except OSError:
                    pass
            raise _cannot(self.path, e) from None
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                pass

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def append(path: str | Path, data: bytes) -> None:
    """Append one block to ``path`` and close it again (for files appended to now and then)."""
    log = AppendFile(path)
    try:
        log.write(data)
    finally:
        log.close()


class Lock:
    """A held lock; ``release()`` (or leaving a ``with``) frees it and removes the lock file."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # while still held: whoever opened it meanwhile sees it go
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def lock_path(path: str | Path) -> Path:
    """The lock of a file two chats could write (a session's transcript): a hidden file beside where the
    file really is, so a symlink to it or another spelling of its path meets the same lock."""
    real = Path(os.path.realpath(path))
    return real.with_name(f".{real.name}.lock")


def hold_lock(path: str | Path, what: str) -> Lock:
    """Take the lock ``path`` for ``what`` (e.g. "session X"), or raise Locked naming its holder."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _taken(path, what)
    except (OSError, ValueError) as e:
        raise _cannot(path, e) from None


def _taken(path: Path, what: str) -> Lock:
    """The lock at ``path``, holding our pid; Locked naming its holder (OSError as it comes)."""
    try:
        fd = _lock_at(path)
    except _Held as e:
        pid = e.pid
        where = "this chat" if pid == os.getpid() else f"another chat (pid {pid if pid is not None else 'unknown'})"
        raise Locked(f"{what} is open in {where}", pid) from None
    lock = Lock(path, fd)
    try:
        os.ftruncate(fd, 0)
        _write_all(fd, f"{os.getpid()}\n".encode())
    except OSError:
        lock.release()
        raise
    return lock


class _Held(Exception):
    def __init__(self, pid: int | None):
        self.pid = pid


def _lock_at(path: Path) -> int:
    """An fd of the file at ``path``, flocked; _Held(its holder's pid) when another has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise _Held(pid) from None
        try:  # the holder may have released (and removed) it between our open and our lock
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def remove(path: str | Path) -> None:
    """Remove a file we wrote (an attempt to be redone from the start); gone already is fine."""
    try:
        Path(path).unlink(missing_ok=True)
    except (OSError, ValueError) as e:
        raise FileError(f"cannot remove {path}: {_why(e)}") from None


def set_aside(path: str | Path) -> Path:
    """Move a file we wrote out of the way, kept, to the first free ``NAME.aside-N`` beside it (the
    caller holds the lock of where it is); returns where it went."""
    path = Path(path)
    n = 1
    try:
        while (target := path.with_name(f"{path.name}.aside-{n}")).exists():
            n += 1
        os.rename(path, target)
    except (OSError, ValueError) as e:
        raise FileError(f"cannot move {path} aside: {_why(e)}") from None
    _sync_dir(path.parent)
    return target


def scratch_file(data: bytes, suffix: str = "") -> Path:
    """A new private temporary file holding ``data`` (for an editor to open); the caller removes it."""
    try:
        fd, name = tempfile.mkstemp(suffix=suffix)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
    except (OSError, ValueError) as e:
        raise FileError(f"cannot write a temporary file: {_why(e)}") from None
    return Path(name)
