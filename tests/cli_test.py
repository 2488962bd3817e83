"""The mobile-sr command: help, outputs, and one-line errors (never a traceback) for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from mobile_sr.core.images import save_png
from tests.helpers import run_cli


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["models"]])
def test_help(command):
    result = run_cli(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_models_lists_the_registry():
    result = run_cli("models")
    assert "scsrn" in result.output and "abpn" in result.output


def test_eval_bicubic_writes_json_and_crops(hr_folder, tmp_path):
    out = tmp_path / "report.json"
    result = run_cli("eval", "--model", "bicubic", "--data", hr_folder, "--scale", "2", "--json", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {"model", "dataset", "scale", "mean_psnr_y", "mean_ssim_y", "images"} <= set(report)
    assert report["scale"] == 2 and len(report["images"]) == 4
    assert {"name", "psnr_y", "ssim_y"} <= set(report["images"][0])
    assert list(tmp_path.glob("report_hr_x2_crops.png"))


def test_eval_several_scales_writes_a_list(hr_folder, tmp_path):
    out = tmp_path / "r.json"
    assert run_cli("eval", "--model", "bicubic", "--data", hr_folder, "--scale", "2,4", "--json", out).exit_code == 0
    assert [r["scale"] for r in json.loads(out.read_text())] == [2, 4]


@pytest.mark.parametrize(
    "args,message",
    [
        (["eval", "--model", "bicubic", "--data", "/nonexistent"], "no such folder"),
        (["eval", "--run", "/nonexistent", "--data", "default"], "no such run folder"),
        (["eval", "--model", "bicubic", "--data", "default", "--scale", "5"], "scales must be"),
        (["eval", "--data", "default"], "exactly one of"),
        (["train", "--model", "nope", "--steps", "1"], "unknown model"),
        (["train", "--option", "attention", "--steps", "1"], "is not KEY=VALUE"),
        (["train", "--model", "attention_sr", "--option", "attention=sideways", "--steps", "1"], "attention must be"),
    ],
)
def test_bad_input_gives_one_line_error(args, message):
    result = run_cli(*args)
    assert result.exit_code != 0
    assert message in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:")


def test_corrupt_image_is_reported_by_name(tmp_path):
    save_png(tmp_path / "good.png", np.zeros((30, 30, 3), np.uint8))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = run_cli("eval", "--model", "bicubic", "--data", tmp_path, "--scale", "2")
    assert result.exit_code == 1 and "bad.jpg" in result.output


def test_training_on_images_smaller_than_a_patch(tmp_path):
    for index in range(3):
        save_png(tmp_path / "data" / f"{index}.png", np.zeros((30, 30, 3), np.uint8))
    result = run_cli("train", "--data", tmp_path / "data", "--steps", "2", "--out", tmp_path / "run")
    assert result.exit_code == 1 and "--patch-size" in result.output


def test_console_script_exits_non_zero_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "mobile_sr", "eval", "--model", "bicubic", "--data", "/nonexistent"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")


@pytest.mark.parametrize("command", [
    ["eval", "--model", "bicubic", "--data", "default", "--json", "{bad}/r.json"],
    ["bench", "{tmp}/none.tflite", "--json", "{bad}/b.json"],
    ["export", "--run", "{tmp}/no_run", "--float", "--input-size", "32x32", "--out", "{bad}/m.tflite"],
    ["upscale", "--tflite", "{tmp}/none.tflite", "{tmp}/a.png", "{bad}/up.png"],
    ["upscale", "--tflite", "{tmp}/none.tflite", "{tmp}/a.png", "{bad}/folder"],
    ["merge", "--tflite", "{tmp}/none.tflite", "a.png", "b.png", "c.png", "{bad}/h.hdr", "--exposures", "0,2,4"],
])
def test_unwritable_output_fails_before_any_work(tmp_path, command):
    (tmp_path / "file").write_text("not a folder")
    bad = tmp_path / "file" / "sub"
    result = run_cli(*[part.format(tmp=tmp_path, bad=bad) for part in command])
    assert result.exit_code == 1 and "cannot be written" in result.output, result.output
    assert "PSNR" not in result.output  # nothing was evaluated first
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {bad}")


@pytest.mark.parametrize("stops", ["0,2,inf", "0,2,nan", "0,2,2000"])
def test_merge_refuses_non_finite_stops(tmp_path, stops):
    result = run_cli("merge", "--tflite", tmp_path / "none.tflite", "a.png", "b.png", "c.png", tmp_path / "h.hdr",
                     "--exposures", stops)
    assert result.exit_code == 1 and "must be finite" in result.output
    assert not list(tmp_path.iterdir())


def test_empty_and_tiny_images_are_named(tmp_path):
    save_png(tmp_path / "data" / "good.png", np.zeros((30, 30, 3), np.uint8))
    (tmp_path / "data" / "zero.png").write_bytes(b"")
    result = run_cli("eval", "--model", "bicubic", "--data", tmp_path / "data", "--scale", "2")
    assert result.exit_code == 1 and "zero.png: empty file" in result.output
    (tmp_path / "data" / "zero.png").unlink()
    save_png(tmp_path / "data" / "tiny.png", np.zeros((4, 4, 3), np.uint8))
    result = run_cli("eval", "--model", "bicubic", "--data", tmp_path / "data", "--scale", "2")
    assert result.exit_code == 1 and "tiny.png" in result.output and "at least 16x16" in result.output


@pytest.mark.parametrize("command", [["train", "--seed", "-5"], ["qat", "--run", ".", "--seed", "-1"]])
def test_negative_seed_is_a_usage_error(command):
    result = run_cli(*command)
    assert result.exit_code == 2 and "'--seed'" in result.output


def test_a_file_given_as_run_folder(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"")
    result = run_cli("eval", "--run", tmp_path / "model.tflite", "--data", "default")
    assert result.exit_code == 1 and "is a file, not a run folder" in result.output


def test_failed_training_setup_leaves_no_run_folder(tmp_path):
    for index in range(3):
        save_png(tmp_path / "data" / f"{index}.png", np.zeros((30, 30, 3), np.uint8))
    for _attempt in range(2):  # the second attempt meets no leftover folder either
        result = run_cli("train", "--data", tmp_path / "data", "--steps", "2", "--out", tmp_path / "run")
        assert result.exit_code == 1 and "--patch-size" in result.output
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command,message", [
    (["eval", "--model", "bicubic", "--data", "default", "--json", "{tmp}/m.tflite"], "must end in .json"),
    (["eval", "--tflite", "{tmp}/m.tflite", "--data", "default", "--json", "{tmp}/m.tflite"], "must end in .json"),
    (["eval", "--tflite", "{tmp}/m.tflite", "--data", "default", "--json", "{tmp}/m.json"],
     "writing {tmp}/m.json would replace the export report of {tmp}/m.tflite"),
])
def test_eval_json_never_replaces_the_model_or_its_report(tmp_path, command, message):
    (tmp_path / "m.tflite").write_bytes(b"model")
    (tmp_path / "m.json").write_text('{"size_multiple": 4}')
    result = run_cli(*[part.format(tmp=tmp_path) for part in command])
    assert result.exit_code == 2 and message.format(tmp=tmp_path) in result.output, result.output
    assert (tmp_path / "m.tflite").read_bytes() == b"model" and (tmp_path / "m.json").read_text() == '{"size_multiple": 4}'


@pytest.mark.parametrize("command,message", [
    (["--model", "bicubic", "--tile"], "--tile runs a --tflite model in tiles"),
    (["--run", "{tmp}", "--tile"], "--tile runs a --tflite model in tiles"),
    (["--model", "debevec", "--scale", "2"], "debevec merges HDR exposures; --scale is for SR models only"),
])
def test_eval_refuses_options_it_would_ignore(tmp_path, command, message):
    result = run_cli("eval", "--data", "default", *[part.format(tmp=tmp_path) for part in command])
    assert result.exit_code == 2 and message in result.output, result.output


def test_eval_scores_a_repeated_scale_once(hr_folder, tmp_path):
    out = tmp_path / "r.json"
    result = run_cli("eval", "--model", "bicubic", "--data", hr_folder, "--scale", "2,2", "--json", out)
    assert result.exit_code == 0 and result.output.count("bicubic on hr x2") == 1
    assert json.loads(out.read_text())["scale"] == 2  # one report, not a list of two


def _fake_float_run(folder):
    """A run folder holding only the config (what qat reads before any work)."""
    from mobile_sr import runs
    from mobile_sr.core.files import write_json
    from mobile_sr.training import TrainConfig

    config = TrainConfig(steps=1, model_options={"scale": 2, "channels": 4})
    write_json(folder / runs.CONFIG_FILE, {"model": "scsrn", "model_config": {"scale": 2, "channels": 4},
                                                "train": config.to_dict()})
    return folder


@pytest.mark.parametrize("extra,flags", [(["--clip", "2"], "--clip"), (["--symmetry", "0.5"], "--symmetry"),
                                         (["--clip", "mse", "--symmetry", "0"], "--clip, --symmetry")])
def test_qat_plain_refuses_shaping_options(tmp_path, extra, flags):
    result = run_cli("qat", "--run", _fake_float_run(tmp_path), "--plain", *extra)
    assert result.exit_code == 2 and f"--plain turns weight clipping and the regularizer off; drop {flags} " in result.output


@pytest.mark.parametrize("clip", ["inf", "nan", "-1", "0", "-inf"])
def test_qat_clip_must_be_positive_and_finite(tmp_path, clip):
    result = run_cli("qat", "--run", _fake_float_run(tmp_path), "--clip", clip)
    assert result.exit_code == 2 and "Invalid value for --clip: " in result.output and "positive, finite" in result.output


@pytest.mark.parametrize("command", [["train", "--data", "{tmp}/none"], ["qat", "--run", "{tmp}", "--data", "{tmp}/none"]])
def test_unwritable_run_folder_fails_before_any_work(tmp_path, command):
    _fake_float_run(tmp_path)
    result = run_cli(*[part.format(tmp=tmp_path) for part in command], "--steps", "1", "--out", "/proc/mobile_sr_run")
    assert result.exit_code == 1 and "/proc/mobile_sr_run" in result.output and "cannot be written" in result.output


def test_models_lists_every_model_and_baseline_in_aligned_columns():
    from mobile_sr.models import model_names
    from mobile_sr.tasks import baseline_names, task_of_baseline, task_of_model

    result = run_cli("models")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    first_words = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert first_words == ["model", *model_names(), "baseline", *baseline_names()]
    rows = {line.split()[0]: line for line in lines if not line.startswith(" ")}
    for name in model_names():
        assert rows[name].split()[1] == task_of_model(name).name
    for name in baseline_names():
        assert rows[name].split()[1] == task_of_baseline(name).name
    assert "MATLAB-compatible bicubic" in rows["bicubic"] and "OpenCV's Debevec" in rows["debevec"]
    # every column starts where the header's does, attention_sr (longer than 10 characters) included
    task_column, text_column = lines[0].index("task"), lines[0].index("summary")
    for line in lines:
        if line.startswith(" "):  # a model's defaults, under its summary
            assert line.index("defaults: ") == text_column
        else:
            assert line[task_column - 2 : task_column] == "  " and line[task_column] != " ", line
            assert line[text_column - 2 : text_column] == "  " and line[text_column] != " ", line
    assert len([line for line in lines if line.startswith(" ")]) == len(model_names())
