"""Accelerator readiness of a ``.tflite``: for each mobile delegate, which ops it would take and,
for every op it would leave on the CPU, why.

* **GPU**: TensorFlow's model analyzer (``tf.lite.experimental.Analyzer.analyze(model_content=...,
  gpu_compatibility=True)``), its printout parsed op by op (a ``GPU COMPATIBILITY WARNING: ...``
  line follows each op it flags), next to the rules of :data:`RULES`. The analyzer of TensorFlow's
  pip builds (2.21, and LiteRT 2.3's own) is built without the GPU check and calls every graph
  compatible; readiness therefore also runs it on a copy of the graph whose first op is one the GPU
  delegate lacks (:data:`ANALYZER_PROBE_OP`) and says, when that copy passes too, that the
  analyzer's verdict carries no information.
* **NNAPI** and **Hexagon**: rules read from the flatbuffer (:data:`RULES`), transcribed from the
  delegates' own checks, each rule with its source.
* **XNNPACK**: measured, not predicted: LiteRT's interpreter applies its default XNNPACK delegate
  on this host and the ops the delegate took are read back from the delegated graph.

Sources of the rules (TensorFlow's repository, ``tensorflow/lite/...``):

* GPU: ``tools/versioning/gpu_compatibility.cc`` (``CheckGpuDelegateCompatibility``: the op list
  of :data:`GPU_OPS`, no int16 ``DEQUANTIZE``, softmax beta 1) and ``delegates/gpu/common/
  model_builder.cc`` (tensors of rank 4 at most; float32/float16 tensors, and the int8/uint8 ones
  of quantized graphs, which the delegate dequantizes: no int16 activations or int64 biases).
* NNAPI: ``delegates/nnapi/nnapi_delegate.cc``: ``NNAPIDelegateKernel::Validate`` (the highest op
  version it accepts per op, :data:`NNAPI_OP_VERSIONS`; float-only ops; rank 4 at most;
  concatenation of quantized tensors of one scale and offset on NNAPI 1.0/1.1), its tensor mapping
  (``IsQuantized`` excludes int16, "kTfLiteInt16 isn't supported as quantized type yet"; int64 has
  no NNAPI operand type) and ``Map`` (a requantizing ``QUANTIZE`` becomes ``DEQUANTIZE`` +
  ``QUANTIZE`` through float32, "NNAPI doesn't support requantization cases"). Per-channel conv
  filters are ``TENSOR_QUANT8_SYMM_PER_CHANNEL``, whose zero point must be 0 (NNAPI's operand
  types). Older delegates were stricter: those whose ``Validate`` returned mapping functions took
  ``DEPTH_TO_SPACE`` only at version 1, i.e. not int8.
* Hexagon: ``delegates/hexagon/utils.cc`` (``CheckOpVersion``, :data:`HEXAGON_OP_VERSIONS`, and
  ``IsNodeSupportedByHexagon``: 8-bit tensors, rank 4 at most, conv strides of 3 at most without
  dilation, depthwise depth multiplier 1, fused activations ReLU-like or none) and its
  ``README.md`` (depthwise filters 3 wide).
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_sr.core.native_logs import silenced_native_stderr
from mobile_sr.tflite import load_interpreter

DELEGATES = {"gpu": "GPU", "nnapi": "NNAPI", "hexagon": "Hexagon", "xnnpack": "XNNPACK"}
MAX_RANK = 4  # GPU, NNAPI and Hexagon all work on tensors of rank 4 at most
ANALYZER_PROBE_OP = "HASHTABLE_LOOKUP"  # an op gpu_compatibility.cc refuses ("Not supported op")
_WARNING = "GPU COMPATIBILITY WARNING: "  # how model_analyzer.cc marks an op the GPU delegate refuses
_OP_LINE = re.compile(r"^\s+Op#(\d+) ")  # an op of the analyzer's listing: "  Op#3 CONV_2D(T#9, ...) -> [T#12]"
FILTERED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}  # ops with a weight filter
_RELU_LIKE = {"NONE", "RELU", "RELU6", "RELU_N1_TO_1"}  # the fused activations Hexagon applies

# Builtin ops the GPU delegate has (gpu_compatibility.cc's switch; no op versions are checked).
GPU_OPS = frozenset({
    "ABS", "ADD", "ADD_N", "ATAN2", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CAST", "CEIL", "CONCATENATION", "CONV_2D",
    "COS", "CUMSUM", "DENSIFY", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE", "DIV", "DYNAMIC_UPDATE_SLICE",
    "ELU", "EMBEDDING_LOOKUP", "EQUAL", "EXP", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED", "GATHER", "GELU",
    "GREATER", "GREATER_EQUAL", "HARD_SWISH", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOGICAL_AND", "LOGISTIC",
    "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "ONE_HOT", "PACK",
    "PAD", "PADV2", "POW", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SELECT", "SELECT_V2", "SIGN",
    "SIN", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE",
    "STABLEHLO_CLAMP", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE", "TRANSPOSE", "TRANSPOSE_CONV",
})
# The op versions NNAPIDelegateKernel::Validate accepts (range(1, n + 1): up to n; None: any).
NNAPI_OP_VERSIONS = {
    **dict.fromkeys(["ADD", "MUL", "ARG_MAX", "ARG_MIN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX",
                     "L2_NORMALIZATION", "CONCATENATION", "DEQUANTIZE", "RELU", "RELU_N1_TO_1", "RELU6", "LOGISTIC",
                     "TANH", "PAD", "PADV2", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "STRIDED_SLICE", "TRANSPOSE",
                     "SLICE", "SPACE_TO_DEPTH", "MEAN", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL",
                     "NOT_EQUAL", "NEG", "TOPK_V2", "SELECT", "GATHER", "SPLIT_V", "QUANTIZE", "REDUCE_ANY",
                     "REDUCE_MIN", "REDUCE_MAX", "PACK", "SQUARED_DIFFERENCE", "UNIDIRECTIONAL_SEQUENCE_LSTM"],
                    range(1, 3)),
    **dict.fromkeys(["SUB", "DEPTHWISE_CONV_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE_CONV",
                     "MAXIMUM", "MINIMUM", "SPLIT", "LSTM"], range(1, 4)),
    **dict.fromkeys(["CONV_2D", "FULLY_CONNECTED"], range(1, 6)),
    **dict.fromkeys(["L2_POOL_2D", "RESHAPE", "SQUEEZE", "LOCAL_RESPONSE_NORMALIZATION", "LSH_PROJECTION", "FLOOR",
                     "DIV", "UNIDIRECTIONAL_SEQUENCE_RNN", "ABS", "EXP", "LOG", "RSQRT", "POW", "SIN", "SQRT", "RNN",
                     "SVDF", "EMBEDDING_LOOKUP", "HASHTABLE_LOOKUP", "CAST", "LEAKY_RELU", "PRELU", "TILE",
                     "LOGICAL_OR", "LOGICAL_AND", "LOGICAL_NOT", "BIDIRECTIONAL_SEQUENCE_LSTM", "EXPAND_DIMS",
                     "LOG_SOFTMAX", "REDUCE_PROD", "SUM", "ELU", "FILL"], range(1, 2)),
    **dict.fromkeys(["HARD_SWISH", "DEPTH_TO_SPACE"], None),
}
# Ops NNAPI runs on float inputs only (Validate: "NNAPI only supports floating point input" and the like).
NNAPI_FLOAT_ONLY = frozenset({"DIV", "ABS", "EXP", "LOG", "RSQRT", "POW", "SIN", "SQRT", "SUM", "REDUCE_PROD", "ELU",
                              "LOG_SOFTMAX", "L2_POOL_2D"})
# The op versions Hexagon's CheckOpVersion accepts, for the ops IsNodeSupportedByHexagon knows.
HEXAGON_OP_VERSIONS = {
    **dict.fromkeys(["ADD", "ARG_MAX", "ARG_MIN", "AVERAGE_POOL_2D", "CONCATENATION", "L2_NORMALIZATION", "LOGISTIC",
                     "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "PACK", "PAD", "QUANTIZE",
                     "RELU6", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH",
                     "SPLIT", "STRIDED_SLICE", "SUB", "TANH", "TRANSPOSE", "TRANSPOSE_CONV"], range(1, 3)),
    "RELU": range(2, 3),
    **dict.fromkeys(["CONV_2D", "DEPTHWISE_CONV_2D"], range(1, 4)),
    "FULLY_CONNECTED": range(1, 5),
    **dict.fromkeys(["DEPTH_TO_SPACE", "RESHAPE", "HARD_SWISH", "NEG"], range(1, 2)),
}

GPU_TYPES = frozenset({"float32", "float16", "int8", "uint8", "int32", "bool"})
NNAPI_TYPES = frozenset({"float32", "float16", "int8", "uint8", "int32", "bool"})
HEXAGON_TYPES = frozenset({"int8", "uint8", "int32"})  # int32: biases, shapes and axes


@dataclass(frozen=True)
class Tensor:
    """A tensor of the graph as the rules see it."""

    name: str
    dtype: str  # numpy's name: int8, uint8, int16, int32, int64, float32, ...
    shape: tuple[int, ...]
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    constant: bool


@dataclass(frozen=True)
class Op:
    """An op of the graph's main subgraph, in execution order."""

    index: int
    name: str  # e.g. CONV_2D
    version: int
    inputs: tuple[Tensor, ...]  # absent optional inputs left out
    outputs: tuple[Tensor, ...]
    options: Any  # the flatbuffer's builtin options (strideH, fusedActivationFunction, ...), or None
    consumers: tuple[str, ...]  # the ops that read its outputs

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        return self.inputs + self.outputs

    @property
    def activations(self) -> tuple[Tensor, ...]:
        """The inputs computed at run time (not weights, biases or shapes)."""
        return tuple(t for t in self.inputs if not t.constant)


