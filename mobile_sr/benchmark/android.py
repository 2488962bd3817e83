"""Latency of .tflite models on an Android phone over adb, measured by TensorFlow Lite's official
``benchmark_model`` tool: its native binary (pushed to /data/local/tmp and run with ``adb shell``)
or its benchmark APK (started with ``am start`` and read back from logcat), on one phone or several.
Besides the latency it reads, from the tool's own log, the per-operator profile, how many nodes the
delegate took, and the peak memory; and it can run a real frame through each model on the phone and
compare the output with the host's LiteRT output (the tool's ``--input_layer_value_files`` and
``--output_filepath``).

mobile-sr never downloads the tool: the user points to a prebuilt ``android_aarch64_benchmark_model``
(argument or MOBILE_SR_BENCHMARK_MODEL) or installs the APK. Every adb call has a timeout, and
every failure (no adb, no or several devices, an unauthorized phone, a missing tool, a delegate or
model the tool rejects) is an AndroidBenchError whose one-line message says how to fix it. Every
prerequisite (the models, the tool, adb, the frame, each device's state, ABI and APK) is checked
before anything is pushed, and all the problems found are reported at once.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

import cv2
import numpy as np

from mobile_sr.benchmark.schema import BenchmarkResult
from mobile_sr.core.errors import AndroidBenchError, MobileSRError
from mobile_sr.core.images import load_rgb
from mobile_sr.data.locations import default_photos
from mobile_sr.metrics import psnr
from mobile_sr.runtimes import output_agreement
from mobile_sr.tflite import count_macs, dequantize, error_reason, load_interpreter, quantize, shape_text

DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")
BINARY_ENV = "MOBILE_SR_BENCHMARK_MODEL"
REMOTE_DIR = "/data/local/tmp"
REMOTE_BINARY = f"{REMOTE_DIR}/benchmark_model"
APK_PACKAGE = "org.tensorflow.lite.benchmark"
APK_ACTIVITY = f"{APK_PACKAGE}/.BenchmarkModelActivity"

ADB_TIMEOUT_S = 30.0  # devices, getprop, chmod, pm, am, logcat
PUSH_TIMEOUT_S = 300.0  # a large model over a slow USB link
# The tool stops its warm-up and its timed phase after 150 s each (--max_secs default); add
# initialization (GPU shader compilation can take tens of seconds) and slack.
RUN_TIMEOUT_S = 420.0
LOGCAT_POLL_S = 2.0
PROGRESS_S = 30.0  # how often a run of the APK, which prints nothing until it ends, says it is still waiting

_DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=false"],  # the tool applies XNNPACK by default; plain CPU kernels need this
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
}
# the delegate provider's name in "Explicitly applied GPU delegate ..." and the prefix of its kernel's
# name in "Replacing 29 out of 65 node(s) with delegate (TfLiteGpuDelegateV2) node ..."
_DELEGATE_NAMES = {"xnnpack": ("XNNPACK", "TfLiteXNNPackDelegate"), "gpu": ("GPU", "TfLiteGpuDelegate"),
                   "nnapi": ("NNAPI", "TfLiteNnapiDelegate")}
ALL_DEVICES = "all"  # --serial all: every attached device
DEFAULT_FRAME = "default"  # the output check's frame: the first of scikit-image's validation photos
# The output check names the input by position: --input_layer_value_files splits its items at ':'
# (older builds cannot escape it) and exported input names hold one ("serving_default_x:0"); with
# another name the tool only warns and fills the inputs in order.
CHECK_INPUT_NAME = "frame"
TOP_OP_TYPES = 3  # node types in a result's top_op_types
_NO_DEVICE = ("no Android device found: connect the phone by USB, enable USB debugging "
              "(Settings > Developer options) and check that 'adb devices' lists it")

# ELF e_machine -> Android ABIs that can run it
_ELF_ABIS = {183: ("arm64-v8a",), 40: ("armeabi-v7a", "armeabi"), 62: ("x86_64",), 3: ("x86",)}


# --- adb plumbing ---------------------------------------------------------------------------


def _last_line(proc: subprocess.CompletedProcess) -> str:
    """adb's own complaint: the last line on stderr, else on stdout."""
    for stream in (proc.stderr, proc.stdout):
        lines = [line.strip() for line in stream.splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return f"exit status {proc.returncode}"


def _run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=timeout,
                              stdin=subprocess.DEVNULL)  # adb shell would otherwise read our stdin
    except subprocess.TimeoutExpired:
        shown = " ".join(["adb", *args[1:]])
        raise AndroidBenchError(f"'{shown}' did not finish within {timeout:.0f} s; check the USB connection "
                                "('adb devices'), unlock the phone and retry") from None
    except OSError as exc:
        raise AndroidBenchError(f"cannot run {args[0]} ({exc.strerror or exc}); "
                                "reinstall Android platform-tools") from None


def _adb(adb: str, serial: str, *args: str, timeout: float = ADB_TIMEOUT_S,
         check: bool = True) -> subprocess.CompletedProcess:
    proc = _run([adb, "-s", serial, *args], timeout=timeout)
    if check and proc.returncode != 0:
        raise AndroidBenchError(f"'adb -s {serial} {' '.join(args)}' failed: {_last_line(proc)}; "
                                "check that the device is still connected ('adb devices')")
    return proc


def find_adb(adb: str | None = None) -> str:
    """The adb executable: ``adb`` if given (a path or a name on PATH), else adb on PATH, else
    $ANDROID_HOME/platform-tools/adb (or $ANDROID_SDK_ROOT)."""
    if adb:
        found = shutil.which(adb)
        if found is None:
            raise AndroidBenchError(f"adb '{adb}' not found or not executable; "
                                    "point to the adb of Android platform-tools")
        return found
    found = shutil.which("adb")
    if found:
        return found
    for variable in ("ANDROID_HOME", "ANDROID_SDK_ROOT"):
        root = os.environ.get(variable)
        candidate = Path(root, "platform-tools", "adb") if root else None
        if candidate and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise AndroidBenchError("adb not found on PATH; install Android platform-tools "
                            "(https://developer.android.com/tools/releases/platform-tools) and add them to PATH, "
                            "or set ANDROID_HOME")


# where ``adb devices -l`` starts a device's details after its state ("device product:x model:Pixel_7 ...")
_DEVICE_DETAILS = re.compile(r"(?:^|\s)(?:usb|product|model|device|transport_id):\S")


