"""Reading ``.tflite`` models with LiteRT (``ai_edge_litert``), the runtime users deploy: loading
the interpreter with clear errors, the graph's I/O, ops, MACs, size multiple and receptive radius,
and uint8/int8/float I/O. The runtimes that run a model (LiteRT, OpenVINO) are in
:mod:`mobile_sr.runtimes`; what runs a task's model (SR tiling, HDR merging) is the task's runner,
built on them (``mobile_sr.tasks.*.runner``)."""

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


def check_threads(threads: int | None) -> None:
    """Refuse a thread count that no runtime should be given."""
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
        raise ValueError(f"threads must be a whole number from 1 to {MAX_THREADS}, or None for the default; got {threads!r}")


def _check_model_file(path: Path) -> None:
    if path.is_dir():
        raise TFLiteError(f"{path} is a folder; give the .tflite file itself (e.g. one 'mobile-sr export' wrote)")
    if not path.is_file():
        raise TFLiteError(f"{path}: no such file; export one with 'mobile-sr export'")


def load_interpreter(path: str | Path, *, threads: int | None = None):
    """Load and allocate a .tflite, with a one-line error for a missing or invalid file."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    check_threads(threads)
    path = Path(path)
    _check_model_file(path)

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


def graph_io_details(path: str | Path) -> tuple[list[dict], list[dict]]:
    """The input and output tensors of a .tflite as LiteRT describes them (``name``, ``index``,
    ``shape``, ``shape_signature``, ``dtype``, ``quantization``), read without allocating the graph
    or applying a delegate; a one-line error for a missing or invalid file."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path = Path(path)
    _check_model_file(path)
    try:
        with silenced_native_stderr():
            interpreter = Interpreter(model_path=str(path),
                                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ValueError, RuntimeError) as exc:
        raise TFLiteError(f"{path}: not a valid TFLite model ({error_reason(exc)}); re-export it") from None
    return interpreter.get_input_details(), interpreter.get_output_details()


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


# Ops after which an output pixel may depend on any input pixel: reductions (a global pooling over
# height and width) and spatial ops whose reach graph_receptive_radius does not model.
_UNBOUNDED_OPS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "TRANSPOSE_CONV", "RESIZE_BILINEAR",
                  "RESIZE_NEAREST_NEIGHBOR", "AVERAGE_POOL_2D", "MAX_POOL_2D"}
_VALID_PADDING = 1  # the flatbuffer's Padding enum: SAME = 0, VALID = 1


def graph_receptive_radius(path: str | Path) -> int | None:
    """How far, in input pixels, an input pixel can be from the position of an output pixel it
    changes, read from the graph: the reach of every convolution (dilated ones included) and
    unshuffle on the longest path from the inputs, each in input pixels (a 3x3 conv after an x2
    pixel shuffle reaches half an input pixel). Tiles with margins this wide equal one whole-image
    run. None for a graph whose output pixels may see the whole image (see ``_UNBOUNDED_OPS``,
    e.g. the global pooling of an attention block)."""
    from fractions import Fraction

    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    subgraph = model.subgraphs[0]

    def block_size(index: int) -> int | None:
        """The largest value of a constant int32 block shape (SPACE_TO_BATCH_ND's dilation)."""
        tensor = subgraph.tensors[index]
        data = model.buffers[tensor.buffer].data
        return None if data is None or tensor.type != 2 else int(np.frombuffer(bytes(data), np.int32).max())

    # tensor -> (input pixels per pixel of it, reach in input pixels); None: unbounded
    reach: dict[int, tuple[Fraction, Fraction] | None] = {int(i): (Fraction(1), Fraction(0)) for i in subgraph.inputs}
    for op in subgraph.operators:
        name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        known = [reach[int(i)] for i in ([] if op.inputs is None else op.inputs) if int(i) in reach]
        if not known:  # weights and other constants
            continue
        outcome = None
        if name not in _UNBOUNDED_OPS and None not in known:
            factor, radius = max(f for f, _ in known), max(r for _, r in known)
            options = op.builtinOptions
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):  # filter: [_, kh, kw, _]
                kernel = [int(v) for v in subgraph.tensors[op.inputs[1]].shape[1:3]]
                span = max((k - 1) * d for k, d in zip(kernel, (options.dilationHFactor, options.dilationWFactor), strict=True))
                radius += factor * (span if options.padding == _VALID_PADDING else -(-span // 2))
                factor *= max(options.strideH, options.strideW)
            elif name == "SPACE_TO_DEPTH":
                radius += factor * (options.blockSize - 1)
                factor *= options.blockSize
            elif name == "DEPTH_TO_SPACE":
                factor /= options.blockSize
            elif name in ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"):  # a dilated conv's lowering
                block = block_size(op.inputs[1])
                factor = None if block is None else factor * block if name == "SPACE_TO_BATCH_ND" else factor / block
            outcome = None if factor is None else (factor, radius)
        reach.update((int(o), outcome) for o in op.outputs)
    outputs = [reach.get(int(o)) for o in subgraph.outputs]
    return None if None in outputs else math.ceil(max(radius for _, radius in outputs))


def probe_side(size_multiple: int) -> int:
    """The side of the square a dynamic-size model is first run at: at least 8, a multiple of
    ``size_multiple``."""
    return -(-8 // size_multiple) * size_multiple


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


