"""Running ``.tflite`` models in the LiteRT interpreter (``ai_edge_litert``), the runtime users
deploy: loading with clear errors, uint8/int8/float I/O, and inference at any size by resizing
the input tensors. What runs a task's model (SR tiling, HDR merging) is the task's runner, built
on these pieces (``mobile_sr.tasks.*.runner``)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from mobile_sr.core.errors import TFLiteError
from mobile_sr.core.native_logs import silenced_native_stderr

# The most CPU threads a command takes (interpreter, benchmark, TensorFlow): past 4 per core
# threads only contend, and tens of thousands crash LiteRT's thread pool (a segfault, no error).
# At least 256, so that no real setting is refused on a small machine.
MAX_THREADS = max(256, 4 * (os.cpu_count() or 1))


def load_interpreter(path: str | Path, *, threads: int | None = None):
    """Load and allocate a .tflite, with a one-line error for a missing or invalid file."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
        raise ValueError(f"threads must be a whole number from 1 to {MAX_THREADS}, or None for the default; got {threads!r}")
    path = Path(path)
    if path.is_dir():
        raise TFLiteError(f"{path} is a folder; give the .tflite file itself (e.g. one 'mobile-sr export' wrote)")
    if not path.is_file():
        raise TFLiteError(f"{path}: no such file; export one with 'mobile-sr export'")

    def create(resolver):
        with silenced_native_stderr():
            created = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
            # a dynamic-size graph starts at 1x1, too small for one that downsamples its input
            dynamic = [d for d in created.get_input_details() if is_dynamic(d) and len(d["shape"]) == 4]
            if dynamic:
                side = probe_side(graph_size_multiple(path))
                for detail in dynamic:
                    created.resize_tensor_input(detail["index"], [1, side, side, int(detail["shape"][-1])], strict=False)
            created.allocate_tensors()
        return created

    xnnpack_refusal = None
    try:
        interpreter = create(OpResolverType.AUTO)
    except (ValueError, RuntimeError) as exc:
        if "XNNPACK" not in str(exc):
            raise TFLiteError(f"{path}: not a valid TFLite model ({error_reason(exc)}); re-export it") from None
        # XNNPACK refuses some int8 graphs (e.g. scale ratios outside its kernels' range); the
        # builtin kernels still run them, as a phone would without the delegate
        xnnpack_refusal = error_reason(exc)
        try:
            interpreter = create(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        except (ValueError, RuntimeError) as retry_exc:
            raise TFLiteError(f"{path}: not a valid TFLite model ({error_reason(retry_exc)}); re-export it") from None
    interpreter.xnnpack_refusal = xnnpack_refusal
    return interpreter


def shape_text(detail: dict) -> str:
    """A tensor's shape as ``1x360x640x3``, a dynamic dimension as ``?``."""
    shape = detail.get("shape_signature", detail["shape"])
    return "x".join("?" if int(v) < 0 else str(int(v)) for v in shape)


def is_dynamic(detail: dict) -> bool:
    """Whether a tensor's size is set at run time (a model exported with a dynamic input size)."""
    return any(int(v) < 0 for v in detail.get("shape_signature", detail["shape"]))


def error_reason(exc: BaseException) -> str:
    """The first line of an interpreter error."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def graph_ops(path: str | Path) -> list[str]:
    """The op names of a .tflite's main graph in execution order, read from the file."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    return [flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in model.subgraphs[0].operators]


def count_macs(path: str | Path) -> int:
    """Multiply-accumulates of one inference at the model's input size (convs and dense layers),
    from the shapes stored in the file: no tensors are allocated (the builtin conv kernels refuse
    to prepare im2col buffers over 2^31 elements, e.g. AHDRNet at 1000x1500)."""
    from ai_edge_litert.tools import flatbuffer_utils

    load_interpreter(path)  # validates the file with a clear error
    model = flatbuffer_utils.read_model(str(path))
    subgraph = model.subgraphs[0]

    def shape(index: int) -> list[int]:
        return [int(v) for v in subgraph.tensors[index].shape]

    total = 0
    for op in subgraph.operators:
        name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            continue
        out = shape(op.outputs[0])
        if name == "CONV_2D":  # filter: [out_c, kh, kw, in_c]
            total += math.prod(out) * math.prod(shape(op.inputs[1])[1:])
        elif name == "DEPTHWISE_CONV_2D":  # filter: [1, kh, kw, out_c]
            filter_shape = shape(op.inputs[1])
            total += math.prod(out) * filter_shape[1] * filter_shape[2]
        elif name == "FULLY_CONNECTED":  # filter: [out, in]
            total += math.prod(out) * shape(op.inputs[1])[1]
        else:  # TRANSPOSE_CONV: inputs (output_shape, filter [out_c, kh, kw, in_c], input)
            filter_shape = shape(op.inputs[1])
            total += math.prod(shape(op.inputs[2])) * filter_shape[0] * filter_shape[1] * filter_shape[2]
    return total


def graph_size_multiple(path: str | Path) -> int:
    """The multiple of which a model's input height and width must be, read from the graph: the
    block sizes of its SPACE_TO_DEPTH ops (the only downsampling mobile-sr's models use), chained
    along each path from the input (a U-Net's levels multiply) and undone by DEPTH_TO_SPACE."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    factors: dict[int, int] = {}  # tensor -> how much smaller than the input it is
    multiple = 1
    for op in model.subgraphs[0].operators:
        name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        inputs, outputs = ([] if ids is None else ids for ids in (op.inputs, op.outputs))
        factor = max((factors.get(int(i), 1) for i in inputs if i >= 0), default=1)
        if name == "SPACE_TO_DEPTH":
            factor *= op.builtinOptions.blockSize
            multiple = math.lcm(multiple, factor)
        elif name == "DEPTH_TO_SPACE":
            factor = max(1, factor // op.builtinOptions.blockSize)
        factors.update((int(o), factor) for o in outputs)
    return multiple


def probe_side(size_multiple: int) -> int:
    """The side of the square a dynamic-size model is first run at: at least 8, a multiple of
    ``size_multiple``."""
    return -(-8 // size_multiple) * size_multiple


def invoke(interpreter, path: Path, feeds: list[tuple[dict, np.ndarray]], size_multiple: int) -> np.ndarray:
    """Set the inputs (``(detail, 1 x H x W x C array)`` pairs, resizing the input tensors to
    them where needed), run the graph and return its output tensor."""
    shapes = {d["index"]: list(d["shape"]) for d in interpreter.get_input_details()}
    try:
        if any(shapes[detail["index"]] != list(x.shape) for detail, x in feeds):
            for detail, x in feeds:
                interpreter.resize_tensor_input(detail["index"], list(x.shape), strict=False)
            with silenced_native_stderr():
                interpreter.allocate_tensors()
        for detail, x in feeds:
            interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
    except (ValueError, RuntimeError) as exc:
        height, width = feeds[0][1].shape[1:3]
        report = path.with_suffix(".json")
        raise TFLiteError(
            f"{path}: the LiteRT interpreter cannot run the model on a {height}x{width} input ({error_reason(exc)}); "
            f"inputs are padded to a multiple of {size_multiple}, the model's downsampling as its export report "
            f"{report.name} gives it (without one, as read from the graph): if the model needs another size, "
            "re-export it, which rewrites the report") from None
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def quantize(image: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return image.astype(np.float32)
    scale, zero_point = detail["quantization"]
    if scale == 0:
        raise TFLiteError(f"the model's {np.dtype(dtype).name} input has no quantization parameters")
    info = np.iinfo(dtype)
    return np.clip(np.round(image.astype(np.float32) / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return values
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


def report_size_multiple(path: Path) -> int:
    """The ``size_multiple`` that ``mobile-sr export`` wrote into the JSON report next to the
    model (the input size a model that downsamples needs); without a report, read from the graph."""
    report = path.with_suffix(".json")
    if not report.is_file():
        return graph_size_multiple(path)
    try:
        content = json.loads(report.read_text())
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        content = None
    if isinstance(content, dict) and "size_multiple" not in content:
        return graph_size_multiple(path)
    value = content.get("size_multiple") if isinstance(content, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TFLiteError(f"{report}: damaged export report (it should be a JSON object whose size_multiple, a whole "
                          f"number of 1 or more, is the input multiple {path.name} needs); re-export the model, "
                          "or delete the report to read the multiple from the model itself")
    return value