def list_devices(*, adb: str) -> list[dict]:
    """``{"serial", "state", "model"}`` of every device ``adb devices -l`` lists; the state is e.g.
    device, unauthorized, offline or "no permissions (...)", the model None where adb does not say it."""
    proc = _run([adb, "devices", "-l"], timeout=ADB_TIMEOUT_S)
    if proc.returncode != 0:
        raise AndroidBenchError(f"'adb devices' failed: {_last_line(proc)}; run 'adb kill-server' and retry")
    devices = []
    for line in proc.stdout.splitlines():
        fields = line.split(None, 1)
        # skip the header and the server's start-up notices ("* daemon started successfully")
        if len(fields) < 2 or line.startswith(("List of devices", "*")):
            continue
        details = _DEVICE_DETAILS.search(fields[1])
        state = fields[1][: details.start()] if details else fields[1]
        model = re.search(r"\bmodel:(\S+)", fields[1][details.start():]) if details else None
        devices.append({"serial": fields[0], "state": state.strip(),
                        "model": model[1].replace("_", " ") if model else None})  # adb writes spaces as _
    return devices


def _state_problem(serial: str, state: str) -> str | None:
    """What keeps a device in ``state`` from running the benchmark, and the fix; None when it is ready."""
    if state == "device":
        return None
    if state == "unauthorized":
        return (f"device {serial} is unauthorized: unlock the phone and accept the 'Allow USB debugging?' prompt "
                "(tick 'Always allow'), then retry")
    if state == "offline":
        return f"device {serial} is offline: reconnect the USB cable or run 'adb reconnect', then retry"
    if state.startswith("no permissions"):
        return (f"adb has no permission to open device {serial} ('{state}'): set up udev rules "
                "(https://developer.android.com/studio/run/device), replug it and run 'adb kill-server'")
    return f"device {serial} is '{state}', not ready; wait until 'adb devices' shows it as 'device'"


def requested_serials(serial: str | None) -> list[str] | None:
    """The serials ``--serial`` names: None for "the only attached device", [] for "all", else the
    comma-separated serials (an AndroidBenchError when it names none)."""
    if serial is None:
        return None
    if serial.strip() == ALL_DEVICES:
        return []
    serials = list(dict.fromkeys(part.strip() for part in serial.split(",") if part.strip()))
    if not serials:
        raise AndroidBenchError(f"--serial '{serial}' names no device; give a serial from 'adb devices', several "
                                "separated by commas, or 'all'")
    return serials


def select_devices(devices: list[dict], serial: str | None) -> tuple[list[str], list[str]]:
    """``(ready serials to run on, problems)`` for ``serial`` (see :func:`requested_serials`) among
    ``devices`` (:func:`list_devices`): every requested device that is missing or not ready is a problem."""
    listed = ", ".join(f"{d['serial']} ({d['state']}{', ' + d['model'] if d['model'] else ''})" for d in devices)
    wanted = requested_serials(serial)
    if not devices:
        return [], [_NO_DEVICE]
    if wanted is None and len(devices) > 1:
        return [], [f"several devices connected ({listed}); choose one with --serial SERIAL, several with "
                    "--serial SERIAL1,SERIAL2, or every one with --serial all"]
    states = {d["serial"]: d["state"] for d in devices}
    ready, problems = [], []
    for name in wanted or list(states):
        problem = (_state_problem(name, states[name]) if name in states else
                   f"device '{name}' not found (connected: {listed}); check the serial with 'adb devices'")
        if problem:
            problems.append(problem)
        else:
            ready.append(name)
    return ready, problems


def device_info(*, adb: str, serial: str) -> dict:
    """Model, manufacturer, SoC, Android version, SDK level and ABIs, from one ``getprop``."""
    output = _adb(adb, serial, "shell", "getprop").stdout
    props = dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", output, flags=re.MULTILINE))

    def prop(*names: str) -> str | None:
        return next((props[name] for name in names if props.get(name)), None)

    sdk = prop("ro.build.version.sdk")
    abi = prop("ro.product.cpu.abi")
    return {
        "serial": serial,
        "model": prop("ro.product.model"),
        "manufacturer": prop("ro.product.manufacturer"),
        # ro.soc.model exists from Android 12; older phones only name the board or hardware
        "soc": prop("ro.soc.model", "ro.board.platform", "ro.hardware"),
        "android_version": prop("ro.build.version.release"),
        "sdk": int(sdk) if sdk and sdk.isdigit() else None,
        "abi": abi,
        "abilist": (prop("ro.product.cpu.abilist") or abi or "").split(","),
    }


def _describe_device(device: dict) -> str:
    """``Google Pixel 7, Android 14 (SDK 34), SoC gs201, arm64-v8a``, leaving out what getprop did not say."""
    name = " ".join(device[key] for key in ("manufacturer", "model") if device[key]) or "unknown model"
    version, sdk = device["android_version"], device["sdk"]
    android = f"Android {version}" if version else ""
    if sdk is not None:
        android = f"{android} (SDK {sdk})" if android else f"SDK {sdk}"
    soc = f"SoC {device['soc']}" if device["soc"] else ""
    return ", ".join(part for part in (name, android, soc, device["abi"]) if part)


# --- parsing benchmark_model output ---------------------------------------------------------

_NUM = r"-?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
# logcat prefixes: threadtime ("01-11 23:28:59.026  7651  7651 I tflite  : "), brief ("I/tflite: "),
# and the docs' elided "... tflite  : "
_LOGCAT = re.compile(
    r"^(?:\d\d-\d\d\s+[\d:.]+\s+\d+\s+\d+\s+(?P<a>[VDIWEF])\s+|(?P<b>[VDIWEF])/|\.\.\.\s+)tflite(?:\(\s*\d+\))?\s*:\s?")
_LEVEL = re.compile(r"^(?P<level>INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG|FATAL): ")
_CURRENT = re.compile(rf"Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
                      rf"Warmup \(avg\): (?P<warmup>{_NUM}), Inference \(avg\): (?P<avg>{_NUM})")
_OLDER = re.compile(rf"Average inference timings in us: Warmup: (?P<warmup>{_NUM}), Init: (?P<init>{_NUM}), "
                    rf"(?:Inference|no stats): (?P<avg>{_NUM})")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init=(?P<init>{_NUM}) overall=(?P<overall>{_NUM})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: (?P<peak>{_NUM})")
_ERROR_START = re.compile(r"^(?:Failed|Benchmarking failed|Error|Could not|Unable to|Cannot|nnapi error)",
                          re.IGNORECASE)
