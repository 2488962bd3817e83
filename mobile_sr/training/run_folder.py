"""The run folder while training writes it: checked before any work, created only once the data,
model and checkpoint have loaded, weights saved atomically, and the metrics log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from mobile_sr import runs
from mobile_sr.core.errors import RunFolderError
from mobile_sr.core.files import check_output_path, free_bytes
from mobile_sr.runs import RunConfig, TrainConfig


def check_new_run_dir(run_dir: Path, *, overwrite: bool, init_from: str | None = None) -> None:
    """Fail before any work when ``run_dir`` cannot take a new run: ``overwrite`` replaces only a
    run (a folder with a config.json), never other files nor the run ``init_from`` starts from."""
    existing = next((path for path in (run_dir, *run_dir.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        raise RunFolderError(f"{existing} is a file, so {run_dir} cannot be a run folder; pick another folder with --out")
    start = Path(init_from).resolve() if init_from is not None else None
    if start is not None and run_dir.resolve() in (start, *start.parents):
        raise RunFolderError(f"{run_dir} is or holds the run {init_from} that this run starts from; pick another "
                             "folder with --out")
    if existing == run_dir and any(run_dir.iterdir()):
        if not (run_dir / runs.CONFIG_FILE).is_file():
            raise RunFolderError(f"{run_dir} is not empty and holds no run (no {runs.CONFIG_FILE}); --overwrite "
                                 "replaces only a run folder, so pick an empty or new folder with --out")
        if not overwrite:
            raise RunFolderError(
                f"{run_dir} already holds a run; continue it with --resume, replace it with "
                "--overwrite, or pick another folder with --out"
            )
    check_output_path(run_dir / runs.CONFIG_FILE)


def create_run_dir(run_dir: Path, *, overwrite: bool) -> None:
    """``run_dir`` for a new run; with ``overwrite``, emptied of the run it held."""
    try:
        if overwrite and (run_dir / runs.CONFIG_FILE).is_file():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{run_dir}: cannot be created ({exc.strerror or exc}); pick another folder with --out") from None


def check_same_start(stored: RunConfig, init_from: str, run_dir: Path) -> None:
    """Refuse to resume the run in ``run_dir`` as a fine-tuning of ``init_from`` when it started from another run."""
    stored_start = stored.train.init_from
    if stored_start is None or Path(stored_start).resolve() != Path(init_from).resolve():
        raise RunFolderError(f"{run_dir} fine-tunes {stored_start or 'nothing (a run trained from scratch)'}, not "
                             f"{init_from}; give the run it started from with --run, or pick its QAT run with --out")


def check_budget_left(config: TrainConfig, checkpoint: str, run_dir: Path) -> None:
    """Refuse to resume a run whose ``checkpoint`` has used ``config``'s budget, before loading anything."""
    from mobile_sr.core.backend import tf

    try:
        step = int(tf.train.load_variable(checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE"))
        elapsed = float(tf.train.load_variable(checkpoint, "elapsed/.ATTRIBUTES/VARIABLE_VALUE"))
    except (ValueError, tf.errors.OpError) as exc:  # a damaged checkpoint, or another program's
        raise RunFolderError(runs.checkpoint_problem(checkpoint, exc)) from None
    # a run whose final save failed (e.g. on a full disk) has no weights file yet: resuming finishes it
    if config.progress(step, elapsed) >= 1.0 and (run_dir / runs.WEIGHTS_FILE).is_file():
        raise RunFolderError(f"{run_dir} has used its whole budget ({step} steps); "
                             "give a larger --steps or --minutes to continue it")


SPACE_MARGIN_BYTES = 1 << 20  # file-format overhead on top of the raw weights


class DiskFullError(RunFolderError):
    """The disk ran out of space while training wrote the run folder."""


def resume_hint(run_dir: Path) -> str:
    return f"mobile-sr train --out {run_dir} --resume"


def check_free_space(run_dir: Path, needed_bytes: int, what: str) -> None:
    """Raise :class:`DiskFullError` before writing ``what`` when the disk lacks ``needed_bytes``:
    HDF5 and TensorFlow handle a disk that fills mid-write badly (a crash, a half-written file)."""
    free = free_bytes(run_dir)
    if free < needed_bytes + SPACE_MARGIN_BYTES:
        raise DiskFullError(f"the disk holding {run_dir} is full ({free / 2**20:.1f} MiB free, {what} needs "
                            f"{(needed_bytes + SPACE_MARGIN_BYTES) / 2**20:.1f} MiB)")


def weights_bytes(model) -> int:
    return sum(int(weight.dtype.size) * int(np.prod(weight.shape)) for weight in model.weights)


def save_weights(model, path: Path) -> None:
    """``model``'s weights to ``path``, never half-written: saved beside it, then moved over it;
    refused up front when the disk cannot hold them."""
    check_free_space(path.parent, 2 * weights_bytes(model), f"saving {path.name}")
    partial = path.with_name(f".partial.{path.name}")  # same suffix, same format
    try:
        model.save_weights(str(partial))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def remove_unfinished_checkpoints(run_dir: Path) -> None:
    """Remove what a failed checkpoint save left (TensorFlow's temporary folders and any files of a
    checkpoint the state file does not list); the last good checkpoint stays."""
    from mobile_sr.core.backend import tf

    folder = run_dir / runs.CHECKPOINT_DIR
    if not folder.is_dir():
        return
    state = tf.train.get_checkpoint_state(str(folder))
    kept = {Path(path).name for path in state.all_model_checkpoint_paths} if state else set()
    for path in folder.iterdir():
        if path.name.endswith("_temp") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith("ckpt-") and path.name.split(".", 1)[0] not in kept:
            path.unlink(missing_ok=True)


class MetricsLog:
    """The run's metrics.jsonl: one JSON record per log line or validation, appended as training goes."""

    def __init__(self, path: Path):
        self.path = path
        self.records = []
        try:
            lines = path.read_text().splitlines() if path.exists() else []
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{path}: cannot be read ({exc}); delete it, or start the run again with --overwrite") from None
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                self.records.append(record)
            elif number < len(lines):  # a cut last line is what a crash mid-write leaves: dropped on resume
                raise RunFolderError(f"{path}: line {number} is not a metrics record; delete that line, or start "
                                     "the run again with --overwrite")

    def add(self, record: dict) -> None:
        self.records.append(record)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past the resumed checkpoint, so a resumed log has no repeated steps."""
        self.records = [r for r in self.records if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.records))
