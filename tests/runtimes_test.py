"""The host runtimes behind one interface: OpenVINO runs the same int8 .tflite as LiteRT (SR and
HDR, resized and tiled), in evaluation and side by side in the benchmark; without OpenVINO its
options end in a one-line install hint."""

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mobile_sr.cli import main
from mobile_sr.core.errors import MissingExtraError
from mobile_sr.export import convert
from mobile_sr.models import build_model, get_model_spec, make_config
from mobile_sr.quantization.qat import quantize_for_training
from mobile_sr.runtimes import OPENVINO_INSTALL, RUNTIMES, load_runtime, output_agreement
from tests.helpers import textured_image


@pytest.fixture(scope="session")  # before the module's models: a missing OpenVINO skips without building them
def openvino():
    return pytest.importorskip("openvino", reason=f"OpenVINO is not installed (optional extra: {OPENVINO_INSTALL})")


@pytest.fixture(scope="module")
def sr_int8(tmp_path_factory) -> Path:
    """An untrained int8 SCSRN x2 at 12x16 with uint8 I/O."""
    sr = build_model("scsrn", make_config("scsrn", scale=2, channels=8, feature_convs=2))
    sr_qat = quantize_for_training(sr, np.random.default_rng(0).uniform(0, 255, (2, 12, 16, 3)).astype(np.float32))
    path = tmp_path_factory.mktemp("runtimes") / "sr_int8.tflite"
    path.write_bytes(convert(sr_qat, mode="int8", input_size=(12, 16)))
    return path


def test_openvino_upscales_as_litert_does_whole_and_tiled(sr_int8, openvino):
    from mobile_sr.tasks.sr.runner import TFLiteUpscaler

    lr = textured_image(29, 35)  # another size than the exported 12x16: both runtimes resize
    for tile in (False, True):
        litert, ov = (TFLiteUpscaler(sr_int8, tile=tile, runtime=name)(lr) for name in RUNTIMES)
        assert ov.shape == litert.shape == (58, 70, 3) and ov.dtype == np.uint8
        assert np.abs(ov.astype(int) - litert).max() <= 1


@pytest.mark.large
def test_openvino_merges_as_litert_does(openvino, tmp_path):
    from mobile_sr.tasks.hdr.runner import TFLiteMerger

    rng = np.random.default_rng(0)
    spec = get_model_spec("hdr_unet")
    calibration = [rng.uniform(0, 1, (2, 16, 16, 6)).astype(np.float32) for _ in range(3)]
    qat_model = quantize_for_training(build_model("hdr_unet", make_config("hdr_unet", **spec.tiny_config)), calibration,
                                      value_range=spec.value_range)
    path = tmp_path / "hdr_int8.tflite"
    path.write_bytes(convert(qat_model, mode="int8", input_size=(16, 16)))
    inputs = [rng.uniform(0, 1, (20, 28, 6)) for _ in range(3)]  # resized, and padded to the U-Net's multiple
    litert, ov = (TFLiteMerger(path, size_multiple=4, runtime=name).tonemapped(inputs) for name in RUNTIMES)
    assert ov.shape == litert.shape == (20, 28, 3)
    assert np.abs(ov - litert).max() * 255 <= 1.001  # the output's 1/255 steps


def test_openvino_takes_the_thread_count(sr_int8, openvino):
    runtime = load_runtime(sr_int8, runtime="openvino", threads=1)
    assert runtime._request.get_compiled_model().get_property("INFERENCE_NUM_THREADS") == 1
    with pytest.raises(ValueError, match="threads must be a whole number"):
        load_runtime(sr_int8, runtime="openvino", threads=0)


def test_output_agreement_counts_lsb_and_pixels():
    reference = np.zeros((1, 4, 5, 3), np.uint8)
    other = reference.copy()
    other[0, 0, 0, 2], other[0, 1, 1] = 1, 2
    assert output_agreement(reference, other, lsb=1) == {"max_diff_lsb": 2, "differing_pixels": 0.1}


def test_eval_in_openvino_matches_litert_and_keeps_both_reports(sr_int8, openvino, hr_folder, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(sr_int8.read_bytes())
    reports = {}
    for name in RUNTIMES:
        result = CliRunner().invoke(main, ["eval", "--tflite", str(model), "--data", str(hr_folder), "--quiet",
                                           "--runtime", name])
        assert result.exit_code == 0, result.output
        assert f"m [{name}] on hr x2: PSNR-Y" in result.output
        reports[name] = json.loads((tmp_path / ("m_eval_hr_x2.json" if name == "litert" else
                                                f"m_eval_{name}_hr_x2.json")).read_text())
        assert reports[name]["runtime"] == name
    assert reports["openvino"]["mean_psnr_y"] == pytest.approx(reports["litert"]["mean_psnr_y"], abs=0.01)


def test_bench_times_both_runtimes_side_by_side(sr_int8, openvino, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", str(sr_int8), "--runtime", "both", "--threads", "1",
                                       "--runs", "3", "--warmup", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    litert, ov = json.loads(out.read_text())
    assert (litert["runtime"], litert["delegate"]) == ("litert", "xnnpack") and (ov["runtime"], ov["delegate"]) == ("openvino", "cpu")
    assert ov["threads"] == 1 and ov["runs"] == 3 and ov["input_shape"] == [1, 12, 16, 3] and ov["latency_ms_median"] > 0
    assert ov["runtime_version"] == version("openvino") and litert["runtime_version"] == version("ai-edge-litert")
    assert ov["vs_litert_max_diff_lsb"] <= 1 and 0 <= ov["vs_litert_differing_pixels"] < 0.05
    assert "vs_litert_max_diff_lsb" not in litert
    csv_lines = out.with_suffix(".csv").read_text().splitlines()
    assert "runtime" in csv_lines[0].split(",") and "vs_litert_differing_pixels" in csv_lines[0].split(",")
    row = next(line for line in result.output.splitlines() if line.startswith("| sr_int8.tflite | host |") and "openvino" in line)
    assert "| openvino | cpu | 1 |" in row and "LSB" in row


def test_without_openvino_its_options_say_how_to_install_it(sr_int8, hr_folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(MissingExtraError, match=r'OpenVINO is not installed: .*pip install -e "\.\[openvino\]"'):
        load_runtime(sr_int8, runtime="openvino")
    for command in (["bench", str(sr_int8), "--runtime", "both", "--threads", "1", "--runs", "1"],
                    ["eval", "--tflite", str(sr_int8), "--data", str(hr_folder), "--runtime", "openvino"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.strip().splitlines() == [
            f"Error: OpenVINO is not installed: install the optional extra with '{OPENVINO_INSTALL}' in the mobile-sr "
            "checkout (or 'pip install openvino'), or use --runtime litert"]  # nothing timed or scored first


@pytest.mark.parametrize("command,message", [
    (["bench", "m.tflite", "--android", "--runtime", "openvino"], "--runtime is for the host benchmark only"),
    (["bench", "m.tflite", "--runtime", "openvino", "--xnnpack", "off"], "--xnnpack sets LiteRT's delegate"),
    (["eval", "--run", "runs/x", "--data", "set5", "--runtime", "openvino"], "--runtime chooses what runs a --tflite"),
])
def test_runtime_options_that_do_not_apply_are_refused(command, message):
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2 and message in result.output, result.output