_DELEGATE_CREATED = re.compile(r"Created TensorFlow Lite delegate for (?:GPU|NNAPI)|(?:GPU|NNAPI) delegate created")
_DELEGATE_FAILURE = re.compile(
    r"Failed to apply \S+ delegate|delegate application failure|GPU delegate (?:is )?not available|"
    r"GPU acceleration is unsupported|nnapi error|NN ?API returned error|TfLite\w*Delegate\w*\) failed to prepare|"
    r"TfLiteGpuDelegate (?:Init|Prepare)", re.IGNORECASE)
_APPLY_FAILED = re.compile(r"Failed to apply \S+ delegate", re.IGNORECASE)
_DELEGATE_NOTE = re.compile(r"Replacing \d+ (?:out of \d+ )?node|will not be executed by the delegate|"
                            r"operations will run on the GPU|Explicitly applied \S+ delegate")
# TFLite's core (subgraph.cc) as each delegate takes its nodes; builds before "out of" gave no total
_REPLACING = re.compile(r"Replacing (?P<nodes>\d+)(?: out of (?P<total>\d+))? node\(s\) with delegate "
                        r"\((?P<kernel>[^)]+)\) node, yielding (?P<partitions>\d+) partitions")
# benchmark_tflite_model.cc, once each delegate is applied
_APPLIED = re.compile(r"Explicitly applied (?P<delegate>\S+) delegate, and the model graph will be "
                      r"(?P<executed>completely|partially) executed by the delegate(?: w/ (?P<kernels>\d+) delegate kernels)?|"
                      r"Though (?P<unused>\S+) delegate is explicitly applied, the model graph will not be executed")
# the GPU delegate's list of the ops it cannot run (model_builder.cc; "First N ... on the CPU." before 2020)
_GPU_SPLIT = re.compile(r"(?P<gpu>\d+) operations will run on the GPU, and the remaining (?P<cpu>\d+)|"
                        r"No operations will run on the GPU, and all (?P<all_cpu>\d+) operations will run on the CPU")
_OP_COLUMNS = {"node type": "node_type", "count": "count", "avg ms": "avg_ms", "avg %": "avg_pct",
               "cdf %": "cdf_pct", "mem kb": "mem_kb", "times called": "times_called", "start": "start_ms",
               "first": "first_ms", "%": "pct", "cdf%": "cdf_pct", "name": "name"}


def _ms(text: str | None) -> float | None:
    """microseconds (as printed) -> milliseconds; None for nan/inf (a phase with no runs)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return round(value / 1000.0, 6) if math.isfinite(value) else None  # rounding drops float noise


def _messages(text: str) -> list[tuple[bool, str]]:
    """(is_error, message) per line, with logcat and ``INFO:``-style prefixes removed."""
    out = []
    for raw in text.replace("\r", "").splitlines():
        line, level = raw, ""
        match = _LOGCAT.match(line)
        if match:
            level, line = match["a"] or match["b"], line[match.end():]
        match = _LEVEL.match(line)
        if match:
            level, line = match["level"][0], line[match.end():]
        line = line.strip()
        # a tagged line is an error by its level; the oldest builds print errors untagged
        out.append((level in ("E", "F") if level else bool(_ERROR_START.match(line)), line))
    return out


def _stats(message: str) -> dict | None:
    """A ``count=...`` line of one phase: count, first/curr/min/max/avg/std and any percentiles, in ms."""
    fields = dict(re.findall(rf"(\w+)=({_NUM})", message))
    try:
        count = int(fields.pop("count"))
    except (KeyError, ValueError):
        return None
    values = {key: _ms(value) for key, value in fields.items()}
    if "avg" not in values and "curr" in values:  # "count=N curr=X(all same)": every run took X
        values.update(first=values["curr"], min=values["curr"], max=values["curr"], avg=values["curr"], std=0.0)
    percentiles = {key: value for key, value in values.items() if key == "median" or re.fullmatch(r"p\d+", key)}
    stats = {f"{key}_ms": values.get(key) for key in ("first", "curr", "min", "max", "avg", "std")}
    return {"count": count, **stats, "percentiles_ms": percentiles}


def _regular_runs_heading(messages: list[str], title: str) -> int | None:
    """Where the timed runs' profile table ``title`` starts (after the initialization's, which
    recent builds print first); older builds print only the timed runs' tables, without headings."""
    headings = [i for i, m in enumerate(messages) if title in m]
    regular = next((i for i, m in enumerate(messages)
                    if "Operator-wise Profiling Info for Regular Benchmark Runs" in m), None)
    if regular is not None:
        return next((i for i in headings if i > regular), None)
    if headings and not any("Profiling Info for Benchmark Initialization" in m for m in messages):
        return headings[-1]
    return None


def _profile_table(messages: list[str], heading: int | None) -> list[dict] | None:
    """The rows of the profile table under ``heading``: ``[node type]``, its numeric columns, and
    ``[Name]`` where the table has one (node types and names may hold spaces)."""
    if heading is None or heading + 1 >= len(messages):
        return None
    columns = [_OP_COLUMNS.get(c.strip().lower(), re.sub(r"\W+", "_", c.strip().lower()))
               for c in re.findall(r"\[([^\]]+)\]", messages[heading + 1])]
    numeric = columns[1:-1] if columns[-1:] == ["name"] else columns[1:]
    if not numeric or columns[0] != "node_type":
        return None
    rows = []
    for message in messages[heading + 2:]:
        tokens = message.split()
        # the numeric columns are the first run of len(numeric) numbers after the node type
        start = next((i for i in range(1, len(tokens) - len(numeric) + 1)
                      if all(re.fullmatch(r"-?\d+(?:\.\d+)?%?", t) for t in tokens[i: i + len(numeric)])), None)
        if start is None or (len(numeric) == len(columns) - 1 and start + len(numeric) != len(tokens)):
            break
        values = [int(v) if key in ("count", "times_called") else float(v.rstrip("%"))
                  for key, v in zip(numeric, tokens[start: start + len(numeric)], strict=True)]
        row = {"node_type": " ".join(tokens[:start]), **dict(zip(numeric, values, strict=True))}
        if len(numeric) < len(columns) - 1:
            row["name"] = " ".join(tokens[start + len(numeric):])
        rows.append(row)
    return rows or None


