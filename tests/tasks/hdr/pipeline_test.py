"""End to end for HDR models: tiny float training on synthetic exposures -> QAT -> int8 export ->
LiteRT interpreter -> evaluation and merge through the CLI."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from mobile_sr.cli import main
from mobile_sr.core.errors import QuantizationError
from mobile_sr.core.images import save_png
from mobile_sr.export import export_run
from mobile_sr.runs import load_trained_model
from mobile_sr.training import TrainConfig, train


def test_float_run(tiny_hdr):
    run_dir, summary = tiny_hdr.float_run, tiny_hdr.summary
    assert tiny_hdr.config.learning_rate == 5e-4  # the HDR task's default
    assert summary["steps"] == 6 and "scale" not in summary
    assert np.isfinite(summary["val_psnr_mu"]) and np.isfinite(summary["val_debevec_psnr_mu"])
    model, _ = load_trained_model(run_dir)
    assert model([np.zeros((1, 8, 8, 6), np.float32)] * 3).shape == (1, 8, 8, 3)


@pytest.mark.large
def test_qat_export_and_merge(tiny_hdr, tmp_path):
    run_dir, photos = tiny_hdr.float_run, tiny_hdr.data
    qat_config = TrainConfig.for_model("hdr_unet", data=str(photos), steps=3, batch_size=2, patch_size=32,
                                       warmup_steps=0, validations=1, init_from=str(run_dir), qat=True,
                                       clip_threshold="mse", symmetry_strength=0.01)
    train(qat_config, run_dir=tmp_path / "qat", log=lambda _: None)
    result = export_run(run_dir=tmp_path / "qat", mode="int8", input_size=(32, 48), out_path=tmp_path / "hdr.tflite",
                        log=lambda _: None)
    assert not result.post_training_quantized and not result.report["non_integer_tensors"]
    assert result.report["size_multiple"] == 2

    exposures = []
    for index, value in enumerate((40, 110, 220)):
        exposures.append(tmp_path / f"exposure{index}.png")
        save_png(exposures[-1], np.full((30, 44, 3), value, np.uint8))  # not a multiple of 2: padded
    outcome = CliRunner().invoke(main, ["merge", "--tflite", str(result.path), *map(str, exposures),
                                        str(tmp_path / "out.hdr"), "--exposures", "0,2,4"])
    assert outcome.exit_code == 0, outcome.output
    from mobile_sr.tasks.hdr.radiance import read_radiance

    merged = read_radiance(tmp_path / "out.hdr")
    assert merged.shape == (30, 44, 3) and (tmp_path / "out.png").is_file()

    outcome = CliRunner().invoke(main, ["eval", "--tflite", str(result.path), "--data", str(photos), "--quiet",
                                        "--json", str(tmp_path / "eval.json")])
    assert outcome.exit_code == 0, outcome.output
    reports = json.loads((tmp_path / "eval.json").read_text())
    assert [r["model"] for r in reports] == ["hdr", "debevec", "robertson", "reference exposure"]
    outcome = CliRunner().invoke(main, ["eval", "--tflite", str(result.path), "--data", str(photos), "--tile"])
    assert outcome.exit_code == 2 and "merges HDR exposures; --tile is for SR models only" in outcome.output


@pytest.mark.large
def test_post_training_int8_export(tiny_hdr, tmp_path):
    run_dir = tiny_hdr.float_run
    result = export_run(run_dir=run_dir, mode="int8", input_size=(32, 32), out_path=tmp_path / "ptq.tflite",
                        log=lambda _: None)
    assert result.post_training_quantized and not result.report["non_integer_tensors"]
    assert result.report["xnnpack"] == "accepted" or result.report["xnnpack"].startswith("refused: ")
    from mobile_sr.benchmark.host import benchmark_host

    # the builtin kernels: a tiny random-ish model may have ranges XNNPACK refuses (reported above)
    (timing,) = benchmark_host([result.path], threads=[1], xnnpack=(False,), runs=3, warmup=1, cross_check=False,
                               log=lambda _: None)
    assert timing["input_shape"] == [1, 32, 32, 6] and timing["macs"] > 0 and timing["latency_ms_median"] > 0
    with pytest.raises(QuantizationError, match="multiple of 2"):
        export_run(run_dir=run_dir, mode="float", input_size=(33, 32), out_path=tmp_path / "odd.tflite", log=lambda _: None)


def test_merge_errors(tmp_path):
    runner = CliRunner()
    outcome = runner.invoke(main, ["merge", "--tflite", str(tmp_path / "none.tflite"), "a.png", "b.png", "c.png",
                                   str(tmp_path / "out.hdr"), "--exposures", "0,x,4"])
    assert outcome.exit_code == 2 and "EV stops" in outcome.output
    outcome = runner.invoke(main, ["merge", "--tflite", str(tmp_path / "none.tflite"), "a.png", "b.png", "c.png",
                                   str(tmp_path / "out.png"), "--exposures", "0,2,4"])
    assert outcome.exit_code == 1 and "Error: " in outcome.output and ".hdr or .exr" in outcome.output


def _merge(tmp_path, *args):
    outcome = CliRunner().invoke(main, ["merge", "--tflite", str(tmp_path / "none.tflite"), *map(str, args)])
    assert "Traceback" not in outcome.output
    return outcome


def test_merge_never_writes_over_an_input(tmp_path):
    exposures = [tmp_path / f"e{index}.png" for index in range(3)]
    for index, path in enumerate(exposures):
        save_png(path, np.full((8, 8, 3), 60 * index, np.uint8))
    before = [path.read_bytes() for path in exposures]
    # the tonemapped preview goes to e0.png, the short exposure
    outcome = _merge(tmp_path, *exposures, tmp_path / "e0.exr", "--exposures", "0,2,4")
    assert outcome.exit_code == 1 and "e0.png is one of the inputs" in outcome.output and "--no-preview" in outcome.output
    outcome = _merge(tmp_path, *exposures, tmp_path / "none.hdr", "--tflite", tmp_path / "none.hdr", "--exposures", "0,2,4")
    assert outcome.exit_code == 1 and "none.hdr is one of the inputs" in outcome.output
    assert [path.read_bytes() for path in exposures] == before and not list(tmp_path.glob("*.exr"))


def test_merge_checks_the_preview_path_before_any_work(tmp_path):
    (tmp_path / "p.png").mkdir()
    outcome = _merge(tmp_path, "a.png", "b.png", "c.png", tmp_path / "p.hdr", "--exposures", "0,2,4")
    assert outcome.exit_code == 1 and "p.png: is a folder" in outcome.output and not (tmp_path / "p.hdr").exists()


@pytest.mark.parametrize("exposures,stops,code,message", [
    (["a.png", "b.png", "c.png"], "0,0,0", 1, "two exposures of the bracket are equally long"),
    (["a.png", "b.png", "c.png"], "0,2,2", 1, "two exposures of the bracket are equally long"),
    (["a.png", "a.png", "./a.png"], "0,2,4", 1, "the same file more than once"),
    (["a.png", "b.png", "c.png"], "0,2", 2, "gives 2 EV stops"),
])
def test_merge_refuses_repeated_stops_and_exposures(tmp_path, monkeypatch, exposures, stops, code, message):
    monkeypatch.chdir(tmp_path)
    outcome = _merge(tmp_path, *exposures, tmp_path / "out.hdr", "--exposures", stops)
    assert outcome.exit_code == code and message in outcome.output


def test_eval_of_an_hdr_run_checks_its_options_and_default_report_first(tiny_hdr, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_hdr.float_run, run_dir)
    outcome = CliRunner().invoke(main, ["eval", "--run", str(run_dir), "--data", "default", "--scale", "2"])
    assert outcome.exit_code == 2 and "merges HDR exposures; --scale is for SR models only" in outcome.output
    (run_dir / "model.weights.h5").unlink()
    (run_dir / "eval").write_text("not a folder")  # where the default report goes
    outcome = CliRunner().invoke(main, ["eval", "--run", str(run_dir), "--data", "default"])
    assert f"note: {run_dir} has no final model.weights.h5 (an unfinished run); evaluating its checkpoint of step 6" in outcome.output
    assert outcome.exit_code == 1 and "--json chooses another place" in outcome.output
    assert "PSNR" not in outcome.output  # refused before evaluating
