"""Per-layer quantization report of a float run (``mobile-sr diagnose``): where its int8 model loses.

For each rounding of the conv kernels (data-aware, which ``export --int8`` and ``qat`` start from,
and nearest, as the converter and plain tfmot QAT round), the run is quantized as post-training
quantization does it (export's calibration batch: concat ranges equalized, kernels rounded,
activation ranges calibrated), and each quantized layer gets:

* the error of its int8 activations against the float model's on the calibration patches: RMSE
  (also in int8 steps of the layer's output) and SNR. The int8 activations are LiteRT's: the
  quantized model, every quantized layer's output made a graph output, converted as export
  converts it. The errors add up along the graph: a layer's SNR includes what its inputs lost;
* its cost on its own: how far the task's metric (SR: PSNR-Y) on the evaluation data falls below
  the float model's when only that layer is quantized (fake-quantized as QAT simulates it: its
  kernel and its output; the model inputs' quantizers count as layers of their own).

TFLite's QuantizationDebugger measures per-layer errors only for the converter's own
post-training quantization (a calibrate-only conversion instrumented with NumericVerify ops); it
finds no such ops in a fake-quantized graph, which is what mobile-sr converts, and the converter's
calibration makes another graph (calibrated input and output ranges, a requantized concatenation,
a separate output clip). So the float/int8 comparison is made here, on the graph export writes.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mobile_sr import runs
from mobile_sr.core.errors import DatasetError, QuantizationError
from mobile_sr.core.files import check_output_path, write_all_or_none, write_json
from mobile_sr.core.plots import pyplot, save_figure
from mobile_sr.runs import QAT_ROUNDINGS, RunConfig
from mobile_sr.tasks.base import file_name_part

REPORT_DIR = "diagnose"  # a run's reports, without a JSON path


def _snr_db(signal: float, noise: float) -> float | None:
    """10 log10(signal / noise); None where the quantized values are exact (no noise)."""
    if noise == 0:
        return None
    return 10 * math.log10(max(signal, np.finfo(np.float64).tiny) / noise)  # an all-zero float output: very low


def _activation_errors(float_model, qat_model, layers, batch, *, threads: int | None) -> list[dict]:
    """RMSE, RMSE in output steps and SNR of each of ``layers`` (every call together) between the
    int8 model in LiteRT and ``float_model`` in Keras, over the samples of ``batch``."""
    from mobile_sr.core.backend import keras
    from mobile_sr.export import convert
    from mobile_sr.quantization.probing import chunked_values
    from mobile_sr.tflite import dequantize, load_interpreter, quantize

    quantized_tensors = [tensor for layer in layers for tensor in layer.quantized_outputs()]
    float_tensors = [tensor for layer in layers for tensor in layer.float_outputs(float_model)]
    owners = [index for index, layer in enumerate(layers) for _ in range(layer.calls)]
    arrays = batch if isinstance(batch, list) else [batch]
    probe = keras.Model(qat_model.inputs, quantized_tensors)
    # int8 I/O: with uint8 outputs the converter retypes the inner tensors made outputs, which
    # their int8 consumers then refuse
    content = convert(probe, mode="int8", input_size=arrays[0].shape[1:3], io_type="int8")
    outputs = [f"output_{index}" for index in range(len(quantized_tensors))]  # the signature's names, in probe order
    signal, noise, count = (np.zeros(len(layers)) for _ in range(3))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.tflite"
        path.write_bytes(content)
        runner = load_interpreter(path, threads=threads).get_signature_runner()
        input_details, output_details = runner.get_input_details(), runner.get_output_details()
        sample = 0
        for float_values in chunked_values(float_model, float_tensors, batch):
            for row in range(len(float_values[0])):
                int8_values = runner(**{name: quantize(array[sample], input_details[name])[None]
                                        for name, array in zip(qat_model.input_names, arrays, strict=True)})
                for owner, output, expected in zip(owners, outputs, float_values, strict=True):
                    reference = np.asarray(expected[row], np.float64)
                    error = dequantize(int8_values[output][0], output_details[output]) - reference
                    signal[owner] += float(np.sum(reference**2))
                    noise[owner] += float(np.sum(error**2))
                    count[owner] += error.size
                sample += 1
    errors = []
    for index in range(len(layers)):
        rmse = math.sqrt(noise[index] / count[index])
        step = float(output_details[outputs[owners.index(index)]]["quantization"][0])  # every call shares one
        errors.append({"rmse": rmse, "rmse_steps": rmse / step, "snr_db": _snr_db(signal[index], noise[index])})
    return errors


def _evaluation_data(run_config: RunConfig, data: str | None) -> tuple[str, list]:
    """``(name, items)`` of ``data``'s validation split, or of the run's validation data."""
    train, task = run_config.train, run_config.task
    if data is None:
        try:
            loaded = task.load_data(train.data, train.val_data, seed=train.seed, model_config=run_config.model_config)
        except DatasetError as exc:
            raise DatasetError(f"{exc} (without --data, diagnose scores on the run's validation data, from its "
                               f"{runs.CONFIG_FILE}; give --data, or: {runs.RELATIVE_DATA_HINT})") from None
        return loaded.val_name, loaded.val
    return task.load_split(data, "val", seed=train.seed, model_config=run_config.model_config)


def diagnose_run(*, run_dir: Path, data: str | None = None, roundings: tuple[str, ...] = QAT_ROUNDINGS,
                 json_path: Path | None = None, threads: int | None = None,
                 log: Callable[[str], None] = print) -> dict:
    """The per-layer report of the float run in ``run_dir`` (see the module docstring) under each
    of ``roundings`` ("data_aware", "nearest"), its cost scored on ``data`` (default: the run's
    validation data). Prints a table per rounding through ``log`` and writes the report as JSON to
    ``json_path`` (default ``RUN_DIR/diagnose/<dataset>.json``) with a PNG of the per-layer SNR
    and cost next to it. Returns the report."""
    from mobile_sr.export import calibration_batch
    from mobile_sr.quantization.diagnosis import quantized_layers, with_only
    from mobile_sr.quantization.qat import equalize_concat_ranges, quantize_for_training

    unknown = [rounding for rounding in roundings if rounding not in QAT_ROUNDINGS]
    if unknown or not roundings:
        raise ValueError(f"roundings must be some of {QAT_ROUNDINGS}, got {roundings!r}")
    run_dir = Path(run_dir)
    runs.check_unlocked(run_dir, action="diagnose it")
    run_config = runs.read_run_config(run_dir)
    if run_config.is_qat:
        raise QuantizationError(f"{run_dir} is a QAT run; diagnose quantizes a float run itself, under each rounding: "
                                f"give its float run ({run_config.train.init_from})")
    task = run_config.task
    dataset, items = _evaluation_data(run_config, data)
    json_path = Path(json_path) if json_path else run_dir / REPORT_DIR / f"{file_name_part(dataset)}.json"
    for path in (json_path, json_path.with_suffix(".png")):
        check_output_path(path)
    model, _ = runs.load_trained_model(run_dir)
    model = runs.deployed_model(model, run_config)
    calibration = calibration_batch(run_config)
    samples = len(calibration[0] if isinstance(calibration, list) else calibration)
    log(f"quantizing {run_dir.name} as post-training quantization does, calibrated on {samples} patches of "
        f"{run_config.train.data}; costs on {dataset} ({len(items)} items)")

    def score(keras_model) -> float:
        validate = task.validator(keras_model, run_config.model_config, items, name=run_config.model, val_name=dataset)
        return validate()[0]

    # equalizing the concatenated features preserves the function: the float model the int8 one approximates
    reference = equalize_concat_ranges(model, calibration, task.value_range)
    float_score = score(reference)
    report = {"run": str(run_dir), "task": task.name, "model": run_config.model, "dataset": dataset,
              "metric": task.metric, "metric_label": task.metric_label, "calibration_patches": samples,
              "float": round(float_score, 4), "roundings": []}
    for rounding in roundings:
        quantized = quantize_for_training(model, calibration, value_range=task.value_range,
                                          data_aware_rounding=rounding == "data_aware")
        layers = quantized_layers(quantized)  # before with_only shares their quantizers
        log(f"{rounding.replace('_', '-')} rounding: int8 activations in LiteRT, then each of {len(layers)} layers "
            "quantized alone")
        errors = _activation_errors(reference, quantized, layers, calibration, threads=threads)
        whole = score(quantized)
        entries = []
        for layer, error in zip(layers, errors, strict=True):
            cost = float_score - score(with_only(reference, layer))
            entries.append({"name": layer.name, "kind": layer.kind, **error, "cost_db": round(cost, 5)})
        report["roundings"].append({"rounding": rounding, "quantized": round(whole, 4),
                                    "cost_db": round(float_score - whole, 5), "layers": entries})
        log(format_rounding(report, report["roundings"][-1]))
    png_path = json_path.with_suffix(".png")

    def write(staged: dict[Path, Path]) -> None:
        write_json(staged[json_path], report)
        plot_report(report, staged[png_path])

    write_all_or_none([json_path, png_path], write)
    log(f"wrote {json_path} and {png_path.name}")
    return report


def _snr_text(snr_db: float | None) -> str:
    return "exact" if snr_db is None else f"{snr_db:.1f}"


def format_rounding(report: dict, rounding: dict) -> str:
    """One rounding of a report as a text table: per layer its activation error and cost."""
    label = report["metric_label"]
    lines = [f"{rounding['rounding'].replace('_', '-')} rounding: {label} {rounding['quantized']:.3f} dB fake-quantized, "
             f"{rounding['cost_db']:.4f} dB below float ({report['float']:.3f} dB)",
             f"  {'layer':<24} {'kind':<22} {'SNR dB':>7} {'RMSE':>9} {'steps':>6} {'cost dB':>8}"]
    for layer in rounding["layers"]:
        lines.append(f"  {layer['name']:<24} {layer['kind']:<22} {_snr_text(layer['snr_db']):>7} {layer['rmse']:>9.4g} "
                     f"{layer['rmse_steps']:>6.2f} {layer['cost_db']:>8.4f}")
    return "\n".join(lines)


def plot_report(report: dict, path: Path) -> None:
    """Bars per layer, one colour per rounding: the SNR of its int8 activations (exact ones marked
    on the axis) and the cost of quantizing it alone."""
    plt = pyplot()
    names = [layer["name"] for layer in report["roundings"][0]["layers"]]
    positions = np.arange(len(names))
    width = 0.8 / len(report["roundings"])
    figure, (snr_axis, cost_axis) = plt.subplots(2, 1, figsize=(max(7.0, 0.45 * len(names) + 2), 7), sharex=True)
    for index, rounding in enumerate(report["roundings"]):
        offsets = positions - 0.4 + width * (index + 0.5)
        label = f"{rounding['rounding'].replace('_', '-')} rounding ({rounding['cost_db']:.3f} dB in all)"
        snrs = [layer["snr_db"] for layer in rounding["layers"]]
        snr_axis.bar(offsets, [np.nan if snr is None else snr for snr in snrs], width)
        for offset in (offset for offset, snr in zip(offsets, snrs, strict=True) if snr is None):
            snr_axis.text(offset, 0, "exact", rotation=90, ha="center", va="bottom", fontsize=7)
        cost_axis.bar(offsets, [layer["cost_db"] for layer in rounding["layers"]], width, label=label)
    snr_axis.set(ylabel="SNR of int8 activations (dB)", title="error against float on the calibration patches")
    cost_axis.set(ylabel=f"{report['metric_label']} cost (dB)",
                  title=f"cost of quantizing the layer alone, on {report['dataset']}")
    cost_axis.axhline(0, color="gray", lw=0.8)
    cost_axis.set_xticks(positions, names, rotation=60, ha="right", fontsize=8)
    for axis in (snr_axis, cost_axis):
        axis.grid(axis="y", alpha=0.3)
    cost_axis.legend(fontsize=8)
    figure.suptitle(f"{report['model']} ({Path(report['run']).name}): int8 quantization per layer")
    save_figure(figure, path)
