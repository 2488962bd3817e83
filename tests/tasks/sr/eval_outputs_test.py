"""What SR evaluation writes and prints: a report per dataset and scale by default (runs and
.tflite models alike), bicubic's per-image figures next to a model's, and crop panels titled with
their own PSNR."""

import json

import numpy as np
import pytest

from mobile_sr.export import export_run
from mobile_sr.metrics import psnr_y
from mobile_sr.tasks.base import file_name_part
from mobile_sr.tasks.sr import evaluation
from mobile_sr.tasks.sr.data import load_sr_pairs
from mobile_sr.tasks.sr.resize import bicubic_upscale
from tests.helpers import run_cli


def nearest_upscaler(lr: np.ndarray) -> np.ndarray:
    """A x2 upscaler that is not bicubic, so the two score differently."""
    return lr.repeat(2, axis=0).repeat(2, axis=1)


def test_eval_of_a_run_keeps_a_report_per_dataset(run_copy, tiny_sr, hr_folder):
    for data in (tiny_sr.data, hr_folder):
        result = run_cli("eval", "--run", run_copy, "--data", data, "--quiet")
        assert result.exit_code == 0, result.output
    report_dir = run_copy / "eval"
    assert sorted(p.name for p in report_dir.iterdir()) == ["data_x2.json", "data_x2_crops.png",
                                                            "hr_x2.json", "hr_x2_crops.png"]
    assert json.loads((report_dir / "data_x2.json").read_text())["dataset"] == "data"
    assert json.loads((report_dir / "hr_x2.json").read_text())["dataset"] == "hr"
    assert f"wrote {report_dir / 'hr_x2.json'} and hr_x2_crops.png" in result.output


def test_eval_of_a_tflite_writes_its_report_next_to_it(tiny_sr, tmp_path):
    model = export_run(run_dir=tiny_sr.float_run, mode="float", input_size=None, out_path=tmp_path / "m.tflite",
                       log=lambda _: None).path
    export_report = (tmp_path / "m.json").read_text()
    result = run_cli("eval", "--tflite", model, "--data", tiny_sr.data, "--quiet")
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'm_eval_data_x2.json'} and m_eval_data_x2_crops.png" in result.output
    assert json.loads((tmp_path / "m_eval_data_x2.json").read_text())["model"] == "m"
    assert (tmp_path / "m_eval_data_x2_crops.png").is_file()
    assert (tmp_path / "m.json").read_text() == export_report  # the export report is not replaced


def test_default_report_folder_that_cannot_be_written_is_refused_before_scoring(run_copy, tiny_sr):
    (run_copy / "eval").write_text("not a folder")
    result = run_cli("eval", "--run", run_copy, "--data", tiny_sr.data)
    assert result.exit_code == 1 and "--json chooses another place" in result.output
    assert "PSNR" not in result.output


@pytest.mark.parametrize(("dataset", "part"), [("Set5", "Set5"), ("DIV2K-val", "DIV2K-val"), ("my photos/2024", "my_photos_2024"),
                                              ("..", "data"), (".hidden", "hidden"), ("", "data")])
def test_dataset_names_become_safe_file_names(dataset, part):
    assert file_name_part(dataset) == part


def test_a_model_is_reported_next_to_bicubic_per_image(hr_folder):
    _, pairs = load_sr_pairs(hr_folder, 2, split="val")
    report = evaluation.evaluate_pairs(nearest_upscaler, pairs, model="nearest", dataset="hr", scale=2,
                                       compare_bicubic=True)
    first = report.images[0]
    bicubic = bicubic_upscale(pairs[0].lr, 2)
    assert first.bicubic_psnr_y == pytest.approx(psnr_y(bicubic, pairs[0].hr, 2))
    assert first.bicubic_psnr_y != pytest.approx(first.psnr_y)
    data = report.to_dict()
    assert data["mean_bicubic_psnr_y"] == round(report.mean_bicubic_psnr_y, 4)
    assert {"psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y"} <= set(data["images"][0])
    lines = evaluation.format_report(report).splitlines()
    assert "nearest" in lines[0] and "bicubic" in lines[0]  # the table's header
    assert f"{first.bicubic_psnr_y:7.3f} dB" in lines[1] and f"{first.psnr_y - first.bicubic_psnr_y:+.3f} dB" in lines[1]
    assert f"bicubic {report.mean_bicubic_psnr_y:.3f} dB" in lines[-1]
    # bicubic on its own has no second set of the same figures
    alone = evaluation.evaluate_pairs(evaluation.bicubic_upscaler(2), pairs, model="bicubic", dataset="hr", scale=2)
    assert "bicubic_psnr_y" not in alone.to_dict()["images"][0] and "mean_bicubic_psnr_y" not in alone.to_dict()


def test_each_crop_panel_shows_its_own_psnr(hr_folder, tmp_path, monkeypatch):
    _, pairs = load_sr_pairs(hr_folder, 2, split="val")
    report = evaluation.evaluate_pairs(nearest_upscaler, pairs, model="nearest", dataset="hr", scale=2,
                                       compare_bicubic=True)
    figures = []
    monkeypatch.setattr(evaluation, "save_crop_comparison", lambda rows, path: figures.append(rows))
    evaluation.write_crops(report, nearest_upscaler, pairs, tmp_path / "crops.png")
    worst = min(report.images, key=lambda image: image.psnr_y)
    title, panels = figures[0][0]
    assert title == f"worst: {worst.name}"
    assert list(panels) == [f"bicubic {worst.bicubic_psnr_y:.2f} dB", f"nearest {worst.psnr_y:.2f} dB", "HR"]


def test_eval_says_a_qat_run_is_qat(tiny_sr, tmp_path):
    result = run_cli("eval", "--run", tiny_sr.qat_run, "--data", tiny_sr.data, "--quiet", "--json", tmp_path / "q.json")
    assert result.exit_code == 0, result.output
    assert "scsrn QAT on data x2: PSNR-Y" in result.output
    assert json.loads((tmp_path / "q.json").read_text())["model"] == "scsrn QAT"
    result = run_cli("eval", "--run", tiny_sr.float_run, "--data", tiny_sr.data, "--quiet", "--json", tmp_path / "f.json")
    assert result.output.startswith("scsrn on data x2: PSNR-Y")