@dataclass(frozen=True)
class Rule:
    """One constraint of a delegate: ``refusal`` says why the delegate leaves an op on the CPU, or
    returns None where the op meets the constraint."""

    delegate: str  # a key of DELEGATES
    refusal: Callable[[Op], str | None]
    source: str  # where the constraint comes from


def _enum_names(enum) -> dict[int, str]:
    return {value: name for name, value in vars(enum).items() if not name.startswith("_")}


def read_graph(path: str | Path) -> list[Op]:
    """The ops of a ``.tflite``'s main subgraph, read from the flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    subgraph = model.subgraphs[0]
    dtypes = {value: name.lower() for value, name in _enum_names(schema.TensorType).items()}

    def tensor(index: int) -> Tensor:
        t = subgraph.tensors[index]
        quantization = t.quantization
        scales = () if quantization is None or quantization.scale is None else tuple(map(float, quantization.scale))
        zeros = () if quantization is None or quantization.zeroPoint is None else tuple(map(int, quantization.zeroPoint))
        data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        return Tensor(name, dtypes.get(t.type, str(t.type)), tuple(int(v) for v in ([] if t.shape is None else t.shape)),
                      scales, zeros, data is not None and len(data) > 0)

    names = [flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in subgraph.operators]
    readers: dict[int, list[str]] = {}
    for name, op in zip(names, subgraph.operators, strict=True):
        for index in [] if op.inputs is None else op.inputs:
            readers.setdefault(int(index), []).append(name)
    ops = []
    for position, (name, op) in enumerate(zip(names, subgraph.operators, strict=True)):
        inputs = [int(i) for i in ([] if op.inputs is None else op.inputs) if i >= 0]
        outputs = [int(i) for i in ([] if op.outputs is None else op.outputs)]
        ops.append(Op(position, name, int(model.operatorCodes[op.opcodeIndex].version),
                      tuple(map(tensor, inputs)), tuple(map(tensor, outputs)), op.builtinOptions,
                      tuple(reader for o in outputs for reader in readers.get(o, []))))
    return ops


# --- rules ----------------------------------------------------------------------------------


def _versions_text(versions: range) -> str:
    return f"version {versions.start}" if len(versions) == 1 else f"versions {versions.start}-{versions.stop - 1}"


def _op_table(title: str, table: dict[str, range | None]) -> Callable[[Op], str | None]:
    """Refuse ops missing from ``table`` and op versions outside it."""
    def refusal(op: Op) -> str | None:
        if op.name not in table:
            return f"{title} has no {op.name} kernel"
        versions = table[op.name]
        if versions is not None and op.version not in versions:
            return f"{op.name} version {op.version}: {title} takes {_versions_text(versions)}"
        return None
    return refusal


def _gpu_op(op: Op) -> str | None:
    return None if op.name in GPU_OPS else f"the GPU delegate has no {op.name} kernel"


def _tensor_types(allowed: frozenset[str], why: str) -> Callable[[Op], str | None]:
    def refusal(op: Op) -> str | None:
        refused = sorted({t.dtype for t in op.tensors} - allowed)
        return f"{', '.join(refused)} tensors: {why}" if refused else None
    return refusal


def _rank(title: str) -> Callable[[Op], str | None]:
    def refusal(op: Op) -> str | None:
        rank = max((len(t.shape) for t in op.tensors), default=0)
        return f"a rank-{rank} tensor: {title} takes rank {MAX_RANK} at most" if rank > MAX_RANK else None
    return refusal


def _gpu_int16_dequantize(op: Op) -> str | None:
    refused = op.name == "DEQUANTIZE" and op.inputs and op.inputs[0].dtype == "int16"
    return "DEQUANTIZE of int16: the GPU delegate has no int16 dequantization" if refused else None


def _gpu_softmax_beta(op: Op) -> str | None:
    refused = op.name == "SOFTMAX" and op.options is not None and op.options.beta != 1
    return f"SOFTMAX with beta {op.options.beta:g}: the GPU delegate takes beta 1 only" if refused else None


def _nnapi_float_only(op: Op) -> str | None:
    refused = op.name in NNAPI_FLOAT_ONLY and op.inputs and op.inputs[0].dtype != "float32"
    return f"{op.inputs[0].dtype} {op.name}: NNAPI runs {op.name} on float32 only" if refused else None


def _symmetric_filter(op: Op) -> str | None:
    if op.name not in FILTERED_OPS:
        return None
    filters = [t for t in op.inputs if t.constant and t.dtype == "int8" and len(t.shape) >= 2]
    asymmetric = [t for t in filters if any(zero != 0 for zero in t.zero_points)]
    return (f"int8 filter {asymmetric[0].name} has nonzero zero points: NNAPI's per-channel filters "
            "(TENSOR_QUANT8_SYMM_PER_CHANNEL) are symmetric" if asymmetric else None)


def _one_scale_concat(op: Op) -> str | None:
    if op.name != "CONCATENATION" or not op.outputs or op.outputs[0].dtype not in ("int8", "uint8"):
        return None
    grids = {(t.scales[:1], t.zero_points[:1]) for t in op.tensors}
    return ("CONCATENATION of tensors at different scales or zero points: NNAPI 1.0/1.1 (Android 8.1/9) "
            "concatenate quantized tensors of one scale and offset only" if len(grids) > 1 else None)


def _requantize_into_concat(op: Op) -> str | None:
    refused = (op.name == "QUANTIZE" and "CONCATENATION" in op.consumers and op.inputs
               and op.inputs[0].dtype == "int8" and op.outputs[0].dtype == "int8")
    return ("int8 -> int8 QUANTIZE (a requantize) feeding CONCATENATION: NNAPI has no requantize, the delegate "
            "runs it as DEQUANTIZE + QUANTIZE through float32; quantize the concatenated tensors at one scale, as "
            "mobile-sr's QAT does" if refused else None)


def _fused_activation(op: Op) -> str | None:
    from ai_edge_litert import schema_py_generated as schema

    activation = getattr(op.options, "fusedActivationFunction", None)
    if activation is None or op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "SUB"):
        return None
    name = _enum_names(schema.ActivationFunctionType).get(activation, str(activation))
    return None if name in _RELU_LIKE else f"fused {name} activation: Hexagon fuses ReLU-like activations only"


def _hexagon_conv(op: Op) -> str | None:
    if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D") or op.options is None:
        return None
    o = op.options
    if max(o.strideH, o.strideW) > 3:
        return f"stride {o.strideH}x{o.strideW}: Hexagon takes strides of 3 at most"
    dilated = max(o.dilationHFactor, o.dilationWFactor) > 1
    if op.name == "CONV_2D":
        return "a dilated CONV_2D: Hexagon takes undilated ones only" if dilated else None
    if dilated and max(o.strideH, o.strideW) > 1:
        return "a dilated, strided DEPTHWISE_CONV_2D: Hexagon dilates only at stride 1"
    if o.depthMultiplier != 1 and (dilated or op.inputs[0].shape[-1:] != (1,)):
        return f"depth multiplier {o.depthMultiplier}: Hexagon takes 1 (or a one-channel input)"
    width = op.inputs[1].shape[2]  # filter: [1, kh, kw, out]
    return f"a {op.inputs[1].shape[1]}x{width} depthwise filter: Hexagon takes filters 3 wide" if width != 3 else None


_GPU_SOURCE = "tensorflow/lite/tools/versioning/gpu_compatibility.cc"
_GPU_BUILDER = "tensorflow/lite/delegates/gpu/common/model_builder.cc"
_NNAPI_SOURCE = "tensorflow/lite/delegates/nnapi/nnapi_delegate.cc (NNAPIDelegateKernel::Validate)"
_HEXAGON_SOURCE = "tensorflow/lite/delegates/hexagon/utils.cc (IsNodeSupportedByHexagon)"

RULES = (
    Rule("gpu", _gpu_op, _GPU_SOURCE),
    Rule("gpu", _tensor_types(GPU_TYPES, "the GPU delegate runs float32/float16 graphs and 8-bit quantized ones"),
         _GPU_BUILDER),
    Rule("gpu", _rank("the GPU delegate"), _GPU_BUILDER),
    Rule("gpu", _gpu_int16_dequantize, _GPU_SOURCE),
    Rule("gpu", _gpu_softmax_beta, _GPU_SOURCE),
    Rule("nnapi", _op_table("the NNAPI delegate", NNAPI_OP_VERSIONS), _NNAPI_SOURCE),
    Rule("nnapi", _tensor_types(NNAPI_TYPES, "NNAPI has no int16 activations (the delegate quantizes to 8 bits only) "
                                             "and no int64 operands"), _NNAPI_SOURCE),
    Rule("nnapi", _rank("NNAPI"), _NNAPI_SOURCE),
    Rule("nnapi", _nnapi_float_only, _NNAPI_SOURCE),
    Rule("nnapi", _symmetric_filter, "NNAPI operand type TENSOR_QUANT8_SYMM_PER_CHANNEL (NeuralNetworks.h)"),
    Rule("nnapi", _one_scale_concat, _NNAPI_SOURCE),
    Rule("nnapi", _requantize_into_concat, "tensorflow/lite/delegates/nnapi/nnapi_delegate.cc (NNAPIDelegateKernel::Map)"),
    Rule("hexagon", _op_table("Hexagon", HEXAGON_OP_VERSIONS), "tensorflow/lite/delegates/hexagon/utils.cc (CheckOpVersion)"),
    Rule("hexagon", _tensor_types(HEXAGON_TYPES, "Hexagon runs 8-bit quantized graphs only"), _HEXAGON_SOURCE),
    Rule("hexagon", _rank("Hexagon"), _HEXAGON_SOURCE),
    Rule("hexagon", _hexagon_conv, _HEXAGON_SOURCE + " and delegates/hexagon/README.md"),
    Rule("hexagon", _fused_activation, _HEXAGON_SOURCE),
)


# --- the analyzer and XNNPACK ---------------------------------------------------------------


def _analyzer_text(content: bytes) -> str:
    """What TensorFlow's model analyzer prints for ``content``, GPU check on."""
    from mobile_sr.core.backend import tf

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), silenced_native_stderr():
        tf.lite.experimental.Analyzer.analyze(model_content=bytes(content), gpu_compatibility=True)
    return printed.getvalue()


