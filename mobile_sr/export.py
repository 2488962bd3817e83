"""Export trained runs to ``.tflite``: full-integer int8 (from QAT, or post-training quantization
calibrated on patches of the training data when the run has no QAT), float32 and float16.

Every export is verified before it is kept: the LiteRT interpreter loads and runs it, inputs and
outputs have the requested types, and an int8 graph holds only int8/uint8 tensors (int32 biases
aside). A JSON report (ops, sizes, quantization parameters) is written next to the model. Files
are written atomically, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import collections
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_sr import runs
from mobile_sr.core.errors import DatasetError, OutputError, QuantizationError, TFLiteError
from mobile_sr.core.files import atomic_write_bytes, check_output_path, write_json
from mobile_sr.runs import RunConfig
from mobile_sr.tasks import Task
from mobile_sr.tflite import error_reason, graph_ops, load_interpreter

MODES = ("int8", "float", "fp16")
IO_TYPES = ("uint8", "int8")
CALIBRATION_SAMPLES = 64
MAX_TENSOR_VALUES = 2**31 - 1  # LiteRT's kernels index a tensor's values with 32-bit ints
TFLITE_IDENTIFIER = b"TFL3"  # the FlatBuffer file identifier, at bytes 4..7 of a .tflite
REPORT_KEYS = {"file", "size_bytes", "ops", "op_counts", "input", "output"}  # in every report export writes
TASK_FRAME = "task frame"  # export_run's default input size: the run's task's frame


@dataclass(frozen=True)
class ExportResult:
    path: Path
    report_path: Path
    report: dict
    post_training_quantized: bool


def parse_input_size(text: str) -> tuple[int, int] | None:
    """``HxW`` (e.g. 360x640) or ``dynamic``."""
    if text.lower() == "dynamic":
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"input size '{text}' is not HxW (e.g. 360x640) or 'dynamic'") from None
    if height < 1 or width < 1:
        raise ValueError(f"input size '{text}' must be positive")
    return height, width


def _training_inputs(run_config: RunConfig) -> list[np.ndarray]:
    """The run's training data as channel-stacked model inputs (the task's calibration sources)."""
    train = run_config.train
    try:
        return run_config.task.calibration_sources(train.data, seed=train.seed, model_config=run_config.model_config)
    except DatasetError as exc:
        raise DatasetError(f"{exc} (post-training quantization calibrates on the run's training data '{train.data}', "
                           f"from its {runs.CONFIG_FILE}; {runs.RELATIVE_DATA_HINT})") from None


def default_input_size(run_dir: Path) -> tuple[int, int]:
    """The export size of a run when none is given: its task's frame (SR: the challenge's 360x640)."""
    return runs.read_run_config(run_dir).task.default_export_size


def _as_batch(samples: list[list[np.ndarray]]):
    """Samples (each a list of model inputs) as one batch: an array, or a list per input."""
    batch = [np.concatenate(parts) for parts in zip(*samples, strict=True)]
    return batch if len(batch) > 1 else batch[0]


def calibration_samples(run_config: RunConfig, input_size: tuple[int, int] | None,
                        seed: int = 0) -> list[list[np.ndarray]]:
    """Representative inputs for post-training quantization, cut from the run's training data:
    each a list of the model's inputs (SR: one 1 x H x W x 3 LR crop; HDR: three exposures)."""
    height, width = input_size or (run_config.train.patch_size, run_config.train.patch_size)
    task = run_config.task
    rng = np.random.default_rng(seed)
    sources = _training_inputs(run_config)
    samples = []
    for index in rng.integers(len(sources), size=CALIBRATION_SAMPLES):
        image = sources[index]
        reps = (-(-height // image.shape[0]), -(-width // image.shape[1]), 1)
        source = np.tile(image, reps) if reps != (1, 1, 1) else image  # small images are tiled up to the size
        top = rng.integers(source.shape[0] - height + 1)
        left = rng.integers(source.shape[1] - width + 1)
        crop = source[top : top + height, left : left + width][None].astype(np.float32)
        inputs = task.split_inputs(crop)
        samples.append(inputs if isinstance(inputs, list) else [inputs])
    return samples


def convert(model, *, mode: str, input_size: tuple[int, int] | None, io_type: str = "uint8",
            representative: Callable | None = None) -> bytes:
    """Convert a Keras model (float or QAT) to TFLite bytes."""
    from mobile_sr.core.backend import tf

    height, width = input_size or (None, None)
    signatures = [tf.TensorSpec([1, height, width, int(tensor.shape[-1])], tf.float32, name=name)
                  for tensor, name in zip(model.inputs, model.input_names, strict=True)]
    if len(signatures) == 1:
        function = tf.function(lambda image: model(image, training=False)).get_concrete_function(*signatures)
    else:
        function = tf.function(lambda *inputs: model(list(inputs), training=False)).get_concrete_function(*signatures)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative is not None:  # post-training: calibrate, and refuse float fallbacks
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_type)
        converter.inference_output_type = getattr(tf, io_type)
    try:
        return converter.convert()
    except Exception as exc:  # the converter raises many types; all mean the same to the user
        message = str(exc).strip().splitlines()
        raise QuantizationError(f"TFLite conversion ({mode}) failed: {message[0] if message else type(exc).__name__}") from None


def inspect(path: Path) -> dict:
    """What a .tflite holds: ops, tensor types, I/O shapes and quantization, size."""
    interpreter = load_interpreter(path)
    tensors = interpreter.get_tensor_details()
    ops = graph_ops(path)

    def describe(detail: dict) -> dict:
        scale, zero_point = detail["quantization"]
        return {"name": detail["name"], "shape": [int(v) for v in detail["shape_signature"]],
                "dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}

    return {
        "file": path.name,
        "size_bytes": path.stat().st_size,
        "ops": ops,
        "op_counts": dict(collections.Counter(ops)),
        "tensor_dtypes": dict(collections.Counter(np.dtype(t["dtype"]).name for t in tensors)),
        "non_integer_tensors": [t["name"] for t in tensors if np.dtype(t["dtype"]).name not in ("int8", "uint8", "int32")],
        "int32_tensors": [t["name"] for t in tensors if np.dtype(t["dtype"]).name == "int32"],
        "xnnpack": "refused: " + interpreter.xnnpack_refusal if interpreter.xnnpack_refusal else "accepted",
        "input": describe(interpreter.get_input_details()[0]),
        "inputs": [describe(detail) for detail in interpreter.get_input_details()],
        "output": describe(interpreter.get_output_details()[0]),
    }


def verify(path: Path, report: dict, *, task: Task, mode: str, io_type: str, size_multiple: int = 1) -> None:
    """Raise QuantizationError unless the model is what the export promised, and runs."""
    expected = io_type if mode == "int8" else "float32"
    for side, detail in [*(("input", d) for d in report["inputs"]), ("output", report["output"])]:
        if detail["dtype"] != expected:
            raise QuantizationError(f"exported {side} is {detail['dtype']}, expected {expected}")
    if mode == "int8":
        if report["non_integer_tensors"]:
            raise QuantizationError(
                f"the int8 graph still holds float tensors ({', '.join(report['non_integer_tensors'][:5])}); "
                "some layer lacks a quantization config"
            )
        consumers = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
        if report["int32_tensors"] and not consumers & set(report["ops"]):
            raise QuantizationError(f"unexpected int32 tensors: {report['int32_tensors'][:5]}")
    # a dynamic size runs at 64x64, or the next size the model's downsampling accepts
    height, width = (v if v > 0 else -(-64 // size_multiple) * size_multiple for v in report["input"]["shape"][1:3])
    task.check_exported(path, size_multiple=size_multiple, height=height, width=width)


def _check_tensor_sizes(run_config: RunConfig, input_size: tuple[int, int]) -> None:
    """Refuse an input size whose input or output tensor holds more values than LiteRT can index."""
    height, width = input_size
    task = run_config.task
    input_values = max(height * width * model_input.channels for model_input in task.inputs)
    largest = max(input_values, math.prod(task.output_shape(run_config.model_config, height, width)))
    if largest > MAX_TENSOR_VALUES:
        raise QuantizationError(f"input size {height}x{width} is too large: the model's input or output tensor would hold "
                                f"{largest:,} values, more than the {MAX_TENSOR_VALUES:,} LiteRT can index; "
                                + task.export_size_hint())


def _verification_failure(exc: TFLiteError, *, staging: Path, out_path: Path, input_size: tuple[int, int] | None,
                          task: Task) -> TFLiteError:
    """``exc`` (raised on the staged file) about the real output. A fresh model that the interpreter
    cannot load at a fixed size fails for that size (XNNPACK cannot reshape, the arena cannot be
    allocated), not for its graph."""
    # load_interpreter raises from None: the interpreter's own reason is the context
    if input_size is None or exc.__context__ is None:
        return TFLiteError(str(exc).replace(str(staging), str(out_path)))
    reason = error_reason(exc.__context__)
    return TFLiteError(f"{out_path}: the LiteRT interpreter cannot run the exported model at input size "
                       f"{input_size[0]}x{input_size[1]} ({reason}); the size is too large for it: " + task.export_size_hint())


def default_export_path(run_dir: Path, mode: str, input_size: tuple[int, int] | None) -> Path:
    size = "dynamic" if input_size is None else f"{input_size[0]}x{input_size[1]}"
    return Path("export") / f"{run_dir.name}_{mode}_{size}.tflite"


def _check_replaceable(out_path: Path, report_path: Path) -> None:
    """Refuse, before any work, to replace a file that is not a model or report of an earlier export
    (e.g. a run's config.json, which ``--out runs/x/config.tflite`` would name as the report)."""
    for path in (out_path, report_path):
        check_output_path(path)
    if out_path.is_file():
        with out_path.open("rb") as handle:
            header = handle.read(8)
        if header[4:8] != TFLITE_IDENTIFIER:
            raise OutputError(f"{out_path} exists and is not a TFLite model; export would replace it: "
                              "give another --out, or move that file away")
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
            report = None
        if not isinstance(report, dict) or not REPORT_KEYS <= report.keys():
            raise OutputError(f"{report_path} exists and is not a mobile-sr export report; export writes its report "
                              f"there, next to {out_path.name}, and would replace it: give another --out, or move "
                              "that file away")


def _check_arguments(*, mode: str, input_size, io_type: str, out_path: Path | None) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if io_type not in IO_TYPES:
        raise ValueError(f"io_type must be one of {IO_TYPES}, got {io_type!r}")
    if input_size is not None and not (isinstance(input_size, (tuple, list)) and len(input_size) == 2
                                       and all(isinstance(v, int) and v > 0 for v in input_size)):
        raise ValueError(f"input_size must be (height, width) in pixels, e.g. (360, 640), or None for a dynamic size; "
                         f"got {input_size!r} (parse_input_size reads 'HxW' text)")
    if out_path is not None and Path(out_path).suffix.lower() != ".tflite":
        # the JSON report goes next to the model with a .json suffix; it must not replace the model
        raise ValueError(f"output {out_path} must end in .tflite")


def _model_to_convert(run_dir: Path, *, mode: str, input_size: tuple[int, int] | None,
                      log: Callable[[str], None]) -> tuple[Any, RunConfig]:
    """The run's model in the form ``mode`` converts, with its run config: a QAT run as trained, a
    float run in inference form, fake-quantized at its calibrated start for int8."""
    model, run_config = runs.load_trained_model(run_dir)
    if not run_config.is_qat:  # a QAT run is in inference form already
        model = runs.deployed_model(model, run_config)
    size_multiple = run_config.model_config.size_multiple
    if input_size is not None and (input_size[0] % size_multiple or input_size[1] % size_multiple):
        raise QuantizationError(f"{run_config.model} needs an input size that is a multiple of {size_multiple} "
                                f"(its downsampling), got {input_size[0]}x{input_size[1]}")
    if input_size is not None:
        _check_tensor_sizes(run_config, input_size)
    if run_config.is_qat and mode != "int8":
        raise QuantizationError(f"{run_dir} is a QAT run: export it with --int8, or export its float run "
                                f"({run_config.train.init_from}) with --{mode}")
    if mode == "int8" and not run_config.is_qat:
        log(f"{run_dir} has no QAT: int8 by post-training quantization, calibrated on "
            f"{CALIBRATION_SAMPLES} patches of its training data ({run_config.train.data})")
        from mobile_sr.quantization.qat import quantize_for_training

        # QAT's starting point without a training step: concat ranges equalized, kernels rounded to
        # fit the data, activation ranges calibrated. It converts to the graph a QAT run gives,
        # which loses less than the converter's own calibration (SCSRN x3: 0.01 against 0.05 dB
        # on Set5) and keeps no separate output clip. Training-size patches: the calibration holds
        # every conv input of the batch at once.
        model = quantize_for_training(model, _as_batch(calibration_samples(run_config, None)),
                                      value_range=run_config.task.value_range)
    return model, run_config


def _write_verified(content: bytes, *, out_path: Path, run_dir: Path, run_config: RunConfig, mode: str,
                    io_type: str, input_size: tuple[int, int] | None) -> dict:
    """Stage the model, verify it, then move it and its report into place; returns the report.
    Nothing is left behind on failure, Ctrl-C included."""
    task, size_multiple = run_config.task, run_config.model_config.size_multiple
    report_path = out_path.with_suffix(".json")
    staging = out_path.with_name(f".{out_path.name}.partial")
    report_staging = report_path.with_name(f".{report_path.name}.partial")
    atomic_write_bytes(staging, content)
    try:
        try:
            report = inspect(staging)
            verify(staging, report, task=task, mode=mode, io_type=io_type, size_multiple=size_multiple)
        except TFLiteError as exc:
            raise _verification_failure(exc, staging=staging, out_path=out_path, input_size=input_size,
                                        task=task) from None
        report.update({"file": out_path.name, "run": str(run_dir), "task": task.name, "model": run_config.model,
                       **task.summary_fields(run_config.model_config), "size_multiple": size_multiple, "mode": mode,
                       "quantization": ("qat" if run_config.is_qat else "post-training") if mode == "int8" else None,
                       "io_type": io_type if mode == "int8" else "float32"})
        # both files staged first: the renames that follow leave no new model beside an old report
        write_json(report_staging, report)
        staging.replace(out_path)
        report_staging.replace(report_path)
    except BaseException:  # Ctrl-C too: leave no staging file behind
        staging.unlink(missing_ok=True)
        report_staging.unlink(missing_ok=True)
        raise
    return report


def export_run(*, run_dir: Path, mode: str, input_size: tuple[int, int] | None | str = TASK_FRAME,
               io_type: str = "uint8", out_path: Path | None = None,
               log: Callable[[str], None] = print) -> ExportResult:
    """Export the run in ``run_dir`` as ``mode`` (int8, float, fp16) at ``input_size`` (height,
    width; None: dynamic; by default the task's frame, e.g. 360x640 for SR); see the module
    docstring."""
    if input_size == TASK_FRAME:
        input_size = default_input_size(run_dir)
    _check_arguments(mode=mode, input_size=input_size, io_type=io_type, out_path=out_path)
    run_dir = Path(run_dir)
    out_path = Path(out_path) if out_path else default_export_path(run_dir, mode, input_size)
    _check_replaceable(out_path, out_path.with_suffix(".json"))
    model, run_config = _model_to_convert(run_dir, mode=mode, input_size=input_size, log=log)
    content = convert(model, mode=mode, input_size=input_size, io_type=io_type)
    report = _write_verified(content, out_path=out_path, run_dir=run_dir, run_config=run_config, mode=mode,
                             io_type=io_type, input_size=input_size)
    log(f"wrote {out_path} ({report['size_bytes'] / 1024:.1f} KB, {len(report['ops'])} ops: "
        f"{', '.join(f'{k} x{v}' for k, v in report['op_counts'].items())}) and {out_path.with_suffix('.json').name}")
    if report["xnnpack"] != "accepted":
        log(f"warning: LiteRT's XNNPACK delegate {report['xnnpack']}; the model runs on the slower builtin kernels")
    return ExportResult(out_path, out_path.with_suffix(".json"), report, mode == "int8" and not run_config.is_qat)
