"""Accelerator readiness: the delegate rules on hand-made ops, the analyzer's printout parsed op
by op, and the report of real exports (every export writes one; ``mobile-sr check`` prints it)."""

import json

import pytest

from mobile_sr.export import export_run
from mobile_sr.readiness import RULES, Op, Tensor, parse_analyzer, read_graph
from tests.helpers import run_cli


def tensor(dtype="int8", shape=(1, 8, 8, 4), scale=0.1, zero_point=0, constant=False, name="t") -> Tensor:
    return Tensor(name, dtype, shape, (scale,), (zero_point,), constant)


class Options:
    """Builtin options of a hand-made op (attribute names as in the flatbuffer's object API)."""

    def __init__(self, **values):
        defaults = dict(strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1, depthMultiplier=1,
                        fusedActivationFunction=0, beta=1.0)
        self.__dict__.update({**defaults, **values})


def op(name, *, inputs=(), outputs=None, version=2, options=None, consumers=()) -> Op:
    return Op(0, name, version, tuple(inputs) or (tensor(),), tuple(outputs or (tensor(),)), options, tuple(consumers))


def conv(name="CONV_2D", filter_shape=(4, 3, 3, 4), activation="int8", **options) -> Op:
    return op(name, version=3, options=Options(**options),
              inputs=(tensor(activation), tensor("int8", filter_shape, constant=True), tensor("int32", (4,), constant=True)))


def refusals(candidate: Op) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for rule in RULES:
        if reason := rule.refusal(candidate):
            found.setdefault(rule.delegate, []).append(reason)
    return found


CASES = {
    "int8 conv: every delegate": (conv(), set()),
    "int8 depth-to-space (version 2): not Hexagon": (op("DEPTH_TO_SPACE", version=2), {"hexagon"}),
    "5x5 depthwise: not Hexagon": (conv("DEPTHWISE_CONV_2D", (1, 5, 5, 4)), {"hexagon"}),
    "stride 4 conv: not Hexagon": (conv(strideH=4, strideW=4), {"hexagon"}),
    "16x8 conv: CPU only": (conv(activation="int16"), {"gpu", "nnapi", "hexagon"}),
    "float conv: not Hexagon": (conv(activation="float32"), {"hexagon"}),
    "rank-5 reshape: CPU only": (op("RESHAPE", version=1, inputs=(tensor(shape=(1, 2, 3, 4, 5)),)),
                                 {"gpu", "nnapi", "hexagon"}),
    "transpose version 4: not NNAPI or Hexagon": (op("TRANSPOSE", version=4), {"nnapi", "hexagon"}),
    "concat at two scales: not NNAPI 1.0/1.1": (op("CONCATENATION", inputs=(tensor(scale=1.0), tensor(scale=0.5))),
                                                {"nnapi"}),
    "requantize into a concat: not NNAPI": (op("QUANTIZE", consumers=("CONCATENATION",)), {"nnapi"}),
    "asymmetric int8 filter: not NNAPI": (op("CONV_2D", version=3, inputs=(
        tensor(), tensor("int8", (4, 3, 3, 4), zero_point=3, constant=True), tensor("int32", (4,), constant=True))),
        {"nnapi"}),
    "leaky ReLU: not Hexagon": (op("LEAKY_RELU", version=1), {"hexagon"}),
    "quantized SUM: not NNAPI or Hexagon": (op("SUM", version=1), {"nnapi", "hexagon"}),
    "int16 dequantize: not the GPU": (op("DEQUANTIZE", inputs=(tensor("int16"),), outputs=(tensor("float32"),)),
                                      {"gpu", "nnapi", "hexagon"}),
}


@pytest.mark.parametrize("case", CASES)
def test_rules_name_the_delegates_that_refuse_an_op(case):
    candidate, refusing = CASES[case]
    found = refusals(candidate)
    assert set(found) == refusing, found


ANALYZER_TEXT = """=== TFLite ModelAnalyzer ===

Subgraph#0 main(T#0) -> [T#3]
  Op#0 CONV_2D(T#0, T#1, T#2) -> [T#4]
  Op#1 UNIQUE(T#4) -> [T#5, T#6]
GPU COMPATIBILITY WARNING: Not supported op UNIQUE
  Op#2 TOPK_V2(T#5, T#7) -> [T#3, T#8]
GPU COMPATIBILITY WARNING: Not supported op TOPK_V2

GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 1, 2 with TFLite runtime version 2.21.0

Tensors of Subgraph#0
  T#0(input) shape:[1, 8, 8, 3], type:FLOAT32
"""


def test_analyzer_warnings_are_attributed_to_the_ops_they_follow():
    """The format of tensorflow/lite/python/analyzer_wrapper/model_analyzer.cc."""
    parsed = parse_analyzer(ANALYZER_TEXT)
    assert parsed["warnings"] == {1: ["Not supported op UNIQUE"], 2: ["Not supported op TOPK_V2"]}
    assert "issues at nodes 1, 2" in parsed["verdict"]
    assert parse_analyzer("  Op#0 ADD(T#0, T#1) -> [T#2]\n\nYour model looks compatible with GPU delegate on TFLite "
                          "runtime version 2.21.0.\n")["warnings"] == {}


def test_int8_export_reports_its_readiness_and_check_prints_it(tiny_sr, tmp_path):
    messages = []
    result = export_run(run_dir=tiny_sr.qat_run, mode="int8", input_size=(20, 24), out_path=tmp_path / "m.tflite",
                        log=messages.append)
    report = json.loads(result.report_path.read_text())["readiness"]
    ops = read_graph(result.path)
    assert report["ops"] == len(ops)
    delegates = report["delegates"]
    assert delegates["gpu"]["cpu_fallbacks"] == delegates["nnapi"]["cpu_fallbacks"] == []
    # int8 DEPTH_TO_SPACE is version 2, which Hexagon's op-version whitelist refuses
    assert [f["name"] for f in delegates["hexagon"]["cpu_fallbacks"]] == ["DEPTH_TO_SPACE"]
    convs = {o.index for o in ops if o.name == "CONV_2D"}
    assert delegates["xnnpack"]["delegated_ops"] >= len(convs)
    assert not convs & {f["op"] for f in delegates["xnnpack"]["cpu_fallbacks"]}
    assert any(line.startswith("accelerator readiness") for line in messages)
    assert any("Hexagon" in line and f"{len(ops) - 1}/{len(ops)} ops" in line for line in messages)
    # TensorFlow's pip builds compile the analyzer without its GPU check: the summary says so
    assert any("flags no op" in line for line in messages) != report["gpu_analyzer"]["checks_ops"]

    cli = run_cli("check", result.path, "--json", tmp_path / "check.json")
    assert cli.exit_code == 0, cli.output
    assert "#" in cli.output and "DEPTH_TO_SPACE version 2" in cli.output
    assert json.loads((tmp_path / "check.json").read_text())["delegates"]["hexagon"] == delegates["hexagon"]
    cli = run_cli("check", tmp_path / "missing.tflite")
    assert cli.exit_code == 1 and cli.output.startswith("Error:") and "no such file" in cli.output
