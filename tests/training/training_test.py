"""Float training and QAT fine-tuning: run folders, resuming, the schedule, objectives, and the
errors that leave a run as it was."""

import dataclasses
import json

import numpy as np
import pytest

from mobile_sr import runs
from mobile_sr.core.errors import ConfigError, DatasetError, RunFolderError
from mobile_sr.runs import load_trained_model
from mobile_sr.training import TrainConfig, train
from tests.helpers import TINY_SR as TINY
from tests.helpers import raw_run_config, write_raw_run_config


def test_run_folder_contents(tiny_sr):
    run_dir, summary = tiny_sr.float_run, tiny_sr.summary
    for name in (runs.CONFIG_FILE, runs.WEIGHTS_FILE, runs.SUMMARY_FILE, runs.METRICS_FILE, runs.CURVE_FILE):
        assert (run_dir / name).is_file(), name
    assert summary["steps"] == 24 and np.isfinite(summary["val_psnr_y"])
    records = [json.loads(line) for line in (run_dir / runs.METRICS_FILE).read_text().splitlines()]
    assert any(r.get("loss_name") == "l2" for r in records)  # the L2 phase ran at the end
    assert sum("val_psnr_y" in r for r in records) == 2


def test_trained_model_loads_back(tiny_sr):
    model, config = load_trained_model(tiny_sr.float_run)
    assert (config.task.name, config.model, config.model_config.channels) == ("sr", "scsrn", 8)
    assert model(np.zeros((1, 8, 8, 3), np.float32)).shape == (1, 16, 16, 3)


def test_resume_continues_from_the_checkpoint(tiny_sr, run_copy):
    run_dir, config = run_copy, tiny_sr.config
    summary = train(TrainConfig.from_dict({**config.to_dict(), "steps": 30}), run_dir=run_dir, resume=True,
                    log=lambda _: None)
    assert summary["steps"] == 30
    steps = [json.loads(line)["step"] for line in (run_dir / runs.METRICS_FILE).read_text().splitlines()]
    assert steps == sorted(steps)


@pytest.mark.large
def test_qat_keeps_its_calibrated_start_when_fine_tuning_only_hurts(tiny_sr, tmp_path):
    float_run, config = tiny_sr.float_run, tiny_sr.config
    qat_config = TrainConfig.from_dict({**config.to_dict(), "steps": 6, "init_from": str(float_run), "qat": True,
                                        "learning_rate": 0.5, "warmup_steps": 0})  # a rate that wrecks the weights
    run_dir = tmp_path / "qat"
    summary = train(qat_config, run_dir=run_dir, log=lambda _: None)
    validations = [json.loads(line) for line in (run_dir / runs.METRICS_FILE).read_text().splitlines()]
    validations = [(r["step"], r["val_psnr_y"]) for r in validations if "val_psnr_y" in r]
    assert validations[0][0] == 0 and len(validations) == 3  # the calibrated start, then the 2 of the budget
    assert summary["kept_step"] == 0 and summary["val_psnr_y"] == round(validations[0][1], 4)
    assert summary["final_val_psnr_y"] < summary["val_psnr_y"]
    assert not (run_dir / runs.CHECKPOINT_DIR / "best.weights.h5").exists()