def parse_benchmark_output(text: str) -> dict:
    """Parse what ``benchmark_model`` printed (stdout/stderr of the binary, or the APK's logcat).

    Returns times in ms: ``init_ms``, ``first_inference_ms``, ``warmup_avg_ms``,
    ``inference_avg_ms`` (from the summary line, current or older form), ``inference`` and
    ``warmup`` (the per-phase ``count=`` statistics: count, first/curr/min/max/avg/std and
    ``percentiles_ms``), ``memory`` (``init_mb``, ``overall_mb`` and, with
    ``--report_peak_memory_footprint``, ``peak_mb``), ``op_profile`` (rows of the timed runs'
    ``Summary by node type``: node type, count, avg ms, avg %, cdf %, mem KB, times called),
    ``top_ops`` (their ``Top by Computation Time``: single nodes with their names), ``errors`` (error
    lines), ``delegate_error`` (the tool's first delegate error line, with its "Failed to apply ...
    delegate" line; fatal only when no timings follow), ``delegate_notes`` (the tool's lines on how
    much of the graph the delegate took) and, parsed from them, ``delegation`` (each "Replacing N out
    of M node(s) with delegate (K) node, yielding P partitions": kernel, nodes, total_nodes,
    partitions), ``delegate_applied`` (each "Explicitly applied D delegate ...": delegate, executed
    completely/partially/not, kernels) and ``gpu_split`` (the GPU delegate's "N operations will run
    on the GPU, and the remaining M ...": gpu_ops, cpu_ops). Anything not in the text is None (or
    empty); this never raises on odd input.
    """
    numbered = _messages(text)
    messages = [m for _, m in numbered]
    joined = "\n".join(messages)

    summary = _CURRENT.search(joined) or _OLDER.search(joined)
    groups = summary.groupdict() if summary else {}
    inference_avg = _ms(groups.get("avg"))

    # One count= line per phase, warm-up first, then the timed runs ("Timings (microseconds):
    # count=..." lines belong to the op profile and do not start with count=).
    phases = [s for s in (_stats(m) for m in messages if m.startswith("count=")) if s is not None]
    warmup, inference = (phases[-2], phases[-1]) if len(phases) >= 2 else (None, None)
    if len(phases) == 1 and inference_avg is not None and phases[0]["avg_ms"] is not None \
            and math.isclose(phases[0]["avg_ms"], inference_avg, rel_tol=1e-3):
        inference = phases[0]  # an excerpt that kept only the timed line
    elif len(phases) == 1:
        warmup = phases[0]  # the run stopped (or is still going) after its warm-up

    memory_match, peak_match = _MEMORY.search(joined), _PEAK.search(joined)
    memory = {"init_mb": float(memory_match["init"]) if memory_match else None,
              "overall_mb": float(memory_match["overall"]) if memory_match else None,
              "peak_mb": float(peak_match["peak"]) if peak_match else None}

    errors = [m for is_error, m in numbered if is_error and m]
    created = next((i for i, m in enumerate(messages) if _DELEGATE_CREATED.search(m)), len(messages))
    delegate_reasons = [m for i, (is_error, m) in enumerate(numbered)
                        if m and (_DELEGATE_FAILURE.search(m) or (is_error and i > created))]
    delegate_error = None
    if delegate_reasons:
        applied = next((m for m in delegate_reasons if _APPLY_FAILED.search(m)), None)
        delegate_error = delegate_reasons[0]
        if applied and applied != delegate_error:
            delegate_error = f"{delegate_error} ({applied})"

    return {
        "init_ms": _ms(groups.get("init")),
        "first_inference_ms": _ms(groups.get("first")),
        "warmup_avg_ms": _ms(groups.get("warmup")),
        "inference_avg_ms": inference_avg,
        "inference": inference,
        "warmup": warmup,
        "memory": memory,
        "op_profile": _profile_table(messages, _regular_runs_heading(messages, "Summary by node type")),
        "top_ops": _profile_table(messages, _regular_runs_heading(messages, "Top by Computation Time")),
        "errors": errors,
        "delegate_error": delegate_error,
        "delegate_notes": [m for m in messages if _DELEGATE_NOTE.search(m)],
        "delegation": [{"kernel": match["kernel"], "nodes": int(match["nodes"]),
                        "total_nodes": int(match["total"]) if match["total"] else None,
                        "partitions": int(match["partitions"])} for match in _REPLACING.finditer(joined)],
        "delegate_applied": [{"delegate": match["delegate"] or match["unused"], "executed": match["executed"] or "not",
                              "kernels": int(match["kernels"]) if match["kernels"] else None}
                             for match in _APPLIED.finditer(joined)],
        "gpu_split": _gpu_split(_GPU_SPLIT.search(joined)),
    }


def _gpu_split(match: re.Match | None) -> dict | None:
    if match is None:
        return None
    if match["all_cpu"]:
        return {"gpu_ops": 0, "cpu_ops": int(match["all_cpu"])}
    return {"gpu_ops": int(match["gpu"]), "cpu_ops": int(match["cpu"])}


def delegate_coverage(parsed: dict, delegate: str) -> dict:
    """How much of the main graph ``delegate`` took, from :func:`parse_benchmark_output`'s log lines:
    ``delegated_nodes`` and ``cpu_nodes`` (the nodes it left to the CPU: TFLite's kernels or
    XNNPACK), ``delegate_partitions`` and ``delegate_execution`` (completely, partially or not, as
    the tool says it). What the log does not say is None; the ``cpu`` choice applies no delegate."""
    coverage = dict.fromkeys(("delegated_nodes", "cpu_nodes", "delegate_partitions", "delegate_execution"))
    if delegate not in _DELEGATE_NAMES:
        return coverage
    provider, kernel = _DELEGATE_NAMES[delegate]
    # the first line is the main graph's (an app that builds two interpreters logs the graph twice)
    replacing = next((r for r in parsed["delegation"] if r["kernel"].startswith(kernel)), None)
    applied = next((a for a in parsed["delegate_applied"] if a["delegate"] == provider), None)
    split = parsed["gpu_split"] if delegate == "gpu" else None
    if replacing:
        total = replacing["total_nodes"]
        coverage.update(delegated_nodes=replacing["nodes"], delegate_partitions=replacing["partitions"],
                        cpu_nodes=None if total is None else total - replacing["nodes"])
    elif split:
        coverage.update(delegated_nodes=split["gpu_ops"], cpu_nodes=split["cpu_ops"])
    elif applied and applied["executed"] == "not":
        coverage.update(delegated_nodes=0)
    if applied:
        coverage["delegate_execution"] = applied["executed"]
        if applied["executed"] == "completely":
            coverage["cpu_nodes"] = 0
    elif coverage["cpu_nodes"] is not None:
        coverage["delegate_execution"] = ("not" if not coverage["delegated_nodes"] else
                                          "completely" if coverage["cpu_nodes"] == 0 else "partially")
    return coverage


