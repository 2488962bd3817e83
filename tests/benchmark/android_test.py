"""The Android benchmark over adb: parsing real benchmark_model outputs (fixtures, see
fixtures/benchmark_model/SOURCES.md), the adb command sequence and the one-line errors.

No phone is needed: a stand-in ``adb`` (a TEST DOUBLE, not the real tool) is placed first on PATH.
It records each argv as one JSON line and replays canned replies per command, the benchmark runs
replaying the real outputs from the fixtures.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import flatbuffers
import numpy as np
import pytest

from mobile_sr.benchmark import android
from mobile_sr.benchmark.android import (
    benchmark_on_android,
    delegate_coverage,
    find_adb,
    list_devices,
    parse_benchmark_output,
)
from mobile_sr.benchmark.schema import to_table
from mobile_sr.core.errors import AndroidBenchError
from mobile_sr.data.locations import default_photos
from mobile_sr.tflite import count_macs

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark_model"
ADB_FIXTURES = Path(__file__).parent / "fixtures" / "adb"  # real `adb devices` listings, see SOURCES.md there
SCRIPT = Path(__file__).resolve().parents[2] / "android_bench" / "run_benchmark.sh"
SERIAL = "R5CT1234"
BINARY_RUN = ("shell", "/data/local/tmp/benchmark_model")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def adb_fixture(name: str) -> str:
    return (ADB_FIXTURES / name).read_text()


# --- parsing real outputs --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.txt")))
def test_every_fixture_parses_to_the_full_set_of_keys(name):
    parsed = parse_benchmark_output(fixture(name))
    assert {"init_ms", "first_inference_ms", "warmup_avg_ms", "inference_avg_ms", "inference", "warmup",
            "memory", "op_profile", "top_ops", "errors", "delegate_error", "delegate_notes", "delegation",
            "delegate_applied", "gpu_split"} <= set(parsed)
    assert set(parsed["memory"]) == {"init_mb", "overall_mb", "peak_mb"}


def test_current_form_on_a_phone_picks_the_timed_runs_not_the_warmup():
    parsed = parse_benchmark_output(fixture("current_android_espcn.txt"))
    assert (parsed["init_ms"], parsed["first_inference_ms"]) == (0.855, 49.06)
    assert (parsed["warmup_avg_ms"], parsed["inference_avg_ms"]) == (34.8251, 33.2094)
    timed = parsed["inference"]
    assert timed["count"] == 50 and timed["avg_ms"] == 33.2094
    assert (timed["min_ms"], timed["max_ms"], timed["std_ms"]) == (32.641, 34.005, 0.45)
    assert timed["percentiles_ms"] == {}
    assert parsed["warmup"]["count"] == 15
    assert parsed["memory"] == {"init_mb": 0.0, "overall_mb": 12.8672, "peak_mb": None}
    assert parsed["op_profile"] is None and parsed["errors"] == [] and parsed["delegate_error"] is None


def test_scientific_notation_all_same_warmup_and_memory_delta():
    parsed = parse_benchmark_output(fixture("current_memory_delta.txt"))
    assert parsed["inference_avg_ms"] == 2950.34 and parsed["warmup_avg_ms"] == 3512.39
    assert parsed["inference"]["count"] == 50 and parsed["inference"]["std_ms"] == 109.798
    warmup = parsed["warmup"]  # "count=1 curr=3512391": one run, so min = max = avg
    assert warmup["count"] == 1 and warmup["min_ms"] == warmup["avg_ms"] == 3512.391 and warmup["std_ms"] == 0.0
    assert parsed["memory"] == {"init_mb": 4.21094, "overall_mb": 46.0859, "peak_mb": None}


def test_info_prefixed_lines():
    parsed = parse_benchmark_output(fixture("current_info_prefix.txt"))
    assert parsed["init_ms"] == 12.75 and parsed["inference_avg_ms"] == 13.5202
    assert parsed["inference"]["count"] == 74 and parsed["warmup"]["count"] == 37


def test_a_lone_timed_stats_line_and_the_older_peak_memory_line():
    parsed = parse_benchmark_output(fixture("current_single_stats_line.txt"))
    assert parsed["inference"]["count"] == 50 and parsed["inference"]["max_ms"] == 99.49
    assert parsed["warmup"] is None
    assert parsed["memory"]["init_mb"] == 5.15625 and parsed["memory"]["overall_mb"] == 36.9883


def test_op_profile_is_the_timed_runs_summary_not_the_initialization_one():
    profile = parse_benchmark_output(fixture("op_profiling_nnapi.txt"))["op_profile"]
    assert [row["node_type"] for row in profile] == ["TfLiteNnapiDelegate", "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR"]
    assert profile[0] == {"node_type": "TfLiteNnapiDelegate", "count": 3, "avg_ms": 149.483, "avg_pct": 94.187,
                          "cdf_pct": 94.187, "mem_kb": 0.0, "times_called": 3}


def test_older_average_timings_form_with_its_profile():
    parsed = parse_benchmark_output(fixture("older_average_timings_profiling.txt"))
    assert (parsed["warmup_avg_ms"], parsed["init_ms"], parsed["inference_avg_ms"]) == (83.235, 38.467, 79.7609)
    assert parsed["first_inference_ms"] is None
    assert parsed["inference"] is None  # "Timings (microseconds): count=..." belongs to the profile
    assert [row["node_type"] for row in parsed["op_profile"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert parsed["op_profile"][0]["count"] == 15


def test_oldest_no_stats_form():
    parsed = parse_benchmark_output(fixture("older_no_stats.txt"))
    assert (parsed["warmup_avg_ms"], parsed["init_ms"], parsed["inference_avg_ms"]) == (76.6059, 9.933, 66.7676)
    assert parsed["inference"]["count"] == 15 and parsed["warmup"]["count"] == 7


def test_apk_logcat_lines():
    parsed = parse_benchmark_output(fixture("apk_logcat_result.txt"))
    assert (parsed["init_ms"], parsed["inference_avg_ms"]) == (1007.529, 1.68792)
    running = parse_benchmark_output(fixture("apk_logcat_in_progress.txt"))
    assert running["inference_avg_ms"] is None and running["inference"] is None
    assert running["warmup"]["count"] == 1 and running["errors"] == []


def test_delegate_failures_keep_the_tools_reason():
    gpu = parse_benchmark_output(fixture("gpu_delegate_failure.txt"))
    assert gpu["delegate_error"].startswith("Failed to build program executable")
    nnapi = parse_benchmark_output(fixture("nnapi_delegate_failure.txt"))
    assert "NN API returned error ANEURALNETWORKS_OP_FAILED" in nnapi["delegate_error"]
    assert "Failed to apply NNAPI delegate." in nnapi["delegate_error"]
    assert nnapi["inference_avg_ms"] is None


@pytest.mark.parametrize("text", ["", "garbage\n\x00\x01 count=x avg=\nInference timings in us: Init: nan",
                                  "count=0\n[Node type]\n============================== Summary by node type"])
def test_odd_input_never_raises(text):
    parsed = parse_benchmark_output(text)
    assert parsed["inference_avg_ms"] is None and parsed["op_profile"] is None


def test_how_many_nodes_each_delegate_took_from_real_logs():
    # an app's log: the default XNNPACK delegate, then the GPU's, then XNNPACK on what the GPU left
    partial = parse_benchmark_output(fixture("gpu_partial_app_log.txt"))
    assert [(d["kernel"], d["nodes"], d["total_nodes"], d["partitions"]) for d in partial["delegation"]] == [
        ("TfLiteXNNPackDelegate", 52, 65, 6), ("TfLiteGpuDelegateV2", 29, 65, 3), ("TfLiteXNNPackDelegate", 25, 37, 2)]
    assert delegate_coverage(partial, "gpu") == {"delegated_nodes": 29, "cpu_nodes": 36, "delegate_partitions": 3,
                                                 "delegate_execution": "partially"}
    assert delegate_coverage(partial, "xnnpack")["delegated_nodes"] == 52  # the main graph's line, not the rest's
    full = parse_benchmark_output(fixture("gpu_full_delegation.txt"))  # benchmark_model on a phone
    assert full["delegate_applied"] == [{"delegate": "GPU", "executed": "completely", "kernels": None}]
    assert delegate_coverage(full, "gpu") == {"delegated_nodes": None, "cpu_nodes": 0, "delegate_partitions": None,
                                              "delegate_execution": "completely"}
    unused = parse_benchmark_output(fixture("nnapi_not_applied_apk_logcat.txt"))  # the APK's logcat
    assert delegate_coverage(unused, "nnapi") == {"delegated_nodes": 0, "cpu_nodes": None, "delegate_partitions": None,
                                                  "delegate_execution": "not"}
    oldest = parse_benchmark_output(fixture("xnnpack_oldest_replacing_logcat.txt"))  # no "out of M" yet
    assert delegate_coverage(oldest, "xnnpack") == {"delegated_nodes": 269, "cpu_nodes": None, "delegate_partitions": 13,
                                                    "delegate_execution": None}
    assert set(delegate_coverage(partial, "cpu").values()) == {None}  # no delegate asked for


def test_gpu_delegates_list_of_unsupported_ops():
    none = parse_benchmark_output(fixture("gpu_no_ops_app_log.txt"))  # an int8 model in a C++ app
    assert none["gpu_split"] == {"gpu_ops": 0, "cpu_ops": 31}
    assert delegate_coverage(none, "gpu")["delegated_nodes"] == 0
    # constructed from model_builder.cc's format: N " operations will run on the GPU, and the remaining " M ...
    log = "5 operations will run on the GPU, and the remaining 2 operations will run on the CPU.\n"
    assert delegate_coverage(parse_benchmark_output(log), "gpu") == {
        "delegated_nodes": 5, "cpu_nodes": 2, "delegate_partitions": None, "delegate_execution": "partially"}


def test_peak_memory_footprint_from_periodic_monitoring():
    parsed = parse_benchmark_output(fixture("constructed_peak_memory.txt"))
    assert parsed["memory"] == {"init_mb": 9.83594, "overall_mb": 31.4961, "peak_mb": 118.352}
    assert parsed["inference_avg_ms"] == 47.1128


def test_top_ops_of_the_timed_runs_with_their_node_names():
    top = parse_benchmark_output(fixture("op_profiling_nnapi.txt"))["top_ops"]
    assert len(top) == 10 and [row["node_type"] for row in top[:4]] == ["TfLiteNnapiDelegate"] * 3 + ["STRIDED_SLICE"]
    assert top[0] == {"node_type": "TfLiteNnapiDelegate", "start_ms": 8.377, "first_ms": 78.701, "avg_ms": 79.01,
                      "pct": 49.781, "cdf_pct": 49.781, "mem_kb": 0.0, "times_called": 1,
                      "name": "[model/tf.nn.silu_16/mul, model/tf.nn.silu_26/mul, model/tf.nn.silu_35/mul]:231"}


def test_adb_device_listings_from_real_outputs(fake_adb):
    fake_adb.reply("devices", stdout=adb_fixture("devices_l_unauthorized.txt"))
    assert list_devices(adb=find_adb()) == [
        {"serial": "984e71340418728d", "state": "unauthorized", "model": None},
        {"serial": "emulator-5554", "state": "device", "model": "Android SDK built for x86"}]
    fake_adb.reply("devices", stdout=adb_fixture("devices_one_unauthorized.txt"))
    assert [(d["serial"], d["state"]) for d in list_devices(adb=find_adb())] == [
        ("emulator-5558", "device"), ("fc74d864", "device"), ("emulator-5556", "unauthorized"), ("emulator-5554", "device")]


# --- the stand-in adb --------------------------------------------------------------------------

FAKE_ADB = r'''#!{python} -SE
# TEST DOUBLE for adb (the real one needs a phone). Appends its argv as a JSON line to
# $FAKE_ADB_LOG and replays the reply of the first rule in $FAKE_ADB_RULES whose "match" tokens
# start the argv (after "-s SERIAL"); a rule with several replies gives them in turn, then repeats
# the last one. "push" keeps a copy of what it was given in $FAKE_ADB_PUSHED (named as on the
# phone); a reply's "pull_from" is the file that "pull" copies to its destination.
import json, os, shutil, sys, time
argv = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\n")
rest = argv[2:] if argv[:1] == ["-s"] else argv
if rest[:1] == ["push"]:
    shutil.copy(rest[1], os.path.join(os.environ["FAKE_ADB_PUSHED"], os.path.basename(rest[2])))
with open(os.environ["FAKE_ADB_RULES"]) as f:
    rules = json.load(f)
for index, rule in enumerate(rules):
    if rest[: len(rule["match"])] == rule["match"]:
        counter = os.environ["FAKE_ADB_RULES"] + ".%d" % index
        used = int(open(counter).read()) if os.path.exists(counter) else 0
        open(counter, "w").write(str(used + 1))
        reply = rule["replies"][min(used, len(rule["replies"]) - 1)]
        time.sleep(reply.get("sleep", 0))
        if "pull_from" in reply:
            shutil.copy(reply["pull_from"], rest[-1])
        sys.stdout.write(reply.get("stdout", ""))
        sys.stderr.write(reply.get("stderr", ""))
        sys.exit(reply.get("rc", 0))
'''

GETPROP = """[ro.build.version.release]: [14]
[ro.build.version.sdk]: [34]
[ro.product.cpu.abi]: [arm64-v8a]
[ro.product.cpu.abilist]: [arm64-v8a,armeabi-v7a,armeabi]
[ro.product.manufacturer]: [Google]
[ro.product.model]: [Pixel 7]
[ro.board.platform]: [gs201]
[ro.hardware]: [panther]
"""


class FakeAdb:
    def __init__(self, folder: Path):
        self.folder = folder
        self.rules: list[dict] = []
        self.reply("devices", stdout=f"List of devices attached\n{SERIAL}\tdevice\n\n")
        self.reply("shell", "getprop", stdout=GETPROP)
        self.reply("push", stdout="1 file pushed.\n")
        self.reply(*BINARY_RUN, stdout=fixture("current_android_espcn.txt"))
        self.reply("shell", "pm", "list", "packages", stdout="package:org.tensorflow.lite.benchmark\n")

    def reply(self, *match: str, replies: list[dict] | None = None, **reply) -> None:
        """Answer commands starting with ``match``; later rules win over earlier ones."""
        self.rules.insert(0, {"match": list(match), "replies": replies or [reply]})
        (self.folder / "rules.json").write_text(json.dumps(self.rules))

    def calls(self) -> list[list[str]]:
        log = self.folder / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def runs(self) -> list[list[str]]:
        return [c for c in self.calls() if tuple(c[2:4]) == BINARY_RUN]

    def actions(self) -> list[list[str]]:
        """The calls that changed or ran something on a phone: all but adb's read-only queries."""
        queries = (["devices", "-l"], ["shell", "getprop"], ["shell", "pm", "list", "packages"])
        return [c for c in self.calls()
                if not any((c[2:] if c[:1] == ["-s"] else c)[: len(q)] == q for q in queries)]


