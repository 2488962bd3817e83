"""Export of trained runs (QAT int8, post-training int8, float, fp16), .tflite evaluation and
upscaling, and their errors."""

import json
import re
import shutil

import numpy as np
import pytest

from mobile_sr import runs
from mobile_sr.core.errors import DatasetError, OutputError, QuantizationError, RunFolderError, TFLiteError
from mobile_sr.core.images import load_rgb, save_png
from mobile_sr.export import convert, export_run, parse_input_size
from mobile_sr.runs import latest_run
from mobile_sr.tasks import get_task
from mobile_sr.tasks.sr.data import load_sr_pairs
from mobile_sr.tasks.sr.evaluation import evaluate_pairs, keras_upscaler
from mobile_sr.tasks.sr.runner import TFLiteUpscaler
from mobile_sr.training import TrainConfig, train
from tests.helpers import TINY_SR, raw_run_config, textured_image, write_raw_run_config

TINY = {**TINY_SR, "warmup_steps": 0, "validations": 1, "l2_finetune_fraction": 0.0}


def test_qat_int8_export_is_full_integer_and_matches_keras(tiny_sr, tmp_path):
    qat_run = tiny_sr.qat_run
    result = export_run(run_dir=qat_run, mode="int8", input_size=(20, 24), out_path=tmp_path / "m.tflite", log=lambda _: None)
    report = json.loads(result.report_path.read_text())
    assert not result.post_training_quantized and report["quantization"] == "qat"
    assert report["input"]["dtype"] == report["output"]["dtype"] == "uint8"
    assert report["non_integer_tensors"] == [] and report["input"]["shape"] == [1, 20, 24, 3]
    _, pairs = load_sr_pairs(tiny_sr.data, 2, split="val")
    model, _ = runs.load_trained_model(qat_run)
    keras_psnr = evaluate_pairs(keras_upscaler(model), pairs, model="k", dataset="d", scale=2).mean_psnr_y
    tflite_psnr = evaluate_pairs(TFLiteUpscaler(result.path), pairs, model="t", dataset="d", scale=2).mean_psnr_y
    assert abs(keras_psnr - tflite_psnr) < 0.3


def test_float_run_falls_back_to_post_training_quantization(tiny_sr, tmp_path):
    float_run = tiny_sr.float_run
    messages = []
    result = export_run(run_dir=float_run, mode="int8", input_size=(16, 16), io_type="int8",
                        out_path=tmp_path / "ptq.tflite", log=messages.append)
    assert result.post_training_quantized and "post-training" in messages[0]
    assert result.report["input"]["dtype"] == "int8" and result.report["non_integer_tensors"] == []


@pytest.mark.parametrize("mode", ["float", "fp16"])
def test_float_exports(tiny_sr, tmp_path, mode):
    float_run = tiny_sr.float_run
    result = export_run(run_dir=float_run, mode=mode, input_size=None, out_path=tmp_path / f"{mode}.tflite", log=lambda _: None)
    assert result.report["input"]["dtype"] == "float32" and result.report["input"]["shape"] == [1, -1, -1, 3]
    upscaled = TFLiteUpscaler(result.path)(textured_image(10, 14))
    assert upscaled.shape == (20, 28, 3)


def test_tiles_leave_no_seams(tiny_sr, tmp_path):
    qat_run = tiny_sr.qat_run
    path = export_run(run_dir=qat_run, mode="int8", input_size=(20, 24), out_path=tmp_path / "t.tflite",
                      log=lambda _: None).path
    lr = textured_image(53, 61, seed=7)
    whole = TFLiteUpscaler(path)(lr)
    tiled = TFLiteUpscaler(path, tile=True)(lr)
    np.testing.assert_array_equal(tiled, whole)


def test_export_errors(tiny_sr, tmp_path):
    qat_run = tiny_sr.qat_run
    with pytest.raises(RunFolderError, match="no finished run"):
        latest_run(tmp_path)
    with pytest.raises(QuantizationError, match="QAT run: export it with --int8"):
        export_run(run_dir=qat_run, mode="float", out_path=tmp_path / "x.tflite", log=lambda _: None)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / runs.CONFIG_FILE).write_text('{"model": "scsrn"}')
    with pytest.raises(RunFolderError, match="damaged"):
        export_run(run_dir=tmp_path / "broken", mode="int8", log=lambda _: None)
    assert not list(tmp_path.glob("*.tflite"))
    with pytest.raises(ValueError, match="HxW"):
        parse_input_size("360by640")
    assert parse_input_size("dynamic") is None and parse_input_size("360x640") == (360, 640)
    for size in ("36x64", (0, 0), (-3, 64)):
        with pytest.raises(ValueError, match=r"input_size must be \(height, width\)"):
            export_run(run_dir=qat_run, mode="int8", input_size=size, out_path=tmp_path / "x.tflite", log=lambda _: None)


