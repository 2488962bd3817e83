"""What the benchmarks share: finding the shared datasets, and running `mobile-sr` training jobs
side by side, one pinned core and one TensorFlow thread each, so that every job gets the same CPU
time and outside load hits all alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mobile_sr.data import shared_datasets_dir


def shared_datasets_or_skip(*needed: str) -> Path | None:
    """The shared datasets' root when it holds ``sr/train`` and every folder in ``needed``; else
    ``None``, after saying why the benchmark skips."""
    root = shared_datasets_dir()
    if root is None or not all((root / folder).is_dir() for folder in ("sr/train", *needed)):
        print("SKIPPED: shared datasets not found (set MOBILE_SR_DATA or place them at ../shared/datasets)")
        return None
    return root


def mobile_sr_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mobile_sr", *args]


def run_side_by_side(jobs: dict[str, list[str]], log_dir: Path, *, pin: bool = True,
                     poll_seconds: float = 60.0) -> dict[str, float]:
    """Run the commands in ``jobs`` (name -> argv), with ``pin`` at most ``os.cpu_count()`` at a
    time each pinned to its own core (when ``taskset`` exists), else one after the other; print
    each job's last log line while they run. Returns the CPU seconds (user + system) of each."""
    cores = (os.cpu_count() or 1) if pin else 1
    pending = list(jobs.items())
    running: dict[str, tuple[subprocess.Popen, Path]] = {}
    failed, cpu_seconds = [], {}
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
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # poll() does not give the CPU time
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                cpu_seconds[name] = round(usage.ru_utime + usage.ru_stime, 1)
                del running[name]
                if proc.returncode:
                    failed.append(name)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}; see the logs in {log_dir}")
    return cpu_seconds
