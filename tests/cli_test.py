"""The mobile-sr command: help, outputs, and one-line errors (never a traceback) for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mobile_sr.cli import main
from mobile_sr.images import save_png


def run_cli(*args):
    result = CliRunner().invoke(main, list(map(str, args)))
    assert "Traceback" not in result.output
    return result


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
