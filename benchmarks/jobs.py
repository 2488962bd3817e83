"""Running `mobile-sr` training jobs for benchmarks: side by side, one pinned core and one
TensorFlow thread each, so that every job gets the same CPU time and outside load hits all alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def mobile_sr_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mobile_sr", *args]


def run_side_by_side(jobs: dict[str, list[str]], log_dir: Path, *, pin: bool = True, poll_seconds: float = 60.0) -> None:
    """Run the commands in ``jobs`` (name -> argv), with ``pin`` at most ``os.cpu_count()`` at a
    time each pinned to its own core (when ``taskset`` exists), else one after the other; print
    each job's last log line while they run."""
    cores = (os.cpu_count() or 1) if pin else 1
    pending = list(jobs.items())
    running: dict[str, tuple[subprocess.Popen, Path]] = {}
    failed = []
    while pending or running:
        while pending and len(running) < cores:
            name, command = pending.pop(0)
            used = {proc.args[2] for proc, _ in running.values() if proc.args[0] == "taskset"}
            core = next(str(c) for c in range(cores) if str(c) not in used)
            if pin and shutil.which("taskset"):
                command = ["taskset", "-c", core, *command]
            log = log_dir / f"{name}.log"
            running[name] = (subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT), log)
            print(f"started {name}: {' '.join(command)}", flush=True)
        time.sleep(poll_seconds)
        for name, (proc, log) in list(running.items()):
            lines = log.read_text().splitlines()
            print(f"  {name}: {lines[-1] if lines else '(starting)'}", flush=True)
            if proc.poll() is not None:
                del running[name]
                if proc.returncode:
                    failed.append(name)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}; see the logs in {log_dir}")