@pytest.mark.large
def test_qat_command_writes_its_rounding_and_shaping_to_the_run(tiny_sr, tmp_path):
    from click.testing import CliRunner

    from mobile_sr.cli import main

    float_run = tiny_sr.float_run
    for name, extra in (("nearest", ["--rounding", "nearest", "--seed", "3"]), ("plain", ["--plain"])):
        result = CliRunner().invoke(main, ["qat", "--run", str(float_run), "--steps", "1", "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
    nearest, plain = (runs.read_run_config(tmp_path / name).train for name in ("nearest", "plain"))
    assert (nearest.qat_rounding, nearest.clip_threshold, nearest.symmetry_strength) == ("nearest", "mse", 1e-2)
    assert (plain.qat_rounding, plain.clip_threshold, plain.symmetry_strength) == ("data_aware", None, 0.0)
    assert (nearest.seed, plain.seed) == (3, 0)  # the float run's seed unless given


@pytest.mark.large
def test_the_symmetric_regularizer_evens_channel_extremes_from_scratch(tiny_sr, tmp_path):
    from mobile_sr.quantization.weights import asymmetry, conv_kernels

    config = tiny_sr.config
    mean_asymmetry = {}
    for strength in (0.0, 10.0):
        train(TrainConfig.from_dict({**config.to_dict(), "steps": 30, "learning_rate": 0.01, "ema_decay": 0.0,
                                     "symmetry_strength": strength}), run_dir=tmp_path / str(strength), log=lambda _: None)
        model, _ = load_trained_model(tmp_path / str(strength))
        mean_asymmetry[strength] = np.mean([asymmetry(kernel.numpy()) for kernel in conv_kernels(model)])
    assert mean_asymmetry[10.0] < 0.75 * mean_asymmetry[0.0]


def test_train_command_writes_the_regularizer_strength(tiny_sr, tmp_path):
    from click.testing import CliRunner

    from mobile_sr.cli import main

    config = tiny_sr.config
    result = CliRunner().invoke(main, ["train", "--model", "scsrn", "--scale", "2", "--data", config.data, "--steps", "1",
                                       "--channels", "8", "--option", "feature_convs=2", "--batch-size", "4",
                                       "--patch-size", "16", "--symmetry", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert runs.read_run_config(tmp_path / "run").train.symmetry_strength == 1.0


def test_weight_clipping_needs_a_trained_start():
    with pytest.raises(ConfigError, match="trained start.*symmetry_strength alone"):
        TrainConfig(clip_threshold="mse")


@pytest.mark.large
def test_the_seed_makes_a_run_repeatable(tiny_sr, tmp_path):
    config = tiny_sr.config
    def weights(seed: int, name: str) -> list[np.ndarray]:
        train(TrainConfig.from_dict({**config.to_dict(), "steps": 2, "seed": seed}), run_dir=tmp_path / name,
              log=lambda _: None)
        return load_trained_model(tmp_path / name)[0].get_weights()

    first, again, other = weights(0, "first"), weights(0, "again"), weights(1, "other")
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_existing_run_is_not_overwritten_silently(tiny_sr):
    run_dir, config = tiny_sr.float_run, tiny_sr.config
    with pytest.raises(RunFolderError, match="--resume.*--overwrite"):
        train(config, run_dir=run_dir, log=lambda _: None)


def test_resume_without_a_run(tmp_path):
    with pytest.raises(RunFolderError, match="no such run folder"):
        train(TrainConfig(steps=1), run_dir=tmp_path / "none", resume=True)


def test_broken_run_folder(tmp_path):
    (tmp_path / runs.CONFIG_FILE).write_text("{not json")
    with pytest.raises(RunFolderError, match="damaged"):
        load_trained_model(tmp_path)
    with pytest.raises(RunFolderError, match="not a run folder"):
        load_trained_model(tmp_path.parent)


@pytest.mark.parametrize(
    "options,match",
    [({"steps": 0}, "steps"), ({"lr_schedule": "linear"}, "lr_schedule"), ({"model_options": {"scale": 5}}, "scale"),
     ({"l2_finetune_fraction": 1.5}, "l2_finetune"), ({"qat_rounding": "stochastic"}, "qat_rounding"),
     ({"seed": -5}, "seed")],
)
def test_invalid_training_config(options, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**options)


def test_schedule_follows_progress():
    config = TrainConfig(steps=100, learning_rate=1e-3, warmup_steps=0, lr_milestones=(0.5, 0.9), lr_gamma=0.1)
    assert config.learning_rate_at(10, config.progress(10, 0)) == pytest.approx(1e-3)
    assert config.learning_rate_at(60, config.progress(60, 0)) == pytest.approx(1e-4)
    assert config.learning_rate_at(95, config.progress(95, 0)) == pytest.approx(1e-5)
    timed = TrainConfig(minutes=1.0)
    assert timed.progress(10**6, 30.0) == pytest.approx(0.5)
    cosine = TrainConfig(steps=10, lr_schedule="cosine", warmup_steps=0, lr_min=0.0)
    assert cosine.learning_rate_at(5, 0.5) == pytest.approx(cosine.learning_rate / 2)


def test_hdr_patch_size_must_fit_the_unet(tmp_path):
    with pytest.raises(ConfigError, match="multiple of 4"):
        train(TrainConfig.for_model("hdr_unet", patch_size=30, steps=1), run_dir=tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()


@pytest.mark.large
def test_structure_texture_objective_trains_attention_sr_with_gradnorm(hr_folder, tmp_path):
    config = TrainConfig(model="attention_sr", model_options={"scale": 2, "channels": 8, "groups": 1, "blocks": 1},
                         data=str(hr_folder), steps=3, batch_size=2, patch_size=16, warmup_steps=0, validations=1,
                         objectives={"structure_texture": 1.0, "high_frequency": 0.5})
    summary = train(config, run_dir=tmp_path / "run", log=lambda _: None)
    assert summary["steps"] == 3 and np.isfinite(summary["val_psnr_y"])


def test_structure_texture_needs_the_two_branches(hr_folder, tmp_path):
    config = TrainConfig(data=str(hr_folder), steps=1, objectives={"structure_texture": 1.0}, **{**TINY, "validations": 1})
    with pytest.raises(ConfigError, match="attention_sr"):
        train(config, run_dir=tmp_path / "run", log=lambda _: None)


def test_resume_from_the_command_line_keeps_the_run_model(run_copy):
    from click.testing import CliRunner

    from mobile_sr.cli import main

    stored = runs.read_run_config(run_copy)
    steps = stored.train.steps + 2
    # the README's form: the command's defaults (scsrn x3, 32 channels) must not replace the run's model
    result = CliRunner().invoke(main, ["train", "--out", str(run_copy), "--resume", "--steps", str(steps)])
    assert result.exit_code == 0, result.output
    assert json.loads((run_copy / runs.SUMMARY_FILE).read_text())["steps"] == steps
    assert runs.read_run_config(run_copy) == dataclasses.replace(stored, train=dataclasses.replace(stored.train, steps=steps))


def test_resume_refuses_settings_it_would_not_use(run_copy):
    from click.testing import CliRunner

    from mobile_sr.cli import main

    before = (run_copy / runs.CONFIG_FILE).read_text()
    result = CliRunner().invoke(main, ["train", "--out", str(run_copy), "--resume", "--data", "default", "--scale", "3"])
    assert result.exit_code == 2 and "drop --data, --scale" in result.output
    assert (run_copy / runs.CONFIG_FILE).read_text() == before


@pytest.mark.parametrize("config,match", [
    ([], "not a JSON object"), ({"model": "scsrn", "model_config": [1]}, "'model_config' is missing or not a mapping"),
    ({"model": "scsrn", "model_config": "x"}, "'model_config'"), ({"model": "scsrn", "model_config": 5}, "'model_config'"),
    ({"model": "scsrn", "model_config": {"scale": 2}}, "'train' is missing"),
    ({"model": "scsrn", "model_config": {"scale": 2}, "train": {"model": "scsrn"}}, "'train' lacks data"),
])
def test_damaged_run_config_is_refused_by_name(tmp_path, config, match):
    (tmp_path / runs.CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(RunFolderError, match=f"{runs.CONFIG_FILE}: damaged.*{match}.*retrain or restore"):
        runs.read_run_config(tmp_path)


def test_unreadable_run_config_and_a_file_for_a_run(tmp_path):
    (tmp_path / runs.CONFIG_FILE).mkdir()
    with pytest.raises(RunFolderError, match="cannot be read"):
        load_trained_model(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match="is a file, not a run folder"):
        load_trained_model(tmp_path / "file")


def test_damaged_or_foreign_checkpoint_gives_a_run_folder_error(run_copy):
    (run_copy / runs.WEIGHTS_FILE).unlink()  # the latest checkpoint is then what loads
    config = raw_run_config(run_copy)
    config["model_config"]["channels"] = config["train"]["model_options"]["channels"] = 4
    write_raw_run_config(run_copy, config)
    with pytest.raises(RunFolderError, match="cannot be restored.*--overwrite"):
        load_trained_model(run_copy)
    with pytest.raises(RunFolderError, match="cannot be restored.*--overwrite"):
        train(TrainConfig(steps=1000), run_dir=run_copy, resume=True, log=lambda _: None)
    for data in (run_copy / runs.CHECKPOINT_DIR).glob("*.data-*"):
        data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(RunFolderError, match="cannot be restored"):
        load_trained_model(run_copy)


def test_resume_drops_a_cut_last_metrics_line_and_refuses_a_bad_one(run_copy):
    metrics = run_copy / runs.METRICS_FILE
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines) + '\n{"step": 9')  # a crash mid-write
    steps = runs.read_run_config(run_copy).train.steps + 1
    train(TrainConfig(steps=steps), run_dir=run_copy, resume=True, log=lambda _: None)
    assert all(isinstance(json.loads(line), dict) for line in metrics.read_text().splitlines())
    metrics.write_text("garbage\n" + metrics.read_text())
    with pytest.raises(RunFolderError, match=f"{runs.METRICS_FILE}: line 1 "):
        train(TrainConfig(steps=steps + 1), run_dir=run_copy, resume=True, log=lambda _: None)


def test_nothing_is_written_when_the_data_or_the_folder_fails(tmp_path, tiny_sr):
    with pytest.raises(DatasetError):
        train(TrainConfig(data=str(tmp_path / "none"), steps=1, **TINY), run_dir=tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match="file is a file.*--out"):
        train(TrainConfig(data=tiny_sr.config.data, steps=1, **TINY), run_dir=tmp_path / "file" / "run", log=lambda _: None)


@pytest.mark.large
def test_qat_of_the_current_folder_and_with_bad_data(run_copy, monkeypatch):
    from click.testing import CliRunner

    from mobile_sr.cli import main

    result = CliRunner().invoke(main, ["qat", "--run", str(run_copy), "--steps", "1", "--data", str(run_copy / "none")])
    assert result.exit_code == 1 and not run_copy.with_name("run-qat").exists()
    monkeypatch.chdir(run_copy)
    result = CliRunner().invoke(main, ["qat", "--run", ".", "--steps", "1"])
    assert result.exit_code == 0, result.output
    assert (run_copy.with_name("run-qat") / runs.WEIGHTS_FILE).is_file()
    result = CliRunner().invoke(main, ["qat", "--run", ".", "--resume", "--steps", "2"])  # a finished QAT run goes on
    assert result.exit_code == 0, result.output
    summary = (run_copy.with_name("run-qat") / runs.SUMMARY_FILE).read_text()
    result = CliRunner().invoke(main, ["qat", "--run", ".", "--resume", "--steps", "2"])
    assert result.exit_code == 1 and "whole budget" in result.output
    assert (run_copy.with_name("run-qat") / runs.SUMMARY_FILE).read_text() == summary


def test_overwrite_replaces_only_a_run_and_never_the_run_it_starts_from(run_copy, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "photo.png").write_bytes(b"keep")
    config = TrainConfig(data=str(tmp_path / "none"), steps=1, **TINY)  # no data: the folder check must come first
    for overwrite in (False, True):
        with pytest.raises(RunFolderError, match="holds no run.*empty or new folder"):
            train(config, run_dir=tmp_path / "photos", overwrite=overwrite, log=lambda _: None)
    assert (tmp_path / "photos" / "photo.png").read_bytes() == b"keep"
    qat_config = TrainConfig.from_dict({**config.to_dict(), "init_from": str(run_copy), "qat": True})
    write_raw_run_config(tmp_path, raw_run_config(run_copy))  # a run folder holding the run
    for out in (run_copy, tmp_path, run_copy / ".." / "run"):
        with pytest.raises(RunFolderError, match="holds the run .* starts from"):
            train(qat_config, run_dir=out, overwrite=True, log=lambda _: None)
    assert (run_copy / runs.WEIGHTS_FILE).is_file()


def test_unwritable_run_folder_fails_before_loading_anything(tmp_path):
    from mobile_sr.core.errors import OutputError

    with pytest.raises(OutputError, match="cannot be written"):  # /proc takes no new folders
        train(TrainConfig(data=str(tmp_path / "none"), steps=1, **TINY), run_dir="/proc/mobile_sr_run", log=lambda _: None)


def test_resuming_a_finished_run_is_refused_before_loading_anything(run_copy, monkeypatch, caplog):
    from mobile_sr.training import stages

    monkeypatch.setattr(stages, "task_of_model", lambda _: pytest.fail("loaded the run's task"))
    with pytest.raises(RunFolderError, match="whole budget"):
        train(TrainConfig(), run_dir=run_copy, resume=True, log=lambda _: None)
    assert "could not be found" not in caplog.text


def test_resuming_a_qat_run_from_another_float_run_is_refused(run_copy, tmp_path):
    config = TrainConfig.from_dict({**runs.read_run_config(run_copy).train.to_dict(), "steps": 100,
                                    "init_from": str(tmp_path / "other"), "qat": True})
    with pytest.raises(RunFolderError, match="fine-tunes nothing.*not .*other.*--run"):  # run_copy is a float run
        train(config, run_dir=run_copy, resume=True, log=lambda _: None)


@pytest.mark.large
def test_interrupt_at_the_calibrated_start_leaves_a_resumable_run(tiny_sr, tmp_path, monkeypatch):
    from mobile_sr import training
    from mobile_sr.training import plans

    float_run, config = tiny_sr.float_run, tiny_sr.config
    save_weights = plans.save_weights

    def interrupted_once(model, path):
        monkeypatch.setattr(plans, "save_weights", save_weights)
        raise KeyboardInterrupt

    monkeypatch.setattr(plans, "save_weights", interrupted_once)
    qat_config = TrainConfig.from_dict({**config.to_dict(), "steps": 2, "init_from": str(float_run), "qat": True,
                                        "warmup_steps": 0})
    with pytest.raises(training.TrainingInterrupted, match="at step 0"):
        train(qat_config, run_dir=tmp_path / "qat", log=lambda _: None)
    summary = train(qat_config, run_dir=tmp_path / "qat", resume=True, log=lambda _: None)
    assert summary["steps"] == 2 and (tmp_path / "qat" / runs.WEIGHTS_FILE).is_file()


def test_an_interrupt_python_drops_in_a_weakref_callback_still_stops_training(tiny_sr, tmp_path):
    import signal
    import weakref

    from mobile_sr.training import TrainingInterrupted

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as an interactive command has it

    class Probe:
        pass

    def log(line: str) -> None:
        if line.startswith("step"):  # Ctrl-C landing in a weakref callback (as during tf.function tracing)
            probe = Probe()
            reference = weakref.ref(probe, lambda _: signal.raise_signal(signal.SIGINT))
            del probe
            assert reference() is None

    config = tiny_sr.config
    try:
        with pytest.raises(TrainingInterrupted, match="interrupted at step 12;"):
            train(TrainConfig.from_dict({**config.to_dict(), "steps": 24}), run_dir=tmp_path / "run", log=log)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.large
def test_commands_store_absolute_paths_for_local_folders(run_copy, tiny_sr, monkeypatch):
    import shutil

    from click.testing import CliRunner

    from mobile_sr.cli import main
    from mobile_sr.data.locations import stored_dataset_argument

    shutil.copytree(tiny_sr.config.data, run_copy.parent / "reldata")
    monkeypatch.chdir(run_copy.parent)
    assert stored_dataset_argument("reldata") == str(run_copy.parent / "reldata")
    assert [stored_dataset_argument(name) for name in ("default", "set5", None)] == ["default", "set5", None]
    result = CliRunner().invoke(main, ["qat", "--run", "run", "--steps", "1", "--data", "reldata", "--out", "q"])
    assert result.exit_code == 0, result.output
    stored = runs.read_run_config(run_copy.parent / "q").train
    assert (stored.init_from, stored.data) == (str(run_copy), str(run_copy.parent / "reldata"))


@pytest.mark.large
def test_qat_resume_refuses_another_float_run_from_the_command_line(run_copy, tmp_path):
    import shutil

    from click.testing import CliRunner

    from mobile_sr.cli import main

    shutil.copytree(run_copy, tmp_path / "other")
    result = CliRunner().invoke(main, ["qat", "--run", str(run_copy), "--steps", "1", "--out", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["qat", "--run", str(tmp_path / "other"), "--out", str(tmp_path / "q"), "--resume"])
    assert result.exit_code == 1 and f"fine-tunes {run_copy}, not {tmp_path / 'other'}" in result.output


def test_missing_data_of_a_continued_run_says_where_it_came_from(tiny_sr, tmp_path):
    config = tiny_sr.config
    qat = TrainConfig.from_dict({**config.to_dict(), "data": "data-left-behind", "init_from": str(tiny_sr.float_run),
                                 "qat": True, "steps": 2})
    with pytest.raises(DatasetError, match="'data-left-behind' of the run this one continues.*or give qat --data"):
        train(qat, run_dir=tmp_path / "qat", log=lambda _: None)
    assert not (tmp_path / "qat").exists()


@pytest.mark.large
def test_the_train_command_prints_no_tensorflow_warnings(tiny_sr, tmp_path):
    """In a fresh process, as a user runs it: AutoGraph, retracing or checkpoint warnings would
    bury the progress lines."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mobile_sr", "train", "--data", str(tiny_sr.data), "--steps", "3",
                             "--scale", "2", "--channels", "8", "--option", "feature_convs=2", "--batch-size", "2",
                             "--patch-size", "16", "--hf-loss", "0.5", "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stdout + result.stderr and result.stdout.splitlines()[-1].startswith("done: 3 steps")
