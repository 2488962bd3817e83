"""Export trained runs to ``.tflite``: full-integer int8 (from QAT, or post-training quantization
with a representative dataset when the run has no QAT), float32 and float16.

Every export is verified before it is kept: the LiteRT interpreter loads and runs it, inputs and
outputs have the requested types, and an int8 graph holds only int8/uint8 tensors (int32 biases
aside). A JSON report (ops, sizes, quantization parameters) is written next to the model. Files
are written atomically, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mobile_sr import runs
from mobile_sr.errors import QuantizationError, RunFolderError, TFLiteError
from mobile_sr.images import atomic_write_bytes

MODES = ("int8", "float", "fp16")
IO_TYPES = ("uint8", "int8")
DEFAULT_INPUT_SIZE = (360, 640)  # the Mobile AI challenge frame: 360x640 LR -> 1080x1920 for x3
CALIBRATION_SAMPLES = 64


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


def latest_run(root: Path = Path("runs")) -> Path:
    """The most recently finished run below ``root``."""
    finished = [p.parent for p in root.glob(f"*/{runs.WEIGHTS_FILE}")] if root.is_dir() else []
    if not finished:
        raise RunFolderError(f"no finished run in {root}/; train one with 'mobile-sr train' or pass --run")
    return max(finished, key=lambda p: (p / runs.WEIGHTS_FILE).stat().st_mtime)


def _calibration_samples(run_config: dict, input_size: tuple[int, int] | None, seed: int = 0) -> list[np.ndarray]:
    """Representative LR inputs (1 x H x W x 3) for post-training quantization, cut from the run's
    training data."""
    from mobile_sr.data.sr import load_sr_pairs

    train = run_config["train"]
    _, pairs = load_sr_pairs(train["data"], run_config["model_config"]["scale"], split="train")
    height, width = input_size or (train["patch_size"], train["patch_size"])
    rng = np.random.default_rng(seed)
    samples = []
    for index in rng.integers(len(pairs), size=CALIBRATION_SAMPLES):
        lr = pairs[index].lr
        reps = (-(-height // lr.shape[0]), -(-width // lr.shape[1]), 1)
        source = np.tile(lr, reps) if reps != (1, 1, 1) else lr  # small images are tiled up to the size
        top = rng.integers(source.shape[0] - height + 1)
        left = rng.integers(source.shape[1] - width + 1)
        samples.append(source[top : top + height, left : left + width][None].astype(np.float32))
    return samples


def convert(model, *, mode: str, input_size: tuple[int, int] | None, io_type: str = "uint8",
            representative: Callable | None = None) -> bytes:
    """Convert a Keras model (float or QAT) to TFLite bytes."""
    from mobile_sr.backend import tf

    height, width = input_size or (None, None)
    signature = tf.TensorSpec([1, height, width, 3], tf.float32, name="lr")
    function = tf.function(lambda lr: model(lr, training=False)).get_concrete_function(signature)
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
    from mobile_sr.tflite import load_interpreter

    interpreter = load_interpreter(path)
    tensors = interpreter.get_tensor_details()
    ops = [op["op_name"] for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]

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
        "input": describe(interpreter.get_input_details()[0]),
        "output": describe(interpreter.get_output_details()[0]),
    }


def verify(path: Path, report: dict, *, mode: str, io_type: str) -> None:
    """Raise QuantizationError unless the model is what the export promised, and runs."""
    from mobile_sr.tflite import TFLiteUpscaler

    expected = io_type if mode == "int8" else "float32"
    for side in ("input", "output"):
        if report[side]["dtype"] != expected:
            raise QuantizationError(f"exported {side} is {report[side]['dtype']}, expected {expected}")
    if mode == "int8":
        if report["non_integer_tensors"]:
            raise QuantizationError(
                f"the int8 graph still holds float tensors ({', '.join(report['non_integer_tensors'][:5])}); "
                "some layer lacks a quantization config"
            )
        consumers = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
        if report["int32_tensors"] and not consumers & set(report["ops"]):
            raise QuantizationError(f"unexpected int32 tensors: {report['int32_tensors'][:5]}")
    upscaler = TFLiteUpscaler(path)
    height, width = (v if v > 0 else 16 for v in report["input"]["shape"][1:3])
    result = upscaler(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    if result.shape != (height * upscaler.scale, width * upscaler.scale, 3):
        raise TFLiteError(f"{path}: the interpreter returned {result.shape} for a {height}x{width} input")


def default_export_path(run_dir: Path, mode: str, input_size: tuple[int, int] | None) -> Path:
    size = "dynamic" if input_size is None else f"{input_size[0]}x{input_size[1]}"
    return Path("export") / f"{run_dir.name}_{mode}_{size}.tflite"


def export_run(*, run_dir: Path, mode: str, input_size: tuple[int, int] | None = DEFAULT_INPUT_SIZE,
               io_type: str = "uint8", out_path: Path | None = None,
               log: Callable[[str], None] = print) -> ExportResult:
    """Export the run in ``run_dir`` as ``mode`` (int8, float, fp16); see the module docstring."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if io_type not in IO_TYPES:
        raise ValueError(f"io_type must be one of {IO_TYPES}, got {io_type!r}")
    run_dir = Path(run_dir)
    model, run_config = runs.load_trained_model(run_dir)
    qat = runs.is_qat_run(run_config)
    post_training = mode == "int8" and not qat
    if qat and mode != "int8":
        raise QuantizationError(f"{run_dir} is a QAT run: export it with --int8, or export its float run "
                                f"({run_config['train']['init_from']}) with --{mode}")
    representative = None
    if post_training:
        log(f"{run_dir} has no QAT: int8 by post-training quantization, calibrated on "
            f"{CALIBRATION_SAMPLES} inputs from its training data ({run_config['train']['data']})")
        from mobile_sr.quantization.qat import equalize_concat_ranges

        samples = _calibration_samples(run_config, input_size)
        model = equalize_concat_ranges(model, np.concatenate(samples[:16]))
        representative = lambda: ([sample] for sample in samples)  # noqa: E731
    content = convert(model, mode=mode, input_size=input_size, io_type=io_type, representative=representative)

    out_path = Path(out_path) if out_path else default_export_path(run_dir, mode, input_size)
    staging = out_path.with_name(f".{out_path.name}.partial")
    atomic_write_bytes(staging, content)
    try:
        report = inspect(staging)
        verify(staging, report, mode=mode, io_type=io_type)
    except Exception:
        staging.unlink(missing_ok=True)
        raise
    report.update({"file": out_path.name, "run": str(run_dir), "model": run_config["model"],
                   "scale": run_config["model_config"]["scale"], "mode": mode,
                   "quantization": ("qat" if qat else "post-training") if mode == "int8" else None,
                   "io_type": io_type if mode == "int8" else "float32"})
    staging.replace(out_path)
    report_path = out_path.with_suffix(".json")
    atomic_write_bytes(report_path, (json.dumps(report, indent=2) + "\n").encode())
    log(f"wrote {out_path} ({report['size_bytes'] / 1024:.1f} KB, {len(report['ops'])} ops: "
        f"{', '.join(f'{k} x{v}' for k, v in report['op_counts'].items())}) and {report_path.name}")
    return ExportResult(out_path, report_path, report, post_training)