# --- running the tool -----------------------------------------------------------------------


def _resolve_binary(benchmark_binary: Path | None) -> Path:
    """The host benchmark_model binary, checked before any adb call."""
    if benchmark_binary is None:
        env = os.environ.get(BINARY_ENV)
        if not env:
            raise AndroidBenchError(f"no benchmark_model binary given: set {BINARY_ENV} (or pass its path) to TFLite's "
                                    "prebuilt android_aarch64_benchmark_model, or use the benchmark APK; "
                                    "mobile-sr never downloads it")
        benchmark_binary = Path(env)
    path = Path(benchmark_binary).expanduser()
    if not path.is_file():
        raise AndroidBenchError(f"benchmark binary {path} not found; point to TFLite's prebuilt "
                                f"android_aarch64_benchmark_model (argument or {BINARY_ENV})")
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError as exc:
        raise AndroidBenchError(f"benchmark binary {path} cannot be read ({exc.strerror or exc}); fix its "
                                "permissions or point to another copy") from None
    # The host's execute bit does not matter (it is chmod'ed on the phone), but the file must be
    # an ELF executable: a common mistake is pointing to the .apk or a download page.
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise AndroidBenchError(f"{path} is not an executable (no ELF header); point to TFLite's prebuilt "
                                "android_aarch64_benchmark_model binary, not the .apk or an archive")
    return path


def _check_binary_abi(path: Path, device: dict) -> None:
    with open(path, "rb") as f:
        head = f.read(20)
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    abis = _ELF_ABIS.get(machine)
    supported = [abi for abi in device["abilist"] if abi]
    if supported and (abis is None or not set(abis) & set(supported)):
        built_for = abis[0] if abis else f"ELF machine {machine}"
        raise AndroidBenchError(f"{path} is built for {built_for} but {device['serial']} runs {', '.join(supported)}; "
                                "use the android_aarch64 (arm64-v8a) build of benchmark_model")


def _input_shape(path: Path) -> list[int]:
    detail = load_interpreter(path).get_input_details()[0]
    if any(int(v) < 0 for v in detail.get("shape_signature", [])):
        raise AndroidBenchError(f"{path} has a dynamic input size, which benchmark_model would run at 1x1; "
                                "export it with a fixed --input-size (e.g. 360x640) to benchmark it on a phone")
    return [int(v) for v in detail["shape"]]


def _remote_name(path: Path) -> str:
    # the name travels through the device shell and the APK's space-separated args string
    return f"{REMOTE_DIR}/{re.sub(r'[^A-Za-z0-9._-]', '_', path.name)}"


def _tool_args(*, remote_model: str, delegate: str, threads: int, runs: int, warmup_runs: int,
               nnapi_accelerator: str | None, op_profiling: bool) -> list[str]:
    args = [f"--graph={remote_model}", f"--num_threads={threads}", f"--num_runs={runs}",
            f"--warmup_runs={warmup_runs}", *_DELEGATE_FLAGS[delegate]]
    if nnapi_accelerator:
        args.append(f"--nnapi_accelerator_name={nnapi_accelerator}")
    if op_profiling:
        args.append("--enable_op_profiling=true")
    # a thread sampling the footprint every 50 ms; builds without the flag warn and ignore it
    args.append("--report_peak_memory_footprint=true")
    return args


def _run_binary(adb: str, serial: str, args: list[str]) -> str:
    proc = _adb(adb, serial, "shell", REMOTE_BINARY, *args, timeout=RUN_TIMEOUT_S, check=False)
    output = proc.stdout + "\n" + proc.stderr
    for line in output.splitlines():
        if "benchmark_model" in line and re.search(r"not executable|Exec format error|Permission denied|"
                                                   r"inaccessible or not found|No such file", line):
            raise AndroidBenchError(f"benchmark_model does not run on {serial} ({line.strip()}); use the "
                                    "android_aarch64 build for a 64-bit phone or android_arm for a 32-bit one")
    return output


def _apk_finished(text: str, op_profiling: bool) -> bool:
    if re.search(r"Benchmarking failed|Failed to apply \S+ delegate", text):
        return True
    if not re.search(r"Inference timings in us|Average inference timings in us", text):
        return False
    # the op profile is logged after the timings; wait for the timed runs' table to close
    return not op_profiling or bool(re.search(r"Operator-wise Profiling Info[\s\S]*nodes observed", text))


def _run_apk(adb: str, serial: str, args: list[str], *, op_profiling: bool, log: Callable[[str], None]) -> str:
    _adb(adb, serial, "logcat", "-c")  # so only this run's lines are read back
    # adb joins its arguments for the device shell, which then sees --es args "--graph=... ..."
    started = _adb(adb, serial, "shell", "am", "start", "-S", "-n", APK_ACTIVITY, "--es", "args", f'"{" ".join(args)}"',
                   check=False)
    # older Androids exit 0 from am even when the activity does not start, and say so in its output
    complaints = [line.strip() for line in (started.stdout + "\n" + started.stderr).splitlines()
                  if line.strip().startswith(("Error", "Exception", "java.lang."))]
    complaint = complaints[-1] if complaints else None  # "Error type 3" comes first, the reason last
    if started.returncode != 0 or complaint:
        raise AndroidBenchError(f"the benchmark APK did not start on {serial} ({complaint or _last_line(started)}); "
                                f"reinstall it with 'adb install -r -d -g android_aarch64_benchmark_model.apk' and check "
                                f"that 'adb shell am start -n {APK_ACTIVITY}' opens it")
    start = time.monotonic()
    deadline, next_progress = start + RUN_TIMEOUT_S, start + PROGRESS_S
    while True:
        text = _adb(adb, serial, "logcat", "-d", "-s", "tflite").stdout
        if _apk_finished(text, op_profiling):
            time.sleep(LOGCAT_POLL_S)  # the memory lines follow the timings within milliseconds
            return _adb(adb, serial, "logcat", "-d", "-s", "tflite").stdout
        if time.monotonic() > deadline:
            if parse_benchmark_output(text)["errors"]:
                return text
            raise AndroidBenchError(f"the benchmark APK logged no result within {RUN_TIMEOUT_S:.0f} s on {serial}; "
                                    "keep the phone unlocked and check 'adb logcat -s tflite'")
        if time.monotonic() >= next_progress:
            log(f"waiting for the benchmark APK on {serial}: {time.monotonic() - start:.0f} s so far, "
                f"giving up in {deadline - time.monotonic():.0f} s")
            next_progress += PROGRESS_S
        time.sleep(LOGCAT_POLL_S)


