"""Training under faults: concurrent commands on one run folder, a full disk, crashes before the
first checkpoint, and re-running the default command; each leaves a run that resumes or a folder
as it was."""

import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mobile_sr import runs
from mobile_sr.core.errors import OutputError, RunFolderError
from mobile_sr.runs import RunLock
from mobile_sr.training import TrainConfig, train
from mobile_sr.training import run_folder as run_folder_module
from mobile_sr.training.run_folder import DiskFullError
from tests.helpers import run_cli


def _quiet(_):
    pass


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _checkpoint_steps(run_dir) -> list[int]:
    from mobile_sr.core.backend import tf

    state = tf.train.get_checkpoint_state(str(run_dir / runs.CHECKPOINT_DIR))
    return sorted(int(path.rsplit("-", 1)[-1]) for path in state.all_model_checkpoint_paths)


def _files(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_train_qat_and_export_refuse_a_run_another_command_holds(tiny_sr, run_copy, tmp_path):
    from mobile_sr.export import export_run
    from mobile_sr.training import finetune

    before = _files(run_copy)
    with RunLock(run_copy, "mobile-sr train"):
        with pytest.raises(RunFolderError, match=rf"in use by mobile-sr train \(pid {os.getpid()}.*--out"):
            train(tiny_sr.config, run_dir=run_copy, overwrite=True, log=_quiet)
        with pytest.raises(RunFolderError, match="in use by mobile-sr train"):
            train(TrainConfig(), run_dir=run_copy, resume=True, log=_quiet)
        with pytest.raises(RunFolderError, match="in use by mobile-sr train.*wait until it ends to fine-tune it"):
            finetune(run_copy, steps=1, run_dir=tmp_path / "qat", log=_quiet)
        with pytest.raises(RunFolderError, match="in use by mobile-sr train.*wait until it ends to export it"):
            export_run(run_dir=run_copy, mode="float", input_size=(8, 8), out_path=tmp_path / "m.tflite", log=_quiet)
        result = run_cli("train", "--out", run_copy, "--resume")
        assert result.exit_code == 1 and result.output.startswith("Error:") and "in use" in result.output
    assert _files(run_copy) == before and not (tmp_path / "qat").exists() and not (tmp_path / "m.tflite").exists()
    assert not runs.lock_path(run_copy).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tiny_sr, tmp_path):
    run_dir = tmp_path / "run"
    lock = runs.lock_path(run_dir)
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename, "command": "mobile-sr train",
                                "started": 0}))
    summary = train(TrainConfig.from_dict({**tiny_sr.config.to_dict(), "steps": 2}), run_dir=run_dir, log=_quiet)
    assert summary["steps"] == 2 and not lock.exists()


def test_a_lock_read_while_it_is_being_written_names_its_holder(tmp_path):
    run_dir = tmp_path / "run"
    lock = runs.lock_path(run_dir)
    lock.write_text("")  # created, its record not written yet
    writer = threading.Timer(0.2, lambda: lock.write_text(json.dumps(
        {"pid": os.getpid(), "host": os.uname().nodename, "command": "mobile-sr qat", "started": 0})))
    writer.start()
    with pytest.raises(RunFolderError, match="in use by mobile-sr qat"):
        RunLock(run_dir, "mobile-sr train").__enter__()
    writer.join()
    lock.write_text("{damaged")
    with pytest.raises(RunFolderError, match="in use by another mobile-sr command"):
        RunLock(run_dir, "mobile-sr train").__enter__()


def test_a_lock_folder_made_for_a_failed_command_is_removed(tmp_path):
    with pytest.raises(RunFolderError, match="is a file"):
        (tmp_path / "file").write_text("")
        with RunLock(tmp_path / "file" / "run", "mobile-sr train"):
            pass
    with RunLock(tmp_path / "new" / "deeper" / "run", "mobile-sr train"):
        assert (tmp_path / "new" / "deeper").is_dir()
    assert not (tmp_path / "new").exists()


@pytest.mark.large
def test_two_train_commands_started_at_once_on_one_folder(tiny_sr, tmp_path):
    command = [sys.executable, "-m", "mobile_sr", "train", "--model", "scsrn", "--scale", "2", "--channels", "8",
               "--data", tiny_sr.data, "--patch-size", "16", "--batch-size", "4", "--steps", "20",
               "--out", tmp_path / "run"]
    processes = [subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=240)[0] for process in processes]
    codes = sorted(process.returncode for process in processes)
    assert codes == [0, 1], outputs
    loser = outputs[[process.returncode for process in processes].index(1)]
    assert loser.strip().splitlines()[-1].startswith("Error:") and "in use by mobile-sr train" in loser
    summary = json.loads((tmp_path / "run" / runs.SUMMARY_FILE).read_text())
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / runs.METRICS_FILE).read_text().splitlines()]
    assert summary["steps"] == 20 and steps == sorted(steps)


