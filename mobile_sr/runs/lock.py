"""One command at a time per run folder: a lock file next to the folder (so that it exists before
the folder does and survives ``--overwrite``), naming the process that holds it. A lock left by
a process that died on this machine is taken over."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from mobile_sr.core.errors import OutputError, RunFolderError


def lock_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / f".{run_dir.name}.lock"


# A lock file is created empty and then written: a reader in between waits this long for its record.
RECORD_WAIT_SECONDS = 1.0


def _holder(path: Path) -> dict | None:
    """The live holder of a lock file: None when there is none, or its process has died here."""
    deadline = time.monotonic() + RECORD_WAIT_SECONDS
    while True:
        try:
            holder = json.loads(path.read_text())
            break
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # being written right now, or damaged: then held, by whom is unknown
            if time.monotonic() > deadline:
                return {"pid": None, "host": None, "command": "another mobile-sr command", "started": None}
            time.sleep(0.02)
    if not isinstance(holder, dict):
        return {"pid": None, "host": None, "command": "another mobile-sr command", "started": None}
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return None  # died without releasing it
        except PermissionError:
            pass  # alive, another user's
    return holder


def _describe(run_dir: Path, holder: dict) -> str:
    started = holder.get("started")
    since = f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}" if isinstance(started, (int, float)) else ""
    pid = f" (pid {holder['pid']} on {holder.get('host')}{since})" if holder.get("pid") else ""
    return f"{run_dir} is in use by {holder.get('command') or 'another mobile-sr command'}{pid}"


def check_unlocked(run_dir: Path, *, action: str) -> None:
    """Raise :class:`RunFolderError` if a command holds ``run_dir``: ``action`` (e.g. "export it")
    would read or write files that command is writing."""
    holder = _holder(lock_path(run_dir))
    if holder is not None:
        raise RunFolderError(f"{_describe(run_dir, holder)}; wait until it ends to {action}")


class RunLock:
    """Hold ``run_dir`` for ``command`` (e.g. "mobile-sr train") while the block runs; a second
    command on the same folder fails at once."""

    def __init__(self, run_dir: Path, command: str):
        self.run_dir, self.command = Path(run_dir), command
        self.path = lock_path(run_dir)
        self.held = False
        self.created: list[Path] = []  # folders made for the lock, removed with it when left empty

    def __enter__(self) -> RunLock:
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                             "started": time.time()})
        file_in_the_way = next((path for path in (self.path.parent, *self.path.parent.parents) if path.is_file()), None)
        if file_in_the_way is not None:
            raise RunFolderError(f"{file_in_the_way} is a file, so {self.run_dir} cannot be a run folder; pick another "
                                 "folder with --out")
        for _ in range(2):  # a second try after removing a dead process's lock
            try:
                self.created = [folder for folder in (self.path.parent, *self.path.parent.parents) if not folder.exists()]
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = _holder(self.path)
                if holder is not None:
                    raise RunFolderError(f"{_describe(self.run_dir, holder)}; wait until it ends, or pick another "
                                         "folder with --out") from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            except OSError as exc:
                self._remove_created()
                raise OutputError(f"{self.run_dir}: cannot be written ({exc.strerror or exc}); pick a folder you "
                                  "can write to with --out") from None
            with os.fdopen(handle, "w") as lock_file:
                lock_file.write(record)
            self.held = True
            return self
        raise RunFolderError(f"{self.run_dir}: another command took it over just now; try again")

    def __exit__(self, *_exc) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in self.created:  # nearest first; a folder something else wrote into stays
            with contextlib.suppress(OSError):
                folder.rmdir()