def _failure(parsed: dict, output: str, *, model: Path, delegate: str, serial: str) -> AndroidBenchError:
    if parsed["delegate_error"]:
        return AndroidBenchError(f"the {delegate} delegate failed on {serial} for {model.name}: "
                                 f"{parsed['delegate_error']}; try another --delegate (cpu or xnnpack always work)")
    if parsed["errors"]:
        return AndroidBenchError(f"benchmark_model rejected {model.name} on {serial}: {parsed['errors'][0]}; "
                                 "check that 'mobile-sr eval' runs it on the host and that the tool is recent enough "
                                 "for its ops")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    return AndroidBenchError(f"benchmark_model printed no timings for {model.name} on {serial} (last line: {last}); "
                             "run it by hand with android_bench/run_benchmark.sh to see its full output")


def _top_op_types(profile: list[dict] | None) -> str | None:
    """``CONV_2D 89.3%, DEPTHWISE_CONV_2D 10.7%, ...``: the node types that took the most time."""
    if not profile:
        return None
    ranked = sorted(profile, key=lambda row: row.get("avg_pct", 0.0), reverse=True)
    return ", ".join(f"{row['node_type']} {row.get('avg_pct', 0.0):.1f}%" for row in ranked[:TOP_OP_TYPES])


def _result(parsed: dict, *, model: Path, device: dict, delegate: str, threads: int, shape: list[int],
            macs: int, runner: str, nnapi_accelerator: str | None, output_check: dict | None) -> dict:
    stats = parsed["inference"] or {}
    percentiles = stats.get("percentiles_ms", {})
    average = stats.get("avg_ms") if stats.get("avg_ms") is not None else parsed["inference_avg_ms"]
    median = percentiles.get("median", percentiles.get("p50"))
    details = {
        "device": device,
        "runner": runner,
        "nnapi_accelerator": nnapi_accelerator,
        "latency_ms_std": stats.get("std_ms"),
        "latency_ms_max": stats.get("max_ms"),
        "init_ms": parsed["init_ms"],
        "first_inference_ms": parsed["first_inference_ms"],
        "warmup_avg_ms": parsed["warmup_avg_ms"],
        "memory": parsed["memory"],
        "op_profile": parsed["op_profile"],
        "top_op_types": _top_op_types(parsed["op_profile"]),
        "top_ops": parsed["top_ops"],
        **delegate_coverage(parsed, delegate),
        "delegation": parsed["delegation"],
        "delegate_notes": parsed["delegate_notes"],
        **(output_check or {}),
    }
    if median is None:
        details["latency_note"] = "benchmark_model reported no median; latency_ms_median is the average"
    return BenchmarkResult(
        model=model.name, target="android", hardware=f"{_describe_device(device)}, serial {device['serial']}",
        delegate=delegate, threads=threads, input_shape=shape, latency_ms_median=median if median is not None else average,
        latency_ms_p90=percentiles.get("p90"), latency_ms_min=stats.get("min_ms"), latency_ms_mean=average,
        runs=stats.get("count"), macs=macs, peak_memory_mb=parsed["memory"]["overall_mb"], details=details,
    ).to_dict()


def _describe_result(result: dict) -> str:
    """The progress line of one run: latency, what the delegate took, peak memory, slowest node types."""
    parts = [f"median {result['latency_ms_median']:.2f} ms, average {result['latency_ms_mean']:.2f} ms"]
    delegate, delegated, cpu = result["delegate"], result["delegated_nodes"], result["cpu_nodes"]
    rest = "TFLite's built-in kernels" if delegate == "xnnpack" else "the CPU"  # XNNPACK runs on the CPU too
    if result["delegate_execution"] == "not" or delegated == 0:
        parts.append(f"the {delegate} delegate took no node: {rest} ran the whole model")
    elif delegated is not None and cpu is not None:
        parts.append(f"the {delegate} delegate took {delegated} of {delegated + cpu} nodes ({cpu} left to {rest})")
    elif result["delegate_execution"] == "completely":
        parts.append(f"the {delegate} delegate took the whole graph")
    elif delegated is not None:
        parts.append(f"the {delegate} delegate took {delegated} nodes")
    if result["memory"]["peak_mb"] is not None:
        parts.append(f"peak memory {result['memory']['peak_mb']:.1f} MB")
    if result["top_op_types"]:
        parts.append(f"slowest node types: {result['top_op_types']}")
    return "; ".join(parts)


# --- the on-device output check -------------------------------------------------------------


class _FrameCheck(NamedTuple):
    frame: str  # the frame's name
    feed: np.ndarray  # the model's input tensor: the frame fitted to its size, in its type
    host: list[tuple[dict, np.ndarray]]  # (output detail, the host LiteRT's output) per output


def _load_frame(frame: str | Path) -> tuple[str, np.ndarray]:
    """``(name, uint8 RGB)`` of the output check's frame: an image file, or "default"."""
    if str(frame) == DEFAULT_FRAME:
        return default_photos("val")[0]
    return Path(frame).name, load_rgb(frame)


