"""Writing files safely: atomically (readers see the old file or the whole new one), checked
for writability before any expensive work, and JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mobile_sr.core.errors import OutputError

T = TypeVar("T")

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# how libraries that do not raise OSError (TensorFlow, HDF5) word the same two errors
_FULL_DISK_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT), "errno = 28")


def is_full_disk(exc: BaseException) -> bool:
    """Whether ``exc`` (or the error it was raised from) is a full disk or an exhausted quota."""
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, OSError) and error.errno in FULL_DISK_ERRNOS:
            return True
        if error is not None and any(text in str(error) for text in _FULL_DISK_TEXTS):
            return True
    return False


def free_bytes(path: str | os.PathLike) -> int:
    """Free space on the disk that holds ``path`` (or would: its nearest existing folder)."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def unwritable_error(path: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.EISDIR:
        return OutputError(f"{path}: is a folder; give the path of a file to write")
    if exc.errno in FULL_DISK_ERRNOS:
        return OutputError(f"{path}: cannot be written, the disk is full ({exc.strerror}); free space, or choose "
                           "a path on another disk")
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
        raise unwritable_error(path, exc) from None
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
        raise unwritable_error(path, exc) from None
    try:
        with os.fdopen(handle, "wb") as tmp:
            tmp.write(data)
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise unwritable_error(path, exc) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data) -> None:
    """``data`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def write_all_or_none(destinations: list[Path], write: Callable[[dict[Path, Path]], T]) -> T:
    """Write every output or none: ``write`` gets a hidden staging path next to each destination
    and writes them all; only then is each moved into place. If a write fails, the staged files
    are removed and files already at the destinations stay as they were (a full disk must not
    leave the JSON without its CSV); a full disk becomes an OutputError naming the folder."""
    staged = {path: path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial") for path in destinations}
    try:
        result = write(staged)
        for path, staging in staged.items():  # renames within one folder: they need no free space
            staging.replace(path)
    except BaseException as exc:  # Ctrl-C too: leave no staging file behind
        for staging in staged.values():
            staging.unlink(missing_ok=True)
        if not isinstance(exc, (OSError, OutputError)):
            raise
        if is_full_disk(exc):  # also an OutputError that core.files raised from the OSError
            raise OutputError(f"the disk holding {destinations[0].parent.absolute()} is full (or your quota on it "
                              f"is used up): none of {', '.join(path.name for path in destinations)} was written; "
                              "free space, or write them to another disk") from None
        if isinstance(exc, OutputError):
            message = str(exc)
        else:  # a rename failed: name the output it was for
            failed = next((path for path, staging in staged.items() if exc.filename == str(staging)), destinations[0])
            message = str(unwritable_error(failed, exc))
        for path, staging in staged.items():  # name the outputs, not their staging files
            message = message.replace(str(staging), str(path))
        raise OutputError(message) from None
    return result
