"""Writing files safely: atomically (readers see the old file or the whole new one), checked
for writability before any expensive work, and JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import tempfile
from pathlib import Path

from mobile_sr.core.errors import OutputError


def _unwritable(path: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.EISDIR:
        return OutputError(f"{path}: is a folder; give the path of a file to write")
    reason = exc.strerror or str(exc)
    if exc.filename is not None and Path(exc.filename) in path.parents:
        reason = f"cannot create the folder {exc.filename}: {reason}"
    return OutputError(f"{path}: cannot be written ({reason}); choose a path in a folder you can "
                       "write to, or fix that folder's permissions")


def check_output_path(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` now, before any expensive work, if a file could not be written
    at ``path``: create a throwaway file next to it (and any missing parent folders), then remove
    everything that was created."""
    path = Path(path)
    created = []
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        missing = [folder for folder in path.parents if not folder.exists()]
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):  # a path through "..", or made meanwhile
                folder.mkdir()
                created.append(folder)
        handle, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):  # something else wrote there meanwhile: keep it
                folder.rmdir()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.
    The file gets the permissions ``open()`` would give it (0o666 less the umask)."""
    path = Path(path)
    tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not mkstemp: it creates the file 0o600; os.open applies the umask as open() does.
        handle = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        with os.fdopen(handle, "wb") as tmp:
            tmp.write(data)
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _unwritable(path, exc) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data) -> None:
    """``data`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