def _fit_frame(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """``rgb`` centre-cropped to the aspect ratio of ``height`` x ``width``, then resized to it."""
    rows, cols = rgb.shape[:2]
    crop_rows = max(1, min(rows, round(cols * height / width)))
    crop_cols = max(1, min(cols, round(rows * width / height)))
    top, left = (rows - crop_rows) // 2, (cols - crop_cols) // 2
    crop = rgb[top: top + crop_rows, left: left + crop_cols]
    shrinking = crop_rows > height
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def _frame_check(model: Path, name: str, rgb: np.ndarray) -> _FrameCheck:
    """The frame as ``model``'s input, and the host's LiteRT outputs for it."""
    interpreter = load_interpreter(model)
    inputs = interpreter.get_input_details()
    if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or int(inputs[0]["shape"][-1]) != 3:
        raise AndroidBenchError(f"{model}: the output check feeds one RGB frame, but the model takes "
                                f"{', '.join(shape_text(d) for d in inputs)}; leave out --check-output for it")
    detail = inputs[0]
    feed = quantize(_fit_frame(rgb, int(detail["shape"][1]), int(detail["shape"][2]))[None], detail)
    try:
        interpreter.set_tensor(detail["index"], feed)
        interpreter.invoke()
    except (ValueError, RuntimeError) as exc:
        raise AndroidBenchError(f"{model}: the LiteRT interpreter cannot run it on the frame {name} ({error_reason(exc)}); "
                                "check the model with 'mobile-sr eval --tflite'") from None
    return _FrameCheck(name, feed, [(d, interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()])


def _compare_outputs(data: bytes, check: _FrameCheck, *, serial: str, model: Path) -> dict:
    """The phone's outputs (the raw bytes of every output tensor, one after the other, as the tool's
    --output_filepath writes them) against the host's LiteRT outputs, in the keys of the host's
    runtime cross-check: ``vs_litert_max_diff_lsb`` (largest absolute difference, in steps of an
    integer output or pixel levels of a float one), ``vs_litert_differing_pixels`` (the fraction of
    pixels that differ) and ``vs_litert_psnr_db`` (PSNR of the dequantized outputs, peak 255), with
    ``vs_litert_frame``; over several outputs, the worst of each."""
    expected = sum(output.nbytes for _, output in check.host)
    if len(data) != expected:
        raise AndroidBenchError(f"benchmark_model on {serial} wrote {len(data)} bytes of output for {model.name}, not the "
                                f"{expected} bytes its output tensors hold; update benchmark_model and retry")
    comparison = {"vs_litert_frame": check.frame, "vs_litert_psnr_db": math.inf, "vs_litert_max_diff_lsb": 0.0,
                  "vs_litert_differing_pixels": 0.0}
    offset = 0
    for detail, reference in check.host:
        on_device = np.frombuffer(data, reference.dtype, reference.size, offset).reshape(reference.shape)
        offset += reference.nbytes
        # lsb 1: an integer output's steps; a float SR output's pixel levels (its 0-255 range / 255)
        agreement = output_agreement(reference, on_device, 1.0)
        comparison.update(
            vs_litert_psnr_db=min(comparison["vs_litert_psnr_db"], psnr(dequantize(on_device, detail),
                                                                        dequantize(reference, detail))),
            vs_litert_max_diff_lsb=max(comparison["vs_litert_max_diff_lsb"], agreement["max_diff_lsb"]),
            vs_litert_differing_pixels=max(comparison["vs_litert_differing_pixels"], agreement["differing_pixels"]))
    return comparison


def _describe_check(check: dict) -> str:
    if check["vs_litert_max_diff_lsb"] == 0:
        return f"output on {check['vs_litert_frame']} identical to the host's LiteRT output"
    return (f"output on {check['vs_litert_frame']} against the host's LiteRT output: PSNR {check['vs_litert_psnr_db']:.2f} "
            f"dB, largest difference {check['vs_litert_max_diff_lsb']:g} LSB, "
            f"{100 * check['vs_litert_differing_pixels']:.2f}% of pixels differ")


def _check_on_device(adb: str, serial: str, *, model: Path, remote_model: str, check: _FrameCheck, delegate: str,
                     threads: int, nnapi_accelerator: str | None) -> dict:
    """Run the frame through ``model`` on the phone with ``delegate`` (the tool's
    --input_layer_value_files and --output_filepath), pull the output and compare it with the host's."""
    remote_input, remote_output = f"{REMOTE_DIR}/mobile_sr_frame.bin", f"{REMOTE_DIR}/mobile_sr_output.bin"
    with tempfile.TemporaryDirectory(prefix="mobile_sr_check_") as folder:
        local_input, local_output = Path(folder, "frame.bin"), Path(folder, "output.bin")
        local_input.write_bytes(check.feed.tobytes())
        _adb(adb, serial, "push", str(local_input), remote_input, timeout=PUSH_TIMEOUT_S)
        _adb(adb, serial, "shell", "rm", "-f", remote_output)  # an earlier run's file must not pass for this one's
        args = [*_tool_args(remote_model=remote_model, delegate=delegate, threads=threads, runs=1, warmup_runs=0,
                            nnapi_accelerator=nnapi_accelerator, op_profiling=False),
                f"--input_layer={CHECK_INPUT_NAME}", f"--input_layer_shape={','.join(map(str, check.feed.shape))}",
                f"--input_layer_value_files={CHECK_INPUT_NAME}:{remote_input}", f"--output_filepath={remote_output}"]
        output = _run_binary(adb, serial, args)
        parsed = parse_benchmark_output(output)
        if parsed["inference_avg_ms"] is None and parsed["inference"] is None:
            raise _failure(parsed, output, model=model, delegate=delegate, serial=serial)
        pulled = _adb(adb, serial, "pull", remote_output, str(local_output), timeout=PUSH_TIMEOUT_S, check=False)
        if pulled.returncode != 0 or not local_output.is_file():
            ignored = next((line.strip() for line in output.splitlines()
                            if "Unconsumed cmdline flags" in line and "--output_filepath" in line), None)
            reason = f"it ignored the flag: '{ignored}'" if ignored else f"'adb pull' said: {_last_line(pulled)}"
            raise AndroidBenchError(f"benchmark_model wrote no output file for {model.name} on {serial} ({reason}); the "
                                    "output check needs a benchmark_model that knows --output_filepath: use a recent "
                                    "prebuilt android_aarch64_benchmark_model")
        comparison = _compare_outputs(local_output.read_bytes(), check, serial=serial, model=model)
    _adb(adb, serial, "shell", "rm", "-f", remote_input, remote_output)
    return comparison


# --- prerequisites and the runs -------------------------------------------------------------

T = TypeVar("T")


def _attempt(problems: list[str], check: Callable[..., T], *args, **kwargs) -> T | None:
    """``check(*args, **kwargs)``; on a MobileSRError, None, with its message added to ``problems``."""
    try:
        return check(*args, **kwargs)
    except MobileSRError as exc:
        problems.append(str(exc))
        return None


def _check_apk_installed(adb: str, serial: str) -> None:
    packages = _adb(adb, serial, "shell", "pm", "list", "packages", APK_PACKAGE).stdout.split()
    if f"package:{APK_PACKAGE}" not in packages:
        raise AndroidBenchError(f"TFLite's benchmark APK ({APK_PACKAGE}) is not installed on {serial}; install it "
                                "with 'adb install -r -d -g android_aarch64_benchmark_model.apk' or use the "
                                "benchmark_model binary")


class _Prepared(NamedTuple):
    shapes: dict[Path, list[int]]
    macs: dict[Path, int]
    binary: Path | None
    adb: str
    devices: list[dict]  # device_info of each device to run on
    checks: dict[Path, _FrameCheck]  # per model, with an output check


def _check_prerequisites(models: list[Path], *, benchmark_binary: Path | None, use_apk: bool, adb: str | None,
                         serial: str | None, check_frame: str | Path | None) -> _Prepared:
    """Everything the runs need, checked before anything is pushed: every model (a readable .tflite
    of fixed input size; with ``check_frame``, one that takes the frame, run on the host), the
    binary (unless the APK runs the models), adb, and each requested device (attached and
    authorized, answering getprop, of an ABI the binary runs on, or with the APK installed). Every
    problem found is reported in one AndroidBenchError, each with its fix, so that a first run
    learns at once all it must set up."""
    problems: list[str] = []
    measured = {model: _attempt(problems, lambda m=model: (_input_shape(m), count_macs(m))) for model in models}
    measured = {model: pair for model, pair in measured.items() if pair is not None}
    checks = {}
    frame = None if check_frame is None else _attempt(problems, _load_frame, check_frame)
    if frame is not None:
        checks = {model: check for model in measured if (check := _attempt(problems, _frame_check, model, *frame))}
    binary = None if use_apk else _attempt(problems, _resolve_binary, benchmark_binary)
    adb = _attempt(problems, find_adb, adb)
    devices = []
    listed = None if adb is None else _attempt(problems, list_devices, adb=adb)
    if listed is not None:
        ready, device_problems = select_devices(listed, serial)
        problems += device_problems
        for name in ready:
            device = _attempt(problems, device_info, adb=adb, serial=name)
            if device is not None and binary is not None:
                _attempt(problems, _check_binary_abi, binary, device)
            if device is not None and use_apk:
                _attempt(problems, _check_apk_installed, adb, name)
            if device is not None:
                devices.append(device)
    if len(problems) > 1:  # numbered: each problem's own text holds "; " before its fix
        listed_problems = "; ".join(f"({index}) {problem}" for index, problem in enumerate(problems, 1))
        raise AndroidBenchError(f"{len(problems)} problems to fix before benchmarking on a phone: {listed_problems}")
    if problems:
        raise AndroidBenchError(problems[0])
    return _Prepared({m: shape for m, (shape, _) in measured.items()}, {m: macs for m, (_, macs) in measured.items()},
                     binary, adb, devices, checks)


def benchmark_on_android(*, models: list[Path], delegate: str = "cpu", threads: list[int] = (1,),
                         serial: str | None = None, benchmark_binary: Path | None = None, use_apk: bool = False,
                         nnapi_accelerator: str | None = None, op_profiling: bool = False, runs: int = 50,
                         warmup_runs: int = 5, check_frame: str | Path | None = None, adb: str | None = None,
                         log: Callable[[str], None] = print) -> list[dict]:
    """Time each model at each thread count with one delegate on each requested phone; one result
    per phone, model and thread count, as the dict of :class:`~mobile_sr.benchmark.schema.BenchmarkResult`.

    ``serial`` is one device's serial, several separated by commas, "all" (every attached device),
    or None (the only attached device). With ``use_apk`` the installed benchmark APK runs the models
    (closer to an app's scheduling); otherwise ``benchmark_binary`` (or $MOBILE_SR_BENCHMARK_MODEL)
    is pushed and run with adb shell. With ``check_frame`` (an image file, or "default": the first
    of scikit-image's validation photos) each model also runs that frame once on each phone with
    the delegate, centre-cropped and resized to its input, and each of its results gets the PSNR
    and the largest absolute difference of the phone's output against the host's LiteRT output
    (``vs_litert_*``, see :func:`_compare_outputs`).
    """
    if delegate not in DELEGATES:
        raise AndroidBenchError(f"unknown delegate '{delegate}'; choose one of {', '.join(DELEGATES)}")
    if nnapi_accelerator and delegate != "nnapi":
        raise AndroidBenchError("an NNAPI accelerator name only applies to --delegate nnapi")
    threads = list(threads)
    if not models or not threads or any(int(t) < 1 for t in threads) or runs < 1 or warmup_runs < 0:
        raise AndroidBenchError("need at least one model, thread counts >= 1, runs >= 1 and warm-up runs >= 0")
    if check_frame is not None and use_apk:
        raise AndroidBenchError("the output check runs the benchmark_model binary, whose output file adb can read back "
                                "(the APK's app cannot write one there); drop --apk or --check-output")
    requested_serials(serial)  # a --serial that names no device is refused before anything is looked at
    models = [Path(m) for m in models]
    prepared = _check_prerequisites(models, benchmark_binary=benchmark_binary, use_apk=use_apk, adb=adb, serial=serial,
                                    check_frame=check_frame)
    adb = prepared.adb
    results = []
    for device in prepared.devices:
        serial = device["serial"]
        log(f"{serial}: {_describe_device(device)}")
        if prepared.binary is not None:
            _adb(adb, serial, "push", str(prepared.binary), REMOTE_BINARY, timeout=PUSH_TIMEOUT_S)
            _adb(adb, serial, "shell", "chmod", "+x", REMOTE_BINARY)
        for model in models:
            remote = _remote_name(model)
            _adb(adb, serial, "push", str(model), remote, timeout=PUSH_TIMEOUT_S)
            output_check = None
            if model in prepared.checks:
                output_check = _check_on_device(adb, serial, model=model, remote_model=remote, check=prepared.checks[model],
                                                delegate=delegate, threads=int(threads[0]),
                                                nnapi_accelerator=nnapi_accelerator)
                log(f"{model.name} on {serial}: {_describe_check(output_check)}")
            for count in threads:
                args = _tool_args(remote_model=remote, delegate=delegate, threads=int(count), runs=runs,
                                  warmup_runs=warmup_runs, nnapi_accelerator=nnapi_accelerator, op_profiling=op_profiling)
                log(f"{model.name} on {serial}: {delegate}, {count} thread(s), {runs} runs ...")
                if use_apk:
                    output = _run_apk(adb, serial, args, op_profiling=op_profiling, log=log)
                else:
                    output = _run_binary(adb, serial, args)
                parsed = parse_benchmark_output(output)
                if parsed["inference_avg_ms"] is None and parsed["inference"] is None:
                    raise _failure(parsed, output, model=model, delegate=delegate, serial=serial)
                result = _result(parsed, model=model, device=device, delegate=delegate, threads=int(count),
                                 shape=prepared.shapes[model], macs=prepared.macs[model],
                                 runner="apk" if use_apk else "binary", nnapi_accelerator=nnapi_accelerator,
                                 output_check=output_check)
                log(f"{model.name} on {serial}: {_describe_result(result)}")
                results.append(result)
    return results