@pytest.fixture
def fake_adb(tmp_path, monkeypatch) -> FakeAdb:
    folder = tmp_path / "fake_adb"
    folder.mkdir()
    (folder / "adb").write_text(FAKE_ADB.replace("{python}", sys.executable))
    (folder / "adb").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(folder / "calls.jsonl"))
    monkeypatch.setenv("FAKE_ADB_RULES", str(folder / "rules.json"))
    monkeypatch.setenv("FAKE_ADB_PUSHED", str(folder / "pushed"))
    (folder / "pushed").mkdir()
    for variable in ("ANDROID_HOME", "ANDROID_SDK_ROOT", android.BINARY_ENV):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(android, "LOGCAT_POLL_S", 0.0)
    return FakeAdb(folder)


def elf_header(machine: int) -> bytes:
    """The first 64 bytes of a 64-bit little-endian ELF executable for ``machine`` (183 = aarch64)."""
    return b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + machine.to_bytes(2, "little") + bytes(44)


@pytest.fixture
def binary(tmp_path) -> Path:
    path = tmp_path / "android_aarch64_benchmark_model"
    path.write_bytes(elf_header(183))
    return path


def tiny_tflite(path: Path, signature: tuple[int, ...] | None = None, channels: int = 3) -> Path:
    """A valid one-op (RELU) float model with a 1x8x8xC input (C = ``channels``, 3 by default), built
    without TensorFlow; its output equals its input for the non-negative pixels of an image."""
    from ai_edge_litert import schema_py_generated as schema

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.RELU
    code.version = 1
    tensors = []
    for index, name in enumerate(("input", "output")):
        tensor = schema.TensorT()
        tensor.shape = [1, 8, 8, channels]
        tensor.shapeSignature = list(signature or tensor.shape)
        tensor.type, tensor.buffer, tensor.name = schema.TensorType.FLOAT32, index + 1, name
        tensors.append(tensor)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [1], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [schema.BufferT() for _ in range(3)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


@pytest.fixture
def model(tmp_path) -> Path:
    return tiny_tflite(tmp_path / "sr x3.tflite")


# --- benchmark_on_android over the stand-in adb --------------------------------------------------


def test_binary_run_pushes_runs_and_reports(fake_adb, binary, model):
    lines = []
    results = benchmark_on_android(models=[model], delegate="gpu", threads=[1, 4], benchmark_binary=binary,
                                   op_profiling=True, runs=20, warmup_runs=3, log=lines.append)
    remote = "/data/local/tmp/sr_x3.tflite"
    assert fake_adb.calls()[:5] == [
        ["devices", "-l"],
        ["-s", SERIAL, "shell", "getprop"],
        ["-s", SERIAL, "push", str(binary), "/data/local/tmp/benchmark_model"],
        ["-s", SERIAL, "shell", "chmod", "+x", "/data/local/tmp/benchmark_model"],
        ["-s", SERIAL, "push", str(model), remote],
    ]
    common = ["--num_runs=20", "--warmup_runs=3", "--use_gpu=true", "--enable_op_profiling=true",
              "--report_peak_memory_footprint=true"]
    assert fake_adb.runs() == [["-s", SERIAL, *BINARY_RUN, f"--graph={remote}", f"--num_threads={n}", *common]
                               for n in (1, 4)]
    assert [r["threads"] for r in results] == [1, 4]
    result = results[0]
    assert result["model"] == "sr x3.tflite" and result["target"] == "android" and result["delegate"] == "gpu"
    assert result["device"] == {"serial": SERIAL, "model": "Pixel 7", "manufacturer": "Google", "soc": "gs201",
                                "android_version": "14", "sdk": 34, "abi": "arm64-v8a",
                                "abilist": ["arm64-v8a", "armeabi-v7a", "armeabi"]}
    assert result["input_shape"] == [1, 8, 8, 3]
    assert result["latency_ms_mean"] == 33.2094 and result["latency_ms_std"] == 0.45
    assert (result["latency_ms_min"], result["latency_ms_max"], result["runs"]) == (32.641, 34.005, 50)
    # this build prints no percentiles: the median falls back to the average and says so
    assert result["latency_ms_median"] == 33.2094 and result["latency_ms_p90"] is None
    assert "no median" in result["latency_note"]
    assert (result["init_ms"], result["first_inference_ms"], result["warmup_avg_ms"]) == (0.855, 49.06, 34.8251)
    assert result["memory"]["overall_mb"] == result["peak_memory_mb"] == 12.8672
    assert result["macs"] == count_macs(model)  # the model is timed, not counted, on the phone
    assert any("Pixel 7" in line for line in lines)


def test_android_results_have_the_host_schema_and_carry_memory_into_table_and_csv(fake_adb, binary, model, tmp_path):
    """One schema for both targets: the same CSV columns and table, and the phone's memory (the
    recorded tool's footprint delta, 12.8672 MB) in its peak-memory column."""
    import csv

    from mobile_sr.benchmark.schema import COLUMNS
    from tests.helpers import run_cli

    phone = run_cli("bench", model, "--android", "--benchmark-binary", binary, "--threads", "1", "--runs", "20",
                    "--json", tmp_path / "phone.json")
    host = run_cli("bench", model, "--threads", "1", "--runs", "3", "--json", tmp_path / "host.json")
    assert phone.exit_code == 0 and host.exit_code == 0, phone.output + host.output
    tables = [next(line for line in result.output.splitlines() if line.startswith("| model")) for result in (phone, host)]
    assert tables[0] == tables[1] and "peak MB" in tables[0]
    phone_row = next(line for line in phone.output.splitlines() if line.startswith("| sr x3.tflite | android"))
    assert phone_row.split("|")[-2].strip() == "12.9" and "Google Pixel 7" in phone_row
    rows = {}
    for target in ("phone", "host"):
        with open(tmp_path / f"{target}.csv", newline="") as handle:
            reader = csv.DictReader(handle)
            assert tuple(reader.fieldnames) == COLUMNS
            rows[target] = next(reader)
    assert rows["phone"]["peak_memory_mb"] == "12.8672" and rows["phone"]["latency_ms_mean"] == "33.2094"
    assert rows["host"]["target"] == "host" and float(rows["host"]["peak_memory_mb"]) >= 0
    (phone_json,), (host_json,) = (json.loads((tmp_path / f"{t}.json").read_text()) for t in ("phone", "host"))
    shared = {"model", "target", "delegate", "threads", "input_shape", "latency_ms_median", "latency_ms_p90", "runs", "macs",
              "latency_ms_mean", "peak_memory_mb", "hardware"}
    assert shared <= set(phone_json) & set(host_json)
    assert phone_json["peak_memory_mb"] == phone_json["memory"]["overall_mb"]


@pytest.mark.parametrize("delegate,accelerator,flags", [
    ("cpu", None, ["--use_xnnpack=false"]),
    ("xnnpack", None, ["--use_xnnpack=true"]),
    ("nnapi", "qti-dsp", ["--use_nnapi=true", "--nnapi_accelerator_name=qti-dsp"]),
])
def test_delegate_flags(fake_adb, binary, model, delegate, accelerator, flags):
    benchmark_on_android(models=[model], delegate=delegate, nnapi_accelerator=accelerator, serial=SERIAL,
                         benchmark_binary=binary, log=lambda _: None)
    (run,) = fake_adb.runs()
    assert run[4:] == ["--graph=/data/local/tmp/sr_x3.tflite", "--num_threads=1", "--num_runs=50",
                       "--warmup_runs=5", *flags, "--report_peak_memory_footprint=true"]


def test_binary_from_the_environment_and_op_profile(fake_adb, binary, model, monkeypatch):
    monkeypatch.setenv(android.BINARY_ENV, str(binary))
    fake_adb.reply(*BINARY_RUN, stdout=fixture("current_memory_delta.txt") + fixture("op_profiling_nnapi.txt"))
    (result,) = benchmark_on_android(models=[model], op_profiling=True, log=lambda _: None)
    assert ["-s", SERIAL, "push", str(binary), "/data/local/tmp/benchmark_model"] in fake_adb.calls()
    assert result["latency_ms_mean"] == 2950.34 and result["memory"]["init_mb"] == 4.21094
    assert [row["node_type"] for row in result["op_profile"]][0] == "TfLiteNnapiDelegate"


def test_apk_run_polls_logcat_until_the_result(fake_adb, model):
    fake_adb.reply("logcat", "-d", replies=[{"stdout": fixture("apk_logcat_in_progress.txt")},
                                            {"stdout": fixture("apk_logcat_result.txt")}])
    (result,) = benchmark_on_android(models=[model], use_apk=True, threads=[2], log=lambda _: None)
    calls = [c[2:] for c in fake_adb.calls()[2:]]
    assert calls[:4] == [
        ["shell", "pm", "list", "packages", "org.tensorflow.lite.benchmark"],
        ["push", str(model), "/data/local/tmp/sr_x3.tflite"],
        ["logcat", "-c"],
        ["shell", "am", "start", "-S", "-n", "org.tensorflow.lite.benchmark/.BenchmarkModelActivity", "--es", "args",
         '"--graph=/data/local/tmp/sr_x3.tflite --num_threads=2 --num_runs=50 --warmup_runs=5 --use_xnnpack=false '
         '--report_peak_memory_footprint=true"'],
    ]
    assert calls[4:] == [["logcat", "-d", "-s", "tflite"]] * 3  # still running, done, settled read
    assert not any("benchmark_model" in " ".join(c) for c in calls)
    assert result["runner"] == "apk" and result["init_ms"] == 1007.529 and result["latency_ms_mean"] == 1.68792


def test_several_devices_in_one_call_make_one_table(fake_adb, binary, model):
    fake_adb.reply("devices", stdout=adb_fixture("devices_one_unauthorized.txt"))
    lines = []
    results = benchmark_on_android(models=[model], serial="fc74d864,emulator-5554", threads=[1, 2],
                                   benchmark_binary=binary, log=lines.append)
    assert [(r["device"]["serial"], r["threads"]) for r in results] == [
        ("fc74d864", 1), ("fc74d864", 2), ("emulator-5554", 1), ("emulator-5554", 2)]
    assert [run[1] for run in fake_adb.runs()] == ["fc74d864", "fc74d864", "emulator-5554", "emulator-5554"]
    for serial in ("fc74d864", "emulator-5554"):  # each phone gets the tool before its runs
        assert ["-s", serial, "push", str(binary), "/data/local/tmp/benchmark_model"] in fake_adb.calls()
    rows = [line for line in to_table(results).splitlines() if line.startswith("| sr x3.tflite")]
    assert len(rows) == 4 and "Google Pixel 7, Android 14 (SDK 34), SoC gs201, arm64-v8a, serial fc74d864" in rows[0]
    assert "serial emulator-5554" in rows[2]
    # "all": every attached device, and an unauthorized one stops the call before anything is pushed
    with pytest.raises(AndroidBenchError, match="^device emulator-5556 is unauthorized: unlock the phone"):
        benchmark_on_android(models=[model], serial="all", benchmark_binary=binary, log=lambda _: None)
    pushes = len([c for c in fake_adb.calls() if "push" in c])
    fake_adb.reply("devices", stdout=f"List of devices attached\n{SERIAL}\tdevice\nemulator-5554\tdevice\n")
    results = benchmark_on_android(models=[model], serial="all", benchmark_binary=binary, log=lambda _: None)
    assert [r["device"]["serial"] for r in results] == [SERIAL, "emulator-5554"]
    assert len([c for c in fake_adb.calls() if "push" in c]) == pushes + 4


def test_a_run_reports_delegation_peak_memory_and_slowest_node_types(fake_adb, binary, model):
    # pieces of three recordings, concatenated: the app log's delegation lines, the NNAPI op profile
    # and the peak-memory lines; this test checks what a result and its progress line carry
    fake_adb.reply(*BINARY_RUN, stdout=fixture("gpu_partial_app_log.txt") + fixture("op_profiling_nnapi.txt")
                   + fixture("constructed_peak_memory.txt"))
    lines = []
    (result,) = benchmark_on_android(models=[model], delegate="gpu", op_profiling=True, benchmark_binary=binary,
                                     log=lines.append)
    assert (result["delegated_nodes"], result["cpu_nodes"], result["delegate_partitions"]) == (29, 36, 3)
    assert result["delegate_execution"] == "partially" and len(result["delegation"]) == 3
    assert result["memory"]["peak_mb"] == 118.352 and result["peak_memory_mb"] == 31.4961
    assert result["top_op_types"] == "TfLiteNnapiDelegate 94.2%, STRIDED_SLICE 5.3%, RESIZE_NEAREST_NEIGHBOR 0.6%"
    assert len(result["op_profile"]) == 3 and result["top_ops"][0]["avg_ms"] == 79.01
    assert lines[-1] == (f"sr x3.tflite on {SERIAL}: median 47.11 ms, average 47.11 ms; the gpu delegate took 29 of 65 "
                         "nodes (36 left to the CPU); peak memory 118.4 MB; slowest node types: TfLiteNnapiDelegate "
                         "94.2%, STRIDED_SLICE 5.3%, RESIZE_NEAREST_NEIGHBOR 0.6%")


def fitted_default_frame() -> np.ndarray:
    """The default check frame (scikit-image's chelsea, 300x451) as the 8x8 model sees it: its
    centre square, shrunk with OpenCV's area filter."""
    name, rgb = default_photos("val")[0]
    assert name == "chelsea" and rgb.shape == (300, 451, 3)
    return cv2.resize(rgb[:, 75:375], (8, 8), interpolation=cv2.INTER_AREA)


def test_output_check_runs_a_real_frame_through_the_model_on_the_phone(fake_adb, binary, model):
    pushed = fake_adb.folder / "pushed" / "mobile_sr_frame.bin"
    # the tool's --output_filepath file holds the raw output tensor; the RELU model's output is its input
    fake_adb.reply("pull", pull_from=str(pushed), stdout="1 file pulled.\n")
    lines = []
    results = benchmark_on_android(models=[model], delegate="gpu", threads=[2, 4], check_frame="default",
                                   benchmark_binary=binary, log=lines.append)
    frame = np.frombuffer(pushed.read_bytes(), np.float32).reshape(1, 8, 8, 3)
    np.testing.assert_array_equal(frame[0], fitted_default_frame().astype(np.float32))
    check_run, *timed = fake_adb.runs()
    assert check_run[4:] == ["--graph=/data/local/tmp/sr_x3.tflite", "--num_threads=2", "--num_runs=1", "--warmup_runs=0",
                             "--use_gpu=true", "--report_peak_memory_footprint=true", "--input_layer=frame",
                             "--input_layer_shape=1,8,8,3",
                             "--input_layer_value_files=frame:/data/local/tmp/mobile_sr_frame.bin",
                             "--output_filepath=/data/local/tmp/mobile_sr_output.bin"]
    assert len(timed) == 2 and not any("--output_filepath" in " ".join(run) for run in timed)
    assert any(c[:4] == ["-s", SERIAL, "pull", "/data/local/tmp/mobile_sr_output.bin"] for c in fake_adb.calls())
    assert ["-s", SERIAL, "shell", "rm", "-f", "/data/local/tmp/mobile_sr_frame.bin",
            "/data/local/tmp/mobile_sr_output.bin"] in fake_adb.calls()  # nothing left on the phone
    for result in results:
        assert (result["vs_litert_frame"], result["vs_litert_max_diff_lsb"], result["vs_litert_differing_pixels"],
                result["vs_litert_psnr_db"]) == ("chelsea", 0.0, 0.0, math.inf)
    assert f"sr x3.tflite on {SERIAL}: output on chelsea identical to the host's LiteRT output" in lines
    assert "max 0 LSB, 0.00% of pixels" in to_table(results)


def test_output_check_measures_how_far_the_phone_is_from_the_host(fake_adb, binary, model, tmp_path):
    frame = fitted_default_frame().astype(np.float32)[None]
    frame[0, 0, 0, 0] += 3  # one value of one pixel 3 levels off
    output = tmp_path / "phone_output.bin"
    output.write_bytes(frame.tobytes())
    fake_adb.reply("pull", pull_from=str(output))
    (result,) = benchmark_on_android(models=[model], check_frame="default", benchmark_binary=binary, log=lambda _: None)
    assert result["vs_litert_max_diff_lsb"] == 3.0 and result["vs_litert_differing_pixels"] == 1 / 64
    assert result["vs_litert_psnr_db"] == pytest.approx(10 * math.log10(255**2 / (9 / 192)))
    output.write_bytes(frame.tobytes()[:-4])  # one value short
    with pytest.raises(AndroidBenchError, match=f"benchmark_model on {SERIAL} wrote 764 bytes of output for sr x3.tflite, "
                                                "not the 768 bytes its output tensors hold"):
        benchmark_on_android(models=[model], check_frame="default", benchmark_binary=binary, log=lambda _: None)


def test_output_check_with_a_tool_too_old_for_output_filepath(fake_adb, binary, model):
    # not a captured log: benchmark_model.cc's warning ("Unconsumed cmdline flags: " << flags, at
    # WARN) ahead of a real log, and adb's message for a missing remote file
    fake_adb.reply(*BINARY_RUN, stdout="WARNING: Unconsumed cmdline flags: --output_filepath=/data/local/tmp/"
                                       "mobile_sr_output.bin\n" + fixture("current_android_espcn.txt"))
    fake_adb.reply("pull", rc=1, stderr="adb: error: failed to stat remote object '/data/local/tmp/mobile_sr_output.bin': "
                                        "No such file or directory\n")
    with pytest.raises(AndroidBenchError, match=f"^benchmark_model wrote no output file for sr x3.tflite on {SERIAL} "
                                                "\\(it ignored the flag: 'WARNING: Unconsumed cmdline flags: "
                                                "--output_filepath=.*'\\); the output check needs a benchmark_model "
                                                "that knows --output_filepath"):
        benchmark_on_android(models=[model], check_frame="default", benchmark_binary=binary, log=lambda _: None)


def test_output_check_refusals(fake_adb, binary, model, tmp_path):
    six_channels = tiny_tflite(tmp_path / "hdr.tflite", channels=6)
    with pytest.raises(AndroidBenchError) as raised:
        benchmark_on_android(models=[six_channels, model], check_frame=tmp_path / "missing.png",
                             benchmark_binary=binary, log=lambda _: None)
    assert str(raised.value) == f"{tmp_path / 'missing.png'}: no such file"  # the models wait for a frame
    with pytest.raises(AndroidBenchError, match=f"^{six_channels}: the output check feeds one RGB frame, but the model "
                                                "takes 1x8x8x6; leave out --check-output for it$"):
        benchmark_on_android(models=[six_channels, model], check_frame="default", benchmark_binary=binary,
                             log=lambda _: None)
    with pytest.raises(AndroidBenchError, match="output check runs the benchmark_model binary.*drop --apk or --check-output"):
        benchmark_on_android(models=[model], check_frame="default", use_apk=True, log=lambda _: None)
    assert fake_adb.actions() == []


def test_cli_writes_profile_delegation_and_output_check_for_every_phone(fake_adb, binary, model, tmp_path):
    import csv

    from tests.helpers import run_cli

    # `adb devices -l` in adb's layout (serial, state, then key:value details)
    fake_adb.reply("devices", stdout=f"List of devices attached\n{SERIAL}               device usb:1-1 product:panther "
                                     "model:Pixel_7 device:panther transport_id:1\nemulator-5554          device "
                                     "product:sdk_gphone64_arm64 model:sdk_gphone64_arm64 device:emu64a transport_id:2\n")
    fake_adb.reply(*BINARY_RUN, stdout=fixture("gpu_partial_app_log.txt") + fixture("op_profiling_nnapi.txt")
                   + fixture("constructed_peak_memory.txt"))  # as in the test above
    fake_adb.reply("pull", pull_from=str(fake_adb.folder / "pushed" / "mobile_sr_frame.bin"))
    result = run_cli("bench", model, "--android", "--serial", "all", "--delegate", "gpu", "--benchmark-binary", binary,
                     "--threads", "1", "--profile", "--check-output", "default", "--json", tmp_path / "phones.json")
    assert result.exit_code == 0, result.output
    assert "wrote " + str(tmp_path / "phones.json") + " and phones.csv and phones_ops.csv" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| sr x3.tflite")]
    assert len(rows) == 2 and "serial emulator-5554" in rows[1] and "max 0 LSB" in rows[0]
    with open(tmp_path / "phones.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["hardware"].rsplit(" ", 1)[1] for row in table] == [SERIAL, "emulator-5554"]
    assert {(row["delegated_nodes"], row["cpu_nodes"], row["memory_peak_mb"], row["vs_litert_psnr_db"],
             row["vs_litert_frame"]) for row in table} == {("29", "36", "118.352", "inf", "chelsea")}
    assert table[0]["top_op_types"].startswith("TfLiteNnapiDelegate 94.2%")
    with open(tmp_path / "phones_ops.csv", newline="") as handle:
        ops = list(csv.DictReader(handle))
    assert [(row["hardware"].rsplit(" ", 1)[1], row["node_type"]) for row in ops] == [
        (serial, node) for serial in (SERIAL, "emulator-5554")
        for node in ("TfLiteNnapiDelegate", "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR")]
    assert ops[0]["count"] == "3" and ops[0]["avg_ms"] == "149.483" and ops[0]["times_called"] == "3"
    first = json.loads((tmp_path / "phones.json").read_text())[0]
    assert first["op_profile"][0]["node_type"] == "TfLiteNnapiDelegate" and first["vs_litert_psnr_db"] == math.inf


# --- errors ------------------------------------------------------------------------------------


def test_no_adb_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for variable in ("ANDROID_HOME", "ANDROID_SDK_ROOT"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(AndroidBenchError, match="adb not found on PATH; install Android platform-tools"):
        find_adb()


@pytest.mark.parametrize("devices,serial,message", [
    ("", None, "no Android device found: connect the phone by USB, enable USB debugging"),
    (f"{SERIAL}\tunauthorized\n", None, f"device {SERIAL} is unauthorized: unlock the phone and accept"),
    (f"{SERIAL}\tdevice\nemulator-5554\tdevice\n", None,
     f"several devices connected \\({SERIAL} \\(device\\), emulator-5554 \\(device\\)\\); choose one with "
     "--serial SERIAL, several with --serial SERIAL1,SERIAL2, or every one with --serial all"),
    (f"{SERIAL}\tdevice\n", "0123ABC", f"device '0123ABC' not found \\(connected: {SERIAL} \\(device\\)\\)"),
    (f"{SERIAL}\toffline\n", SERIAL, "is offline: reconnect the USB cable"),
    (f"{SERIAL}\tno permissions (missing udev rules? user is in the plugdev group); see [http://x]\n", None,
     f"no permission to open device {SERIAL} \\('no permissions \\(missing udev rules\\? .*\\]'\\): set up udev rules "
     ".*'adb kill-server'"),
])
def test_device_selection_errors(fake_adb, binary, model, devices, serial, message):
    fake_adb.reply("devices", stdout=f"* daemon started successfully\nList of devices attached\n{devices}\n")
    with pytest.raises(AndroidBenchError, match=message):
        benchmark_on_android(models=[model], serial=serial, benchmark_binary=binary, log=lambda _: None)


def test_device_line_names_only_what_getprop_said(fake_adb, binary, model):
    fake_adb.reply("shell", "getprop", stdout="[ro.product.model]: [Pixel]\n[ro.product.cpu.abi]: [arm64-v8a]\n"
                                              "[ro.build.version.sdk]: [34]\n[ro.soc.model]: []\n")
    lines = []
    benchmark_on_android(models=[model], benchmark_binary=binary, log=lines.append)
    assert lines[0] == f"{SERIAL}: Pixel, SDK 34, arm64-v8a"


def test_missing_or_wrong_binary_fails_before_anything_is_pushed(fake_adb, model, tmp_path):
    with pytest.raises(AndroidBenchError, match="no benchmark_model binary given: set MOBILE_SR_BENCHMARK_MODEL"):
        benchmark_on_android(models=[model], log=lambda _: None)
    with pytest.raises(AndroidBenchError, match="benchmark binary .*nope not found"):
        benchmark_on_android(models=[model], benchmark_binary=tmp_path / "nope", log=lambda _: None)
    apk = tmp_path / "benchmark.apk"
    apk.write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(AndroidBenchError, match="is not an executable \\(no ELF header\\)"):
        benchmark_on_android(models=[model], benchmark_binary=apk, log=lambda _: None)
    assert fake_adb.calls() and fake_adb.actions() == []  # the devices were looked at, not touched


def test_binary_for_the_wrong_cpu(fake_adb, model, tmp_path):
    x86 = tmp_path / "linux_x86-64_benchmark_model"
    x86.write_bytes(elf_header(62))
    with pytest.raises(AndroidBenchError, match=f"built for x86_64 but {SERIAL} runs arm64-v8a"):
        benchmark_on_android(models=[model], benchmark_binary=x86, log=lambda _: None)


@pytest.mark.parametrize("name,delegate,reason", [
    ("gpu_delegate_failure.txt", "gpu", "Failed to build program executable - Build program failure"),
    ("nnapi_delegate_failure.txt", "nnapi",
     "NN API returned error ANEURALNETWORKS_OP_FAILED at line 3779 .*\\(Failed to apply NNAPI delegate.\\)"),
])
def test_delegate_failure_reports_the_tools_reason(fake_adb, binary, model, name, delegate, reason):
    fake_adb.reply(*BINARY_RUN, stdout=fixture(name), rc=1)
    message = f"the {delegate} delegate failed on {SERIAL} for sr x3.tflite: {reason}"
    with pytest.raises(AndroidBenchError, match=message):
        benchmark_on_android(models=[model], delegate=delegate, benchmark_binary=binary, log=lambda _: None)


def test_model_rejected_by_the_tool(fake_adb, binary, model):
    # Not a captured log: the tool's own message strings ("Failed to mmap model " << graph in
    # benchmark_tflite_model.cc, then "Benchmarking failed."); no published real log was found.
    fake_adb.reply(*BINARY_RUN, stderr="ERROR: Failed to mmap model /data/local/tmp/sr_x3.tflite\n"
                                       "ERROR: Benchmarking failed.\n", rc=1)
    with pytest.raises(AndroidBenchError, match="benchmark_model rejected sr x3.tflite on .*: Failed to mmap model"):
        benchmark_on_android(models=[model], benchmark_binary=binary, log=lambda _: None)


def test_apk_that_does_not_start_is_reported_at_once(fake_adb, model):
    # what 'am start' prints (exit status 0) when the activity is missing
    fake_adb.reply("shell", "am", "start", stdout="Starting: Intent { cmp=org.tensorflow.lite.benchmark/.BenchmarkModelActivity }\n"
                                                  "Error type 3\nError: Activity class {org.tensorflow.lite.benchmark/"
                                                  "org.tensorflow.lite.benchmark.BenchmarkModelActivity} does not exist.\n")
    with pytest.raises(AndroidBenchError, match=f"benchmark APK did not start on {SERIAL} \\(Error: Activity class .* "
                                                "does not exist.\\); reinstall it"):
        benchmark_on_android(models=[model], use_apk=True, log=lambda _: None)
    assert not any(call[2:4] == ["logcat", "-d"] for call in fake_adb.calls())


def test_apk_wait_shows_progress_then_times_out(fake_adb, model, monkeypatch):
    monkeypatch.setattr(android, "RUN_TIMEOUT_S", 1.0)
    monkeypatch.setattr(android, "PROGRESS_S", 0.3)
    monkeypatch.setattr(android, "LOGCAT_POLL_S", 0.05)
    fake_adb.reply("logcat", "-d", stdout="")
    lines = []
    with pytest.raises(AndroidBenchError, match=f"the benchmark APK logged no result within 1 s on {SERIAL}"):
        benchmark_on_android(models=[model], use_apk=True, log=lines.append)
    waiting = [line for line in lines if line.startswith(f"waiting for the benchmark APK on {SERIAL}: ")]
    assert len(waiting) >= 2 and "giving up in" in waiting[0]


def test_apk_not_installed(fake_adb, model):
    fake_adb.reply("shell", "pm", "list", "packages", stdout="")
    with pytest.raises(AndroidBenchError, match="benchmark APK .* is not installed on .*; install it with 'adb"):
        benchmark_on_android(models=[model], use_apk=True, log=lambda _: None)


def test_failed_and_hanging_adb_commands(fake_adb, binary, model, monkeypatch):
    fake_adb.reply("push", rc=1, stderr="adb: error: failed to copy 'x' to '/data/local/tmp/x': No space left\n")
    with pytest.raises(AndroidBenchError, match="push .*failed: adb: error: .*No space left; check"):
        benchmark_on_android(models=[model], benchmark_binary=binary, log=lambda _: None)
    monkeypatch.setattr(android, "ADB_TIMEOUT_S", 0.5)
    fake_adb.reply("devices", sleep=5)
    with pytest.raises(AndroidBenchError, match="'adb devices -l' did not finish within .* s; check the USB connection"):
        benchmark_on_android(models=[model], benchmark_binary=binary, log=lambda _: None)


def test_dynamic_input_model_is_refused_before_anything_is_pushed(fake_adb, binary, tmp_path):
    dynamic = tiny_tflite(tmp_path / "dynamic.tflite", signature=(1, -1, -1, 3))
    with pytest.raises(AndroidBenchError, match="dynamic input size.*fixed --input-size"):
        benchmark_on_android(models=[dynamic], benchmark_binary=binary, log=lambda _: None)
    assert fake_adb.actions() == []


def test_missing_binary_and_missing_adb_are_named_together(model, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no_adb_here"))
    for variable in ("ANDROID_HOME", "ANDROID_SDK_ROOT", android.BINARY_ENV):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(AndroidBenchError) as raised:
        benchmark_on_android(models=[model], log=lambda _: None)
    message = str(raised.value)
    assert message.startswith("2 problems to fix before benchmarking on a phone: (1) no benchmark_model binary given: "
                              "set MOBILE_SR_BENCHMARK_MODEL")
    assert "; (2) adb not found on PATH; install Android platform-tools" in message and "\n" not in message
    # with the APK, no binary is needed: adb alone is missing, in its own words
    with pytest.raises(AndroidBenchError, match="^adb not found on PATH; install Android platform-tools"):
        benchmark_on_android(models=[model], use_apk=True, log=lambda _: None)


def test_every_problem_found_before_the_phone_is_reported_at_once(fake_adb, model, tmp_path):
    dynamic = tiny_tflite(tmp_path / "dynamic.tflite", signature=(1, -1, -1, 3))
    missing = tmp_path / "missing.tflite"
    with pytest.raises(AndroidBenchError) as raised:
        benchmark_on_android(models=[model, dynamic, missing], benchmark_binary=tmp_path / "nope", log=lambda _: None)
    problems = str(raised.value)
    assert problems.startswith("3 problems to fix before benchmarking on a phone: (1) ")
    assert "dynamic input size" in problems and f"{missing}: no such file" in problems
    assert "(3) benchmark binary " in problems and "nope not found" in problems
    assert fake_adb.actions() == []  # the phone was looked at, but nothing was pushed or run


def test_device_problems_are_named_with_every_other_problem(fake_adb, model, tmp_path):
    """A wrong binary, an unauthorized phone and a missing frame, found together before anything is pushed."""
    fake_adb.reply("devices", stdout=f"List of devices attached\n{SERIAL}\tdevice\nemulator-5556\tunauthorized\n")
    x86 = tmp_path / "linux_x86-64_benchmark_model"
    x86.write_bytes(elf_header(62))
    with pytest.raises(AndroidBenchError) as raised:
        benchmark_on_android(models=[model], serial="all", benchmark_binary=x86, check_frame=tmp_path / "frame.png",
                             log=lambda _: None)
    problems = str(raised.value)
    assert problems.startswith(f"3 problems to fix before benchmarking on a phone: (1) {tmp_path / 'frame.png'}: no such "
                               f"file; (2) device emulator-5556 is unauthorized: unlock the phone")
    assert f"; (3) {x86} is built for x86_64 but {SERIAL} runs arm64-v8a" in problems
    assert fake_adb.actions() == []


def test_apk_missing_on_one_of_several_phones(fake_adb, model):
    fake_adb.reply("devices", stdout=f"List of devices attached\n{SERIAL}\tdevice\nemulator-5554\tdevice\n")
    fake_adb.reply("shell", "pm", "list", "packages", replies=[{"stdout": "package:org.tensorflow.lite.benchmark\n"},
                                                                {"stdout": ""}])
    with pytest.raises(AndroidBenchError, match="^TFLite's benchmark APK .* is not installed on emulator-5554; install"):
        benchmark_on_android(models=[model], serial=f"{SERIAL},emulator-5554", use_apk=True, log=lambda _: None)
    assert fake_adb.actions() == []


def test_a_serial_list_that_names_no_device(fake_adb, binary, model):
    with pytest.raises(AndroidBenchError, match="^--serial ' , ' names no device; give a serial from 'adb devices'"):
        benchmark_on_android(models=[model], serial=" , ", benchmark_binary=binary, log=lambda _: None)
    assert fake_adb.calls() == []


def test_cli_names_every_missing_prerequisite_in_one_line(model, tmp_path, monkeypatch):
    from tests.helpers import run_cli

    monkeypatch.setenv("PATH", str(tmp_path / "no_adb_here"))
    for variable in ("ANDROID_HOME", "ANDROID_SDK_ROOT", android.BINARY_ENV):
        monkeypatch.delenv(variable, raising=False)
    result = run_cli("bench", model, "--android", "--benchmark-binary", tmp_path / "nope")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: 2 problems") and "nope not found" in line and "adb not found on PATH" in line


# --- android_bench/run_benchmark.sh over the same stand-in adb --------------------------------


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_script_runs_every_model_and_thread_count(fake_adb, binary, model):
    proc = run_script("--binary", binary, "--delegate", "nnapi", "--nnapi-accelerator", "qti-dsp",
                      "--threads", "1,4", "--runs", "10", "--profile", model)
    assert proc.returncode == 0, proc.stderr
    assert f"device: {SERIAL} Google Pixel 7, Android 14 (SDK 34), SoC gs201, ABI arm64-v8a" in proc.stdout
    assert proc.stdout.count("Inference timings in us: Init: 855") == 2
    assert fake_adb.runs() == [["-s", SERIAL, *BINARY_RUN, "--graph=/data/local/tmp/sr_x3.tflite", f"--num_threads={n}",
                                "--num_runs=10", "--warmup_runs=5", "--use_nnapi=true",
                                "--nnapi_accelerator_name=qti-dsp", "--enable_op_profiling=true",
                                "--report_peak_memory_footprint=true"] for n in (1, 4)]


@pytest.mark.parametrize("setup,args,message", [
    ({"devices": "List of devices attached\n\n"}, [], "error: no Android device found"),
    ({"devices": f"List of devices attached\n{SERIAL}\tunauthorized\n"}, [], f"error: device {SERIAL} is unauthorized"),
    ({"devices": f"* daemon not running; starting now at tcp:5037\n* daemon started successfully\nList of devices attached\n"
                 f"{SERIAL}\tunauthorized\n"}, [], f"error: device {SERIAL} is unauthorized"),
    ({"devices": f"List of devices attached\n{SERIAL}\tno permissions (missing udev rules? user is in the plugdev group)\n"},
     [], f"error: adb has no permission to open device {SERIAL} ('no permissions (missing udev rules? user is in the "
         "plugdev group)'): set up udev rules (https://developer.android.com/studio/run/device), replug it and run "
         "'adb kill-server'"),
    ({"devices": f"List of devices attached\n{SERIAL}\tdevice\nemulator-5554\tdevice\n"}, [],
     f"error: several devices connected ({SERIAL}, emulator-5554); choose one with --serial"),
    ({"run": "nnapi_delegate_failure.txt"}, ["--delegate", "nnapi"],
     f"error: the nnapi delegate failed on {SERIAL} for MODEL: NN API returned error ANEURALNETWORKS_OP_FAILED"),
    ({}, ["--binary", "/nonexistent/benchmark_model"], "error: benchmark binary /nonexistent/benchmark_model not"),
])
def test_script_errors_are_one_line_on_stderr(fake_adb, binary, model, setup, args, message):
    if "devices" in setup:
        fake_adb.reply("devices", stdout=setup["devices"])
    if "run" in setup:
        fake_adb.reply(*BINARY_RUN, stdout=fixture(setup["run"]), rc=1)
    proc = run_script("--binary", binary, *args, model)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(message.replace("MODEL", str(model)))


def test_script_without_binary_or_adb(model, binary, tmp_path, monkeypatch):
    monkeypatch.delenv(android.BINARY_ENV, raising=False)
    assert "error: no benchmark_model binary: pass --binary PATH" in run_script(model).stderr
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # bash and coreutils, no adb
    if any(Path(folder, "adb").exists() for folder in ("/usr/bin", "/bin")):
        pytest.skip("a real adb is installed in /usr/bin or /bin")
    assert run_script("--binary", binary, model).stderr.startswith("error: adb not found on PATH")


def test_script_checks_the_model_file_and_the_binary_cpu(fake_adb, binary, model, tmp_path):
    not_tflite = tmp_path / "random.tflite"
    not_tflite.write_bytes(b"\x00\x01garbage" * 8)
    proc = run_script("--binary", binary, not_tflite)
    assert proc.returncode == 1 and fake_adb.calls() == []  # refused before touching the phone
    assert proc.stderr == f"error: {not_tflite} is not a TFLite model (no 'TFL3' identifier at bytes 4..7); " \
                          "export one with 'mobile-sr export'\n"
    x86 = tmp_path / "linux_x86-64_benchmark_model"
    x86.write_bytes(elf_header(62))
    proc = run_script("--binary", x86, model)
    assert proc.returncode == 1 and fake_adb.calls() == [["devices"], ["-s", SERIAL, "shell", "getprop"]]
    assert proc.stderr == f"error: {x86} is built for x86_64 but {SERIAL} runs arm64-v8a, armeabi-v7a, armeabi; " \
                          "use the android_aarch64 (arm64-v8a) build of benchmark_model\n"


def test_script_device_line_names_only_what_getprop_said(fake_adb, binary, model):
    fake_adb.reply("shell", "getprop", stdout="[ro.product.model]: [Pixel]\n[ro.product.cpu.abi]: [arm64-v8a]\n"
                                              "[ro.build.version.sdk]: [34]\n")
    proc = run_script("--binary", binary, model)
    assert proc.returncode == 0, proc.stderr
    assert f"device: {SERIAL} Pixel, SDK 34, ABI arm64-v8a\n" in proc.stdout


def test_script_runs_on_several_devices_or_all(fake_adb, binary, model):
    fake_adb.reply("devices", stdout=adb_fixture("devices_one_unauthorized.txt"))
    proc = run_script("--binary", binary, "--serial", "fc74d864,emulator-5554", model)
    assert proc.returncode == 0, proc.stderr
    assert [run[1] for run in fake_adb.runs()] == ["fc74d864", "emulator-5554"]
    assert proc.stdout.count("device: ") == 2 and "=== emulator-5554 " in proc.stdout
    proc = run_script("--binary", binary, "--serial", "all", model)
    assert proc.returncode == 1 and len(fake_adb.runs()) == 2  # the unauthorized device stops it before any run
    assert proc.stderr.startswith("error: device emulator-5556 is unauthorized")
