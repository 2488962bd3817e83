"""Export trained runs to ``.tflite``: full-integer int8 (from QAT, or post-training quantization
calibrated on patches of the training data when the run has no QAT), 16x8 (int16 activations,
int8 weights: a quality fallback), float32 and float16.

16x8 is post-training quantization of the float run's inference form, QAT runs being trained for
int8: the conv kernels are put on their int8 grid as int8 post-training quantization puts them
(concatenated features rescaled into the input's range, data-aware rounding), then the converter
calibrates the int16 activation ranges on crops of the training data at the export size. TFLite has no 16x8 kernels for DEPTH_TO_SPACE and
SPACE_TO_DEPTH, so those (exact: they only move values) run in float32 between a DEQUANTIZE and a
QUANTIZE, and the model takes and gives float32, as 16x8 runs on the CPU only anyway.

Every export is verified before it is kept: the LiteRT interpreter loads and runs it, inputs and
outputs have the requested types, an int8 graph holds only int8/uint8 tensors (int32 biases
aside) and a 16x8 graph runs every conv on int16 activations. A JSON report (ops, sizes,
quantization parameters, accelerator readiness) is written next to the model. Files are written
atomically, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import collections
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_sr import runs
from mobile_sr.core.errors import DatasetError, OutputError, QuantizationError, TFLiteError
from mobile_sr.core.files import atomic_write_bytes, check_output_path, write_json
from mobile_sr.readiness import FILTERED_OPS, check_model, read_graph, summary_lines
from mobile_sr.runs import RunConfig
from mobile_sr.tasks import Task
from mobile_sr.tflite import error_reason, graph_ops, load_interpreter

MODES = ("int8", "int16x8", "float", "fp16")
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
    return list(iter_calibration_samples(run_config, input_size, seed))


def iter_calibration_samples(run_config: RunConfig, input_size: tuple[int, int] | None,
                             seed: int = 0) -> Iterator[list[np.ndarray]]:
    """:func:`calibration_samples` one at a time: large frames (HDR's 1000x1500) do not all fit in
    memory at once."""
    height, width = input_size or (run_config.train.patch_size, run_config.train.patch_size)
    task = run_config.task
    rng = np.random.default_rng(seed)
    sources = _training_inputs(run_config)
    for index in rng.integers(len(sources), size=CALIBRATION_SAMPLES):
        image = sources[index]
        reps = (-(-height // image.shape[0]), -(-width // image.shape[1]), 1)
        source = np.tile(image, reps) if reps != (1, 1, 1) else image  # small images are tiled up to the size
        top = rng.integers(source.shape[0] - height + 1)
        left = rng.integers(source.shape[1] - width + 1)
        crop = source[top : top + height, left : left + width][None].astype(np.float32)
        inputs = task.split_inputs(crop)
        yield inputs if isinstance(inputs, list) else [inputs]


def calibration_batch(run_config: RunConfig):
    """What post-training quantization calibrates on: the training-size patches of
    :func:`calibration_samples` as one batch (an array, or a list per model input)."""
    return _as_batch(calibration_samples(run_config, None))


def convert(model, *, mode: str, input_size: tuple[int, int] | None, io_type: str = "uint8",
            representative: Callable | None = None) -> bytes:
    """Convert a Keras model (float or QAT) to TFLite bytes. ``representative`` (a callable
    returning an iterator of input lists) calibrates post-training quantization: int8 of a float
    model, and int16x8, which needs it."""
    from mobile_sr.core.backend import tf

    if mode == "int16x8" and representative is None:
        raise ValueError("int16x8 conversion calibrates its activation ranges: give representative inputs")

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
    elif mode == "int16x8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        # TFLITE_BUILTINS: the ops without 16x8 kernels (DEPTH_TO_SPACE, SPACE_TO_DEPTH) stay float32
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
        # 16x8 goes through the older quantizer whatever this says; left on, TF calibrates once more
        # for the new one first, and throws that away
        converter.experimental_new_quantizer = False
    try:
        content = converter.convert()
    except Exception as exc:  # the converter raises many types; all mean the same to the user
        message = str(exc).strip().splitlines()
        raise QuantizationError(f"TFLite conversion ({mode}) failed: {message[0] if message else type(exc).__name__}") from None
    return _float_readers_rewired(content) if mode == "int16x8" else content


def _float_readers_rewired(content: bytes) -> bytes:
    """The 16x8 graph with the converter's misquantized float ops fixed. Where a float32 tensor
    (RT4KSR's input) feeds both an op with a 16x8 kernel and one without (SPACE_TO_DEPTH), TF's 16x8
    quantizer puts one QUANTIZE on it and wires the float op to the int16 result too, which LiteRT
    refuses ("input->type != output->type (INT16 != FLOAT32)"). Such an op reads the QUANTIZE's
    float32 input again here: exactly what it was meant to read."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    subgraph = model.subgraphs[0]
    quantize = {}  # the int16 output of a QUANTIZE of a float32 tensor -> that float32 tensor
    for op in subgraph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.QUANTIZE:
            source, target = int(op.inputs[0]), int(op.outputs[0])
            if subgraph.tensors[source].type == schema.TensorType.FLOAT32 and subgraph.tensors[target].type == schema.TensorType.INT16:
                quantize[target] = source
    changed = False
    for op in subgraph.operators:
        if not all(subgraph.tensors[int(t)].type == schema.TensorType.FLOAT32 for t in op.outputs):
            continue  # a quantized op, or a QUANTIZE
        for position, tensor in enumerate(op.inputs):
            if int(tensor) in quantize:
                op.inputs[position] = quantize[int(tensor)]
                changed = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else content


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
        if report["int32_tensors"] and not FILTERED_OPS & set(report["ops"]):
            raise QuantizationError(f"unexpected int32 tensors: {report['int32_tensors'][:5]}")
    if mode == "int16x8":
        unquantized = [f"#{op.index} {op.name}" for op in read_graph(path)
                       if op.name in FILTERED_OPS and any(t.dtype != "int16" for t in op.activations)]
        if unquantized:
            raise QuantizationError(f"the 16x8 graph runs {', '.join(unquantized[:5])} on other than int16 activations; "
                                    "the converter left them unquantized")
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


def _duration(seconds: float) -> str:
    """``4.2 s``, or ``5 min 3 s`` from a minute on."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s"


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
        model = quantize_for_training(model, calibration_batch(run_config),
                                      value_range=run_config.task.value_range)
    if mode == "int16x8":
        log(f"16x8 by post-training quantization of {run_dir}'s float model: int8 kernels rounded to fit "
            f"{CALIBRATION_SAMPLES} patches of its training data ({run_config.train.data}), int16 activation "
            "ranges calibrated on as many crops of it at the export size")
        from mobile_sr.quantization.qat import equalize_concat_ranges
        from mobile_sr.quantization.rounding import round_conv_kernels

        # With 16-bit activations the int8 kernels carry most of the error: prepare them as int8's
        # post-training quantization does. Features concatenated to the input are rescaled into its
        # range (the consuming conv's feature weights then get finer int8 steps; SCSRN's are set by
        # its LR skip weights), then the kernels are rounded to fit the data, which the converter's
        # nearest rounding keeps.
        calibration = calibration_batch(run_config)
        model = equalize_concat_ranges(model, calibration, run_config.task.value_range)
        round_conv_kernels(model, calibration)
    return model, run_config


def _quantization(mode: str, run_config: RunConfig) -> str | None:
    """How the export quantized: ``qat``, ``post-training``, or None (a float export)."""
    if mode not in ("int8", "int16x8"):
        return None
    return "qat" if run_config.is_qat else "post-training"


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
                       "quantization": _quantization(mode, run_config),
                       "io_type": io_type if mode == "int8" else "float32", "readiness": check_model(staging)})
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
    """Export the run in ``run_dir`` as ``mode`` (int8, int16x8, float, fp16) at ``input_size`` (height,
    width; None: dynamic; by default, ``TASK_FRAME``, the task's frame, e.g. 360x640 for SR, which
    the log then names as the default); see the module docstring. The log says what is converted,
    how long it took, whether an earlier export was replaced, and the model's accelerator readiness."""
    task_frame = input_size == TASK_FRAME
    if task_frame:
        input_size = default_input_size(run_dir)
    _check_arguments(mode=mode, input_size=input_size, io_type=io_type, out_path=out_path)
    run_dir = Path(run_dir)
    runs.check_unlocked(run_dir, action="export it")  # its weights may be half-written until then
    out_path = Path(out_path) if out_path else default_export_path(run_dir, mode, input_size)
    _check_replaceable(out_path, out_path.with_suffix(".json"))
    replaces = out_path.is_file()  # an earlier export (_check_replaceable refused anything else)
    model, run_config = _model_to_convert(run_dir, mode=mode, input_size=input_size, log=log)
    # A large frame converts slowly (HDR at 1000x1500: minutes on one core): say what runs, and
    # how to choose a smaller size when the size was not chosen.
    size = "a dynamic input size" if input_size is None else f"{input_size[0]}x{input_size[1]}"
    default = (f" (the {run_config.task.name.upper()} default; --input-size HxW or dynamic chooses another)"
               if task_frame else "")
    log(f"converting {run_dir.name} to {mode} at {size}{default}: this can take minutes on a CPU")
    started = time.monotonic()
    representative = (lambda: iter_calibration_samples(run_config, input_size)) if mode == "int16x8" else None
    content = convert(model, mode=mode, input_size=input_size, io_type=io_type, representative=representative)
    log(f"converted in {_duration(time.monotonic() - started)}; verifying it in LiteRT")
    report = _write_verified(content, out_path=out_path, run_dir=run_dir, run_config=run_config, mode=mode,
                             io_type=io_type, input_size=input_size)
    replaced = f"; replaced the earlier {out_path}" if replaces else ""
    log(f"wrote {out_path} ({report['size_bytes'] / 1024:.1f} KB, {len(report['ops'])} ops: "
        f"{', '.join(f'{k} x{v}' for k, v in report['op_counts'].items())}) and {out_path.with_suffix('.json').name}"
        + replaced)
    if report["xnnpack"] != "accepted":
        log(f"warning: LiteRT's XNNPACK delegate {report['xnnpack']}; the model runs on the slower builtin kernels")
    for line in summary_lines(report["readiness"]):
        log(line)
    return ExportResult(out_path, out_path.with_suffix(".json"), report, report["quantization"] == "post-training")