def test_the_default_run_folder_is_numbered_when_it_holds_a_run(tiny_sr, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig.from_dict({**tiny_sr.config.to_dict(), "steps": 1})
    messages = []
    train(config, log=messages.append)
    train(config, log=messages.append)
    (tmp_path / "runs" / "scsrn-x2-3").mkdir()  # an empty folder is free
    train(config, log=messages.append)
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["scsrn-x2", "scsrn-x2-2", "scsrn-x2-3"]
    said = [m for m in messages if "already holds a run" in m]
    assert len(said) == 2 and "goes to runs/scsrn-x2-2" in said[0] and "--resume" in said[0]


def test_a_full_disk_is_refused_before_the_run_folder_is_made(tiny_sr, tmp_path, monkeypatch):
    monkeypatch.setattr(run_folder_module, "free_bytes", lambda _: 1024)
    with pytest.raises(DiskFullError, match=r"the disk holding .*run is full \(0.0 MiB free.*start it again"):
        train(tiny_sr.config, run_dir=tmp_path / "run", log=_quiet)
    assert not (tmp_path / "run").exists() and not runs.lock_path(tmp_path / "run").exists()


def test_a_full_disk_at_the_final_save_keeps_the_checkpoint_and_resume_finishes(tiny_sr, tmp_path, monkeypatch):
    from mobile_sr.core.backend import keras

    run_dir = tmp_path / "run"

    def disk_fills(model, path, **_):
        Path(path).write_bytes(b"half")  # what HDF5 leaves
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    config = TrainConfig.from_dict({**tiny_sr.config.to_dict(), "steps": 8})
    with monkeypatch.context() as patched:
        patched.setattr(keras.Model, "save_weights", disk_fills)
        with pytest.raises(DiskFullError, match=r"is full; the checkpoint of step 8 is kept.*train --out .*run --resume"):
            train(config, run_dir=run_dir, log=_quiet)
    assert not list(run_dir.rglob(".partial*")) and not (run_dir / runs.WEIGHTS_FILE).exists()
    summary = train(TrainConfig(), run_dir=run_dir, resume=True, log=_quiet)
    assert summary["steps"] == 8 and (run_dir / runs.WEIGHTS_FILE).is_file()
    validations = [r for r in map(json.loads, (run_dir / runs.METRICS_FILE).read_text().splitlines()) if "val_psnr_y" in r]
    assert [r["step"] for r in validations] == [4, 8]  # finishing validated nothing twice
    assert summary["val_psnr_y"] == pytest.approx(validations[-1]["val_psnr_y"], abs=1e-4)


def test_a_checkpoint_save_on_a_full_disk_leaves_the_last_good_one(tiny_sr, tmp_path, monkeypatch):
    from mobile_sr.core.backend import tf

    run_dir = tmp_path / "run"
    real_save = tf.train.CheckpointManager.save

    def save(manager, checkpoint_number=None):
        if checkpoint_number != 4:
            raise tf.errors.ResourceExhaustedError(None, None, "ckpt_temp/part-00000; No space left on device")
        return real_save(manager, checkpoint_number=checkpoint_number)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    config = TrainConfig.from_dict({**tiny_sr.config.to_dict(), "steps": 8})
    with pytest.raises(DiskFullError, match="the checkpoint of step 4 is kept"):
        train(config, run_dir=run_dir, log=_quiet)
    assert _checkpoint_steps(run_dir) == [4]


def test_a_full_disk_before_any_checkpoint_leaves_no_run(tiny_sr, tmp_path, monkeypatch):
    from mobile_sr.core.backend import tf

    def save(manager, checkpoint_number=None):
        (tmp_path / "run" / runs.CHECKPOINT_DIR / f"ckpt-{checkpoint_number}_temp").mkdir(parents=True)
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    with pytest.raises(DiskFullError, match="no checkpoint was written, so no run was kept"):
        train(tiny_sr.config, run_dir=tmp_path / "run", log=_quiet)
    assert not (tmp_path / "run").exists()


def test_other_write_errors_are_not_called_a_full_disk(tiny_sr, tmp_path, monkeypatch):
    from mobile_sr.training import plans

    def denied(model, path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(plans, "save_weights", denied)
    with pytest.raises(PermissionError):
        train(TrainConfig.from_dict({**tiny_sr.config.to_dict(), "steps": 2}), run_dir=tmp_path / "run", log=_quiet)


def test_the_first_checkpoint_comes_at_the_first_validation(tiny_sr, tmp_path):
    config = TrainConfig.from_dict({**tiny_sr.config.to_dict(), "steps": 12, "validations": 4,
                                    "checkpoint_seconds": 3600.0})
    train(config, run_dir=tmp_path / "run", log=_quiet)
    assert _checkpoint_steps(tmp_path / "run") == [3, 12]  # two kept: the first validation's and the last


def test_checkpoint_minutes_option(tiny_sr, tmp_path):
    common = ["train", "--model", "scsrn", "--scale", "2", "--channels", "8", "--option", "feature_convs=2",
              "--data", tiny_sr.data, "--patch-size", "16", "--batch-size", "4", "--steps", "1"]
    result = run_cli(*common, "--checkpoint-minutes", "0.5", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / runs.CONFIG_FILE).read_text())["train"]["checkpoint_seconds"] == 30.0
    result = run_cli(*common, "--checkpoint-minutes", "0", "--out", tmp_path / "other")
    assert result.exit_code == 2 and "--checkpoint-minutes" in result.output


@pytest.mark.large
def test_an_error_after_restoring_a_checkpoint_is_the_last_line(run_copy):
    script = textwrap.dedent(f"""
        import sys
        from mobile_sr.training import run_folder
        run_folder.free_bytes = lambda _: 0  # the disk filled since the run stopped
        from mobile_sr.cli import main
        main(["train", "--out", {str(run_copy)!r}, "--resume", "--steps", "40"])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1 and lines[-1].startswith("Error: the disk holding"), lines[-5:]
    assert not any("could not be found" in line or "Traceback" in line for line in lines)


def test_an_unwritable_lock_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="/proc/mobile_sr_run: cannot be written"):
        with RunLock("/proc/mobile_sr_run", "mobile-sr train"):
            pass
