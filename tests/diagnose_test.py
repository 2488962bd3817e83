"""The per-layer quantization report of a float run (``mobile-sr diagnose``)."""

import json

import pytest
from PIL import Image

from mobile_sr.core.errors import QuantizationError
from mobile_sr.diagnose import diagnose_run, format_rounding, plot_report
from tests.helpers import run_cli


@pytest.mark.large
def test_the_report_finds_the_nearest_rounding_loss_in_the_output_conv(tiny_sr, tmp_path):
    # SCSRN's output conv starts from identity LR-skip weights (about 1) beside small feature
    # weights: its channel steps are coarse for the features, and nearest rounding loses there
    messages = []
    report = diagnose_run(run_dir=tiny_sr.float_run, data=str(tiny_sr.data), json_path=tmp_path / "r.json",
                          log=messages.append)
    assert json.loads((tmp_path / "r.json").read_text()) == report and (tmp_path / "r.png").is_file()
    aware, nearest = ({layer["name"]: layer for layer in rounding["layers"]} for rounding in report["roundings"])
    assert list(aware) == ["lr", "feature_conv1", "feature_conv2", "output_conv", "clip"]
    assert aware["lr"]["snr_db"] is None and aware["lr"]["rmse"] == aware["lr"]["cost_db"] == 0  # uint8 pixels: exact
    for layer in ("output_conv", "clip"):  # the pixels' grid: one step is one pixel level
        assert nearest[layer]["rmse_steps"] == pytest.approx(nearest[layer]["rmse"])
    nearest_loss = report["roundings"][1]["cost_db"]
    assert nearest_loss > 0.1 and nearest["output_conv"]["cost_db"] > 0.8 * nearest_loss
    assert aware["output_conv"]["cost_db"] < 0.2 * nearest["output_conv"]["cost_db"]
    assert nearest["output_conv"]["snr_db"] < aware["output_conv"]["snr_db"]
    assert any("nearest rounding" in message and "output_conv" in message for message in messages)


def test_a_qat_run_is_refused_with_its_float_run_named(tiny_sr):
    with pytest.raises(QuantizationError, match=f"give its float run \\({tiny_sr.float_run}"):
        diagnose_run(run_dir=tiny_sr.qat_run, data=str(tiny_sr.data), log=lambda _: None)


@pytest.mark.parametrize("json_name,message", [("r.txt", "must end in .json"), ("config.json", "would replace the run's config.json")])
def test_the_report_never_replaces_the_run(run_copy, json_name, message):
    before = (run_copy / "config.json").read_text()
    result = run_cli("diagnose", "--run", run_copy, "--json", run_copy / json_name)
    assert result.exit_code == 2 and message in result.output, result.output
    assert (run_copy / "config.json").read_text() == before


def test_table_and_plot_mark_exact_layers(tmp_path):
    layers = [{"name": "lr", "kind": "input", "rmse": 0.0, "rmse_steps": 0.0, "snr_db": None, "cost_db": 0.0},
              {"name": "output_conv", "kind": "Conv2D", "rmse": 1.5, "rmse_steps": 1.5, "snr_db": 37.1, "cost_db": 0.17}]
    report = {"run": "runs/scsrn-x3", "model": "scsrn", "dataset": "Set5", "metric_label": "PSNR-Y", "float": 32.4,
              "roundings": [{"rounding": rounding, "quantized": 32.2, "cost_db": 0.2, "layers": layers}
                            for rounding in ("data_aware", "nearest")]}
    table = format_rounding(report, report["roundings"][1]).splitlines()
    assert table[0].startswith("nearest rounding: PSNR-Y 32.200 dB") and "exact" in table[2] and "37.1" in table[3]
    plot_report(report, tmp_path / "r.png")
    assert Image.open(tmp_path / "r.png").info["Title"] == "scsrn (scsrn-x3): int8 quantization per layer"