def parse_analyzer(text: str) -> dict:
    """The analyzer's GPU findings: ``warnings`` (op index -> messages; a warning line follows the
    line of the op it is about) and the ``verdict`` line of the main subgraph."""
    warnings: dict[int, list[str]] = {}
    op = None
    verdict = None
    for line in text.splitlines():
        if match := _OP_LINE.match(line):
            op = int(match.group(1))
        elif line.startswith(_WARNING) and not line.startswith(_WARNING + "Subgraph#"):
            if op is not None:
                warnings.setdefault(op, []).append(line[len(_WARNING):].strip())
        elif line.startswith(_WARNING) or "looks compatible with GPU delegate" in line:
            verdict = verdict or line.strip()
        elif line.startswith("Tensors of Subgraph#"):
            op = None  # the op listing is over
    return {"warnings": warnings, "verdict": verdict}


def _probe_content(path: Path) -> bytes:
    """The model at ``path`` with its first op turned into :data:`ANALYZER_PROBE_OP`."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = copy.deepcopy(flatbuffer_utils.read_model(str(path)))
    code = model.operatorCodes[model.subgraphs[0].operators[0].opcodeIndex]
    code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, ANALYZER_PROBE_OP)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def analyze_gpu(path: Path) -> dict:
    """TensorFlow's analyzer on the model (``warnings``, ``verdict``) and whether it checks ops at
    all (``checks_ops``: it flags the probe copy of the graph)."""
    found = parse_analyzer(_analyzer_text(path.read_bytes()))
    probe = parse_analyzer(_analyzer_text(_probe_content(path)))
    return {**found, "checks_ops": bool(probe["warnings"])}


def xnnpack_delegated(path: Path) -> tuple[set[int], str | None]:
    """The indices of the ops LiteRT's default XNNPACK delegate takes on this host, and its reason
    where it refuses the whole graph. A delegate node lists its partition's inputs and outputs;
    the ops between them, walking back from the outputs, are the ones it took."""
    interpreter = load_interpreter(path)
    if interpreter.xnnpack_refusal:
        return set(), interpreter.xnnpack_refusal
    nodes = interpreter._get_ops_details()  # LiteRT's only view of the delegated graph
    original = [node for node in nodes if node["op_name"] != "DELEGATE"]
    producer = {int(tensor): node["index"] for node in original for tensor in node["outputs"]}
    taken: set[int] = set()
    for delegate in (node for node in nodes if node["op_name"] == "DELEGATE"):
        boundary = {int(tensor) for tensor in delegate["inputs"]}
        pending = [int(tensor) for tensor in delegate["outputs"]]
        while pending:
            tensor = pending.pop()
            index = producer.get(tensor)
            if tensor in boundary or index is None or index in taken:
                continue
            taken.add(index)
            pending.extend(int(t) for t in nodes[index]["inputs"] if t >= 0)
    return taken, None


# --- the report -----------------------------------------------------------------------------


def _fallback(op: Op, reasons: list[str]) -> dict:
    return {"op": op.index, "name": op.name, "reasons": reasons}


def check_model(path: str | Path) -> dict:
    """The readiness report of the ``.tflite`` at ``path``: per delegate the ops it takes and the
    CPU fallbacks (op index, name, reasons), with how that was found; and the analyzer's findings."""
    path = Path(path)
    load_interpreter(path)  # a one-line error for a missing or invalid file
    ops = read_graph(path)
    analyzer = analyze_gpu(path)
    delegates = {}
    for delegate in ("gpu", "nnapi", "hexagon"):
        fallbacks = []
        for op in ops:
            reasons = [reason for rule in RULES if rule.delegate == delegate and (reason := rule.refusal(op))]
            if delegate == "gpu":
                reasons += [f"TensorFlow's analyzer: {message}" for message in analyzer["warnings"].get(op.index, [])]
            if reasons:
                fallbacks.append(_fallback(op, reasons))
        delegates[delegate] = {"delegated_ops": len(ops) - len(fallbacks), "cpu_fallbacks": fallbacks,
                               "found_by": "rules (mobile_sr/readiness.py RULES)"
                                           + (" and TensorFlow's model analyzer" if delegate == "gpu" else "")}
    taken, refusal = xnnpack_delegated(path)
    reason = f"XNNPACK refuses the graph: {refusal}" if refusal else "not taken by LiteRT's XNNPACK delegate: runs on the builtin kernels"
    delegates["xnnpack"] = {"delegated_ops": len(taken),
                            "cpu_fallbacks": [_fallback(op, [reason]) for op in ops if op.index not in taken],
                            "found_by": "measured: LiteRT's interpreter with its default XNNPACK delegate, on this host"}
    return {"ops": len(ops), "delegates": delegates,
            "gpu_analyzer": {"verdict": analyzer["verdict"], "checks_ops": analyzer["checks_ops"],
                             "warnings": {str(k): v for k, v in analyzer["warnings"].items()}}}