def test_post_training_quantization_says_where_missing_training_data_came_from(tiny_sr, tmp_path):
    float_run = tiny_sr.float_run
    moved = tmp_path / "moved"
    shutil.copytree(float_run, moved)
    config = raw_run_config(moved)
    config["train"]["data"] = "data-left-behind"
    write_raw_run_config(moved, config)
    with pytest.raises(DatasetError, match="calibrates on the run's training data 'data-left-behind'.*fix data in that file"):
        export_run(run_dir=moved, mode="int8", input_size=(16, 16), out_path=tmp_path / "x.tflite", log=lambda _: None)


def test_cli_export_refuses_conflicting_flags_and_a_non_tflite_out(tiny_sr, tmp_path):
    from click.testing import CliRunner

    from mobile_sr.cli import main

    float_run = tiny_sr.float_run
    base = ["export", "--run", str(float_run), "--input-size", "16x16"]
    for flags, message in [(["--int8", "--float"], "exactly one of --int8, --int16x8, --float or --fp16"),
                           (["--float", "--fp16"], "exactly one of --int8, --int16x8, --float or --fp16"),
                           (["--float", "--io-type", "int8"], "--io-type sets an int8 model's input/output type"),
                           (["--float", "--out", str(tmp_path / "m.json")], "must end in .tflite")]:
        result = CliRunner().invoke(main, [*base, *flags])
        assert result.exit_code == 2 and message in result.output, result.output
    # the report, written with .json, would have replaced the model: refused before converting
    with pytest.raises(ValueError, match="must end in .tflite"):
        export_run(run_dir=float_run, mode="float", input_size=(16, 16), out_path=tmp_path / "m.json", log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_input_sizes_the_interpreter_cannot_run(tiny_sr, tmp_path, monkeypatch):
    from mobile_sr import export

    float_run = tiny_sr.float_run
    out = tmp_path / "huge.tflite"
    # the x2 output of 20000x20000 holds 4.8e9 values, beyond LiteRT's 32-bit indexing
    with pytest.raises(QuantizationError, match="input size 20000x20000 is too large.*smaller --input-size"):
        export_run(run_dir=float_run, mode="float", input_size=(20000, 20000), out_path=out, log=lambda _: None)
    # past that check, the interpreter's refusal names the real output and the size, not the staging file
    monkeypatch.setattr(export, "MAX_TENSOR_VALUES", 2**62)
    with pytest.raises(TFLiteError) as raised:
        export_run(run_dir=float_run, mode="float", input_size=(100000, 100000), out_path=out, log=lambda _: None)
    message = str(raised.value)
    assert message.startswith(f"{out}: the LiteRT interpreter cannot run the exported model at input size 100000x100000")
    assert "too large" in message and "partial" not in message and "re-export" not in message
    assert list(tmp_path.iterdir()) == []


def test_latest_run_picks_the_newest(tiny_sr):
    qat_run = tiny_sr.qat_run
    assert latest_run(tiny_sr.float_run.parent) == qat_run


def test_invalid_tflite(tmp_path):
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(TFLiteError, match="not a valid TFLite model"):
        TFLiteUpscaler(tmp_path / "bad.tflite")
    with pytest.raises(TFLiteError, match="no such file"):
        TFLiteUpscaler(tmp_path / "missing.tflite")


def test_cli_export_eval_and_upscale(tiny_sr, tmp_path):
    from click.testing import CliRunner

    from mobile_sr.cli import main

    qat_run = tiny_sr.qat_run
    model = tmp_path / "cli.tflite"
    runner = CliRunner()
    result = runner.invoke(main, ["export", "--run", str(qat_run), "--int8", "--input-size", "16x16", "--out", str(model)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["eval", "--tflite", str(model), "--data", str(tiny_sr.data), "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e.json").read_text())["scale"] == 2
    result = runner.invoke(main, ["upscale", "--tflite", str(model), str(tiny_sr.data / "0.png"), str(tmp_path / "up.png")])
    assert result.exit_code == 0, result.output
    source = load_rgb(tiny_sr.data / "0.png")
    assert load_rgb(tmp_path / "up.png").shape == (2 * source.shape[0], 2 * source.shape[1], 3)
    result = runner.invoke(main, ["upscale", "--tflite", str(model), str(tiny_sr.data), str(tmp_path / "folder")])
    assert result.exit_code == 0 and len(list((tmp_path / "folder").glob("*.png"))) == 3
    result = runner.invoke(main, ["eval", "--tflite", str(tmp_path / "nope.tflite"), "--data", str(tiny_sr.data)])
    assert result.exit_code == 1 and result.output.startswith("Error:") and "Traceback" not in result.output
    result = runner.invoke(main, ["export", "--run", str(qat_run)])
    assert result.exit_code == 2 and "--int8" in result.output


@pytest.mark.large
def test_training_only_structure_is_folded_for_qat_and_export(tmp_path):
    """RT4KSR's reparameterizable blocks: QAT fine-tunes and export converts the folded form."""
    for index in range(3):
        save_png(tmp_path / "data" / f"{index}.png", textured_image(64, 80, seed=index))
    tiny = dict(TINY, model="rt4ksr", model_options={"scale": 2, "channels": 12, "blocks": 1})
    float_run, qat_run = tmp_path / "float", tmp_path / "qat"
    train(TrainConfig(data=str(tmp_path / "data"), steps=3, **tiny), run_dir=float_run, log=lambda _: None)
    float_export = export_run(run_dir=float_run, mode="float", input_size=(16, 16), out_path=tmp_path / "f.tflite",
                              log=lambda _: None)
    model, _ = runs.load_trained_model(float_run)
    lr = textured_image(16, 16, seed=7)
    np.testing.assert_allclose(TFLiteUpscaler(float_export.path).upscale_float(lr),
                               model(lr[None].astype(np.float32)).numpy()[0], atol=1e-2)
    train(TrainConfig(data=str(tmp_path / "data"), steps=2, init_from=str(float_run), qat=True, **tiny),
          run_dir=qat_run, log=lambda _: None)
    assert runs.read_run_config(qat_run).model_config.reparameterized is True
    int8_export = export_run(run_dir=qat_run, mode="int8", input_size=(16, 16), out_path=tmp_path / "q.tflite",
                             log=lambda _: None)
    # folded: head, hf_head, two 3x3 block convs and the tail, no 1x1 expand/reduce convs
    assert int8_export.report["ops"].count("CONV_2D") == 5


def test_export_refuses_to_replace_files_it_did_not_write(tiny_sr, tmp_path):
    float_run = tiny_sr.float_run
    export = dict(run_dir=float_run, mode="float", input_size=(16, 16), log=lambda _: None)
    # --out runs/x/config.tflite would name the run's config.json as the report
    config = tmp_path / "run" / "config.json"
    config.parent.mkdir()
    config.write_text('{"model": "scsrn", "model_config": {}}')
    with pytest.raises(OutputError, match=r"config.json exists and is not a mobile-sr export report"):
        export_run(out_path=tmp_path / "run" / "config.tflite", **export)
    assert config.read_text() == '{"model": "scsrn", "model_config": {}}'
    (tmp_path / "notes.tflite").write_text("my notes")
    with pytest.raises(OutputError, match=r"notes.tflite exists and is not a TFLite model"):
        export_run(out_path=tmp_path / "notes.tflite", **export)
    assert (tmp_path / "notes.tflite").read_text() == "my notes"
    # an earlier export is replaced, model and report together
    first = export_run(out_path=tmp_path / "m.tflite", **export)
    export_run(out_path=tmp_path / "m.tflite", **dict(export, input_size=(20, 20)))
    assert json.loads(first.report_path.read_text())["input"]["shape"] == [1, 20, 20, 3]
    # a report path that cannot be written is refused before the model is touched
    model = (tmp_path / "m.tflite").read_bytes()
    first.report_path.unlink()
    first.report_path.mkdir()
    with pytest.raises(OutputError, match="m.json: is a folder"):
        export_run(out_path=tmp_path / "m.tflite", **export)
    assert (tmp_path / "m.tflite").read_bytes() == model
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["config.json", "m.json", "m.tflite", "notes.tflite", "run"]


def test_interrupted_export_leaves_no_staging_file(tiny_sr, tmp_path, monkeypatch):
    from mobile_sr import export

    float_run = tiny_sr.float_run

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "verify", interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_run(run_dir=float_run, mode="float", input_size=(16, 16), out_path=tmp_path / "m.tflite", log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.large
def test_dynamic_export_of_models_that_downsample(tmp_path):
    """RT4KSR unshuffles by 2, a three-level U-Net by 4: a dynamic-size export must not be loaded at 1x1."""
    from click.testing import CliRunner

    from mobile_sr.cli import main
    from mobile_sr.export import inspect, verify
    from mobile_sr.models import build_model, make_config

    for index in range(3):
        save_png(tmp_path / "data" / f"{index}.png", textured_image(64, 80, seed=index))
    tiny = dict(TINY, model="rt4ksr", model_options={"scale": 2, "channels": 12, "blocks": 1})
    train(TrainConfig(data=str(tmp_path / "data"), steps=1, **tiny), run_dir=tmp_path / "run", log=lambda _: None)
    result = export_run(run_dir=tmp_path / "run", mode="float", input_size=None, out_path=tmp_path / "d.tflite",
                        log=lambda _: None)
    assert result.report["size_multiple"] == 2 and result.report["input"]["shape"] == [1, -1, -1, 3]
    assert TFLiteUpscaler(result.path).scale == 2
    save_png(tmp_path / "odd.png", textured_image(15, 17))
    runner = CliRunner()
    outcome = runner.invoke(main, ["upscale", "--tflite", str(result.path), str(tmp_path / "odd.png"), str(tmp_path / "up.png")])
    assert outcome.exit_code == 0 and load_rgb(tmp_path / "up.png").shape == (30, 34, 3), outcome.output
    outcome = runner.invoke(main, ["eval", "--tflite", str(result.path), "--data", str(tmp_path / "data"), "--quiet"])
    assert outcome.exit_code == 0 and "x2" in outcome.output, outcome.output
    config = make_config("hdr_unet", channels=4, stages=3, convs_per_stage=1, skm_reduction=2)
    path = tmp_path / "hdr.tflite"
    path.write_bytes(convert(build_model("hdr_unet", config), mode="float", input_size=None))
    verify(path, inspect(path), task=get_task("hdr"), mode="float", io_type="uint8", size_multiple=config.size_multiple)


def test_export_says_what_it_converts_and_how_long_it_took(tiny_hdr, tmp_path):
    lines = []
    export_run(run_dir=tiny_hdr.float_run, mode="float", input_size=(32, 32), out_path=tmp_path / "h.tflite",
               log=lines.append)
    # a size the caller chose: no hint about the default
    assert lines[0] == "converting hdr_unet to float at 32x32: this can take minutes on a CPU"
    assert re.fullmatch(r"converted in \d+\.\d s; verifying it in LiteRT", lines[1]), lines[1]
    assert lines[2].startswith(f"wrote {tmp_path / 'h.tflite'} (")


def test_export_at_the_default_size_says_it_is_the_default(tiny_sr, tmp_path):
    from tests.helpers import run_cli

    out = tmp_path / "d.tflite"
    result = run_cli("export", "--run", tiny_sr.float_run, "--float", "--out", out)  # 360x640: takes seconds
    assert result.exit_code == 0, result.output
    assert ("converting float to float at 360x640 (the SR default; --input-size HxW or dynamic chooses another): "
            "this can take minutes on a CPU\n") in result.output
    assert json.loads(out.with_suffix(".json").read_text())["input"]["shape"] == [1, 360, 640, 3]


def test_export_says_when_it_replaced_an_earlier_export(tiny_sr, tmp_path):
    out = tmp_path / "m.tflite"
    first, second = [], []
    export_run(run_dir=tiny_sr.float_run, mode="float", input_size=(16, 16), out_path=out, log=first.append)
    export_run(run_dir=tiny_sr.float_run, mode="float", input_size=(16, 16), out_path=out, log=second.append)
    wrote = [line for line in first + second if line.startswith("wrote ")]
    assert len(wrote) == 2 and "replaced" not in wrote[0]
    assert wrote[1].startswith(f"wrote {out} (") and wrote[1].endswith(f"and m.json; replaced the earlier {out}")
