"""Registry-wide task tests: every registered task keeps the contract, and the run folder, not a
guess, says which task a run is. A new task is tested here without writing a test."""

import json

import numpy as np
import pytest

from mobile_sr import runs
from mobile_sr.core.errors import ConfigError, RunFolderError, TFLiteError
from mobile_sr.export import convert
from mobile_sr.models import build_model, get_model_spec, make_config, model_names
from mobile_sr.runs import TrainConfig
from mobile_sr.tasks import TASKS, baseline_names, get_task, task_of_baseline, task_of_graph, task_of_model
from mobile_sr.training import train
from tests.helpers import raw_run_config, write_raw_run_config


@pytest.fixture(params=list(TASKS))
def task(request):
    return TASKS[request.param]


def test_every_model_has_its_tasks_inputs_and_value_range(task):
    names = model_names(task=task.name)
    assert names, f"no model is registered for task {task.name}"
    for name in names:
        model = build_model(name, make_config(name, **get_model_spec(name).tiny_config))
        assert [(tensor.name.split(":")[0], int(tensor.shape[-1])) for tensor in model.inputs] == [
            (model_input.name, model_input.channels) for model_input in task.inputs]
        assert get_model_spec(name).value_range == task.value_range and task_of_model(name) is task


def test_split_inputs_gives_one_array_per_model_input(task):
    channels = [model_input.channels for model_input in task.inputs]
    batch = np.arange(2 * 3 * 4 * sum(channels), dtype=np.float64).reshape(2, 3, 4, sum(channels))
    inputs = task.split_inputs(batch)
    parts = inputs if isinstance(inputs, list) else [inputs]
    assert [part.shape[-1] for part in parts] == channels and all(part.dtype == np.float32 for part in parts)
    np.testing.assert_array_equal(np.concatenate(parts, axis=-1), batch.astype(np.float32))


def test_an_export_is_recognised_as_its_tasks(task, tmp_path):
    name = model_names(task=task.name)[0]
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(convert(build_model(name, make_config(name, **get_model_spec(name).tiny_config)), mode="float",
                             input_size=(8, 8)))
    assert task_of_graph(path) is task


def test_a_graph_of_no_task_is_named_with_what_was_expected(tmp_path):
    from mobile_sr.core.backend import keras

    image = keras.Input((None, None, 4))
    path = tmp_path / "rgba.tflite"
    path.write_bytes(convert(keras.Model(image, keras.layers.Conv2D(4, 1)(image)), mode="float", input_size=(8, 8)))
    with pytest.raises(TFLiteError, match=r"1x8x8x4 are those of no mobile-sr task; expected one 1xHxWx3 .* or three"):
        task_of_graph(path)


def test_baselines_belong_to_one_task_each_and_drive_the_eval_choices():
    from mobile_sr.cli import main

    names = baseline_names()
    assert len(names) == len(set(names)) and {"bicubic", "debevec", "robertson"} <= set(names)
    assert all(name in task_of_baseline(name).baselines for name in names)
    with pytest.raises(ConfigError, match="unknown baseline 'lanczos'"):
        task_of_baseline("lanczos")
    eval_choices = next(p for p in main.commands["eval"].params if p.name == "model_name").type.choices
    assert list(eval_choices) == names


def test_task_defaults_are_training_settings(task):
    TrainConfig(**task.train_defaults)
    with pytest.raises(ConfigError, match="unknown task 'video'"):
        get_task("video")


def test_the_run_folder_records_its_task(tiny_sr, tiny_hdr):
    assert raw_run_config(tiny_sr.float_run)["task"] == "sr" and raw_run_config(tiny_hdr.float_run)["task"] == "hdr"
    assert runs.read_run_config(tiny_hdr.float_run).task is get_task("hdr")


def test_a_run_whose_task_is_not_its_models_is_refused(run_copy):
    config = raw_run_config(run_copy)
    write_raw_run_config(run_copy, {**config, "task": "hdr"})
    with pytest.raises(RunFolderError, match="its task 'hdr' is not that of scsrn, 'sr'.*retrain or restore"):
        runs.read_run_config(run_copy)


def test_a_run_written_before_runs_recorded_their_task_reads_as_today(run_copy):
    """Run folders of earlier versions: no task, the scale and the loss flags in the training settings."""
    config = raw_run_config(run_copy)
    settings = {key: value for key, value in config["train"].items() if key != "objectives"}
    settings["model_options"] = {key: value for key, value in settings["model_options"].items() if key != "scale"}
    legacy = {"model": config["model"], "model_config": config["model_config"],
              "train": {**settings, "scale": 2, "high_frequency_weight": 0.5, "structure_texture": False}}
    write_raw_run_config(run_copy, legacy)
    stored = runs.read_run_config(run_copy)
    assert stored.task.name == "sr" and stored.train.model_options["scale"] == 2
    assert stored.train.objectives == {"pixel": 1.0, "high_frequency": 0.5}
    steps = stored.train.steps + 1
    summary = train(TrainConfig(steps=steps), run_dir=run_copy, resume=True, log=lambda _: None)
    resumed = json.loads((run_copy / runs.CONFIG_FILE).read_text())
    assert summary["steps"] == steps and resumed["task"] == "sr"
    assert resumed["train"]["objectives"] == {"pixel": 1.0, "high_frequency": 0.5}