def summary_lines(report: dict, *, limit: int | None = 3) -> list[str]:
    """Lines for a terminal: per delegate the ops it takes, then its CPU fallbacks grouped by
    their first reason, each group naming at most ``limit`` ops (None: all)."""
    lines = ["accelerator readiness (op by op; rules and sources in mobile_sr/readiness.py):"]
    for key, title in DELEGATES.items():
        entry = report["delegates"][key]
        lines.append(f"  {title:<8} {entry['delegated_ops']}/{report['ops']} ops"
                     + (", on the CPU:" if entry["cpu_fallbacks"] else ""))
        groups: dict[str, list[str]] = {}
        for fallback in entry["cpu_fallbacks"]:
            groups.setdefault(fallback["reasons"][0], []).append(f"#{fallback['op']} {fallback['name']}")
        for reason, ops in groups.items():
            shown = ops if limit is None else ops[:limit]
            more = f" and {len(ops) - len(shown)} more" if len(ops) > len(shown) else ""
            lines.append(f"    {', '.join(shown)}{more}: {reason}")
    analyzer = report["gpu_analyzer"]
    if not analyzer["checks_ops"]:
        lines.append("  (TensorFlow's GPU analyzer in this build flags no op, not even one the GPU delegate lacks: "
                     "the GPU line rests on the rules)")
    return lines
