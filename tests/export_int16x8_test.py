"""16x8 export (int16 activations, int8 weights, float32 I/O): what the graph holds, how close it
comes to float next to int8, the runners and CLI on it, and what it refuses."""

import numpy as np
import pytest

from mobile_sr.core.errors import QuantizationError
from mobile_sr.core.images import load_rgb
from mobile_sr.export import convert, export_run
from mobile_sr.readiness import FILTERED_OPS, read_graph
from mobile_sr.tasks.sr.runner import TFLiteUpscaler
from mobile_sr.tflite import load_interpreter
from tests.helpers import run_cli, textured_image

SIZE = (20, 24)


def export(run_dir, mode, path, **options):
    return export_run(run_dir=run_dir, mode=mode, input_size=SIZE, out_path=path, log=lambda _: None, **options)


def test_int16x8_export_of_a_float_run_is_closer_to_float_than_int8(tiny_sr, tmp_path):
    messages = []
    result = export_run(run_dir=tiny_sr.float_run, mode="int16x8", input_size=SIZE, out_path=tmp_path / "w16.tflite",
                        log=messages.append)
    report = result.report
    assert result.post_training_quantized and report["quantization"] == "post-training"
    assert report["input"]["dtype"] == report["output"]["dtype"] == report["io_type"] == "float32"
    assert any("16x8 by post-training quantization" in message for message in messages)
    convs = [op for op in read_graph(result.path) if op.name in FILTERED_OPS]
    assert convs and all({t.dtype for t in op.activations} == {"int16"} for op in convs)
    assert all(op.inputs[1].dtype == "int8" for op in convs)
    # 16x8 runs on the CPU only: no accelerator delegate takes an int16 conv
    for delegate in ("gpu", "nnapi", "hexagon"):
        refused = {f["op"] for f in report["readiness"]["delegates"][delegate]["cpu_fallbacks"]}
        assert {op.index for op in convs} <= refused

    int8 = export(tiny_sr.float_run, "int8", tmp_path / "w8.tflite").path
    float32 = export(tiny_sr.float_run, "float", tmp_path / "f32.tflite").path
    lr = textured_image(40, 48, seed=3)
    reference = TFLiteUpscaler(float32).upscale_float(lr)
    error16 = np.abs(TFLiteUpscaler(result.path).upscale_float(lr) - reference).mean()
    error8 = np.abs(TFLiteUpscaler(int8).upscale_float(lr) - reference).mean()
    assert error16 < error8, (error16, error8)

    upscaled = run_cli("upscale", "--tflite", result.path, tiny_sr.data / "0.png", tmp_path / "up.png")
    assert upscaled.exit_code == 0, upscaled.output
    source = load_rgb(tiny_sr.data / "0.png")
    assert load_rgb(tmp_path / "up.png").shape == (2 * source.shape[0], 2 * source.shape[1], 3)
    evaluated = run_cli("eval", "--tflite", result.path, "--data", tiny_sr.data, "--json", tmp_path / "e.json")
    assert evaluated.exit_code == 0, evaluated.output


def test_int16x8_runs_an_input_read_by_a_float_only_op_and_a_16x8_one(tmp_path):
    # RT4KSR's input feeds SPACE_TO_DEPTH (no 16x8 kernel) and the high-pass filter: the converter
    # wires both to one int16 QUANTIZE, which LiteRT refuses unless export rewires the float op
    from mobile_sr.models.registry import build_model, deploy_form, make_config

    model, _ = deploy_form("rt4ksr", build_model("rt4ksr", config := make_config("rt4ksr", scale=2, channels=12, blocks=1)),
                           config)
    rng = np.random.default_rng(0)
    frames = [rng.uniform(0, 255, (1, 8, 8, 3)).astype(np.float32) for _ in range(2)]
    path = tmp_path / "rt4ksr.tflite"
    path.write_bytes(convert(model, mode="int16x8", input_size=(8, 8), representative=lambda: iter([f] for f in frames)))
    unshuffles = [op for op in read_graph(path) if op.name == "SPACE_TO_DEPTH"]
    assert unshuffles and all(t.dtype == "float32" for op in unshuffles for t in op.tensors)
    interpreter = load_interpreter(path)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], frames[0])
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert np.abs(output - model(frames[0]).numpy()).max() < 0.5


def test_int16x8_refuses_a_qat_run_and_conflicting_options(tiny_sr, tmp_path):
    with pytest.raises(QuantizationError, match="QAT run.*--int16x8"):
        export(tiny_sr.qat_run, "int16x8", tmp_path / "q.tflite")
    result = run_cli("export", "--run", tiny_sr.float_run, "--int16x8", "--io-type", "uint8", "--out", tmp_path / "m.tflite")
    assert result.exit_code == 2 and "--io-type" in result.output and "float32" in result.output
    result = run_cli("export", "--run", tiny_sr.float_run, "--int8", "--int16x8")
    assert result.exit_code == 2 and "--int16x8" in result.output
