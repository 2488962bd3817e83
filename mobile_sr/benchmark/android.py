"""Latency of .tflite models on an Android phone over adb, measured by TensorFlow Lite's official
``benchmark_model`` tool: its native binary (pushed to /data/local/tmp and run with ``adb shell``)
or its benchmark APK (started with ``am start`` and read back from logcat).

mobile-sr never downloads the tool: the user points to a prebuilt ``android_aarch64_benchmark_model``
(argument or MOBILE_SR_BENCHMARK_MODEL) or installs the APK. Every adb call has a timeout, and
every failure (no adb, no or several devices, an unauthorized phone, a missing tool, a delegate or
model the tool rejects) is an AndroidBenchError whose one-line message says how to fix it.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mobile_sr.benchmark.schema import BenchmarkResult
from mobile_sr.core.errors import AndroidBenchError
from mobile_sr.tflite import count_macs, load_interpreter

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


def list_devices(*, adb: str) -> list[tuple[str, str]]:
    """(serial, state) of every device ``adb devices`` lists; state is e.g. device, unauthorized, offline."""
    proc = _run([adb, "devices"], timeout=ADB_TIMEOUT_S)
    if proc.returncode != 0:
        raise AndroidBenchError(f"'adb devices' failed: {_last_line(proc)}; run 'adb kill-server' and retry")
    devices = []
    for line in proc.stdout.splitlines():
        match = re.match(r"(\S+)\s+(\S.*?)\s*$", line)
        # skip the header and the server's start-up notices ("* daemon started successfully")
        if match and not line.startswith(("List of devices", "*")):
            devices.append((match[1], match[2]))
    return devices


def _check_state(serial: str, state: str) -> None:
    if state == "device":
        return
    if state == "unauthorized":
        raise AndroidBenchError(f"device {serial} is unauthorized: unlock the phone and accept the "
                                "'Allow USB debugging?' prompt (tick 'Always allow'), then retry")
    if state == "offline":
        raise AndroidBenchError(f"device {serial} is offline: reconnect the USB cable or run 'adb reconnect', "
                                "then retry")
    if state.startswith("no permissions"):
        raise AndroidBenchError(f"adb has no permission to open device {serial} ('{state}'): set up udev rules "
                                "(https://developer.android.com/studio/run/device), replug it and run 'adb kill-server'")
    raise AndroidBenchError(f"device {serial} is '{state}', not ready; wait until 'adb devices' shows it as 'device'")


def select_device(*, adb: str, serial: str | None) -> str:
    """The serial to use: ``serial`` if connected and ready, else the only connected device."""
    devices = list_devices(adb=adb)
    if serial is None:
        if not devices:
            raise AndroidBenchError(_NO_DEVICE)
        if len(devices) > 1:
            raise AndroidBenchError(f"several devices connected ({', '.join(s for s, _ in devices)}); "
                                    "choose one with --serial")
        serial, state = devices[0]
    else:
        states = dict(devices)
        if serial not in states:
            connected = ", ".join(f"{s} ({st})" for s, st in devices) or "none"
            raise AndroidBenchError(f"device '{serial}' not found (connected: {connected}); "
                                    "check the serial with 'adb devices'")
        state = states[serial]
    _check_state(serial, state)
    return serial


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
_DELEGATE_NOTE = re.compile(r"Replacing \d+ out of \d+ node|will not be executed by the delegate|"
                            r"operations will run on the GPU|Explicitly applied \S+ delegate")
_OP_COLUMNS = {"node type": "node_type", "count": "count", "avg ms": "avg_ms", "avg %": "avg_pct",
               "cdf %": "cdf_pct", "mem kb": "mem_kb", "times called": "times_called"}


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


def _op_profile(messages: list[str]) -> list[dict] | None:
    """Rows of the ``Summary by node type`` table of the regular (timed) runs."""
    summaries = [i for i, m in enumerate(messages) if "Summary by node type" in m]
    regular = next((i for i, m in enumerate(messages)
                    if "Operator-wise Profiling Info for Regular Benchmark Runs" in m), None)
    if regular is not None:
        start = next((i for i in summaries if i > regular), None)
    elif summaries and not any("Profiling Info for Benchmark Initialization" in m for m in messages):
        start = summaries[-1]  # older builds print only the timed runs' profile, without a heading
    else:
        start = None
    if start is None or start + 1 >= len(messages):
        return None
    columns = [_OP_COLUMNS.get(c.strip().lower(), re.sub(r"\W+", "_", c.strip().lower()))
               for c in re.findall(r"\[([^\]]+)\]", messages[start + 1])]
    if len(columns) < 2 or columns[0] != "node_type":
        return None
    rows = []
    for message in messages[start + 2:]:
        fields = message.split()
        if len(fields) < len(columns):
            break
        numbers = fields[-(len(columns) - 1):]
        try:
            values = [int(v) if key in ("count", "times_called") else float(v.rstrip("%"))
                      for key, v in zip(columns[1:], numbers, strict=True)]
        except ValueError:
            break
        rows.append({"node_type": " ".join(fields[: -(len(columns) - 1)]), **dict(zip(columns[1:], values, strict=True))})
    return rows or None


def parse_benchmark_output(text: str) -> dict:
    """Parse what ``benchmark_model`` printed (stdout/stderr of the binary, or the APK's logcat).

    Returns times in ms: ``init_ms``, ``first_inference_ms``, ``warmup_avg_ms``,
    ``inference_avg_ms`` (from the summary line, current or older form), ``inference`` and
    ``warmup`` (the per-phase ``count=`` statistics: count, first/curr/min/max/avg/std and
    ``percentiles_ms``), ``memory`` (``init_mb``, ``overall_mb``, ``peak_mb``), ``op_profile`` (rows
    of the timed runs' ``Summary by node type``), ``errors`` (error lines), ``delegate_error`` (the
    tool's first delegate error line, with its "Failed to apply ... delegate" line; fatal only when
    no timings follow) and ``delegate_notes`` (how much of the graph the delegate took).
    Anything not in the text is None (or empty); this never raises on odd input.
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
        "op_profile": _op_profile(messages),
        "errors": errors,
        "delegate_error": delegate_error,
        "delegate_notes": [m for m in messages if _DELEGATE_NOTE.search(m)],
    }


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
    with open(path, "rb") as f:
        head = f.read(20)
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


def _result(parsed: dict, *, model: Path, device: dict, delegate: str, threads: int, shape: list[int],
            macs: int, runner: str, nnapi_accelerator: str | None) -> dict:
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
        "delegate_notes": parsed["delegate_notes"],
    }
    if median is None:
        details["latency_note"] = "benchmark_model reported no median; latency_ms_median is the average"
    return BenchmarkResult(
        model=model.name, target="android", hardware=_describe_device(device), delegate=delegate, threads=threads,
        input_shape=shape, latency_ms_median=median if median is not None else average,
        latency_ms_p90=percentiles.get("p90"), latency_ms_min=stats.get("min_ms"), latency_ms_mean=average,
        runs=stats.get("count"), macs=macs, peak_memory_mb=parsed["memory"]["overall_mb"], details=details,
    ).to_dict()


def benchmark_on_android(*, models: list[Path], delegate: str = "cpu", threads: list[int] = (1,),
                         serial: str | None = None, benchmark_binary: Path | None = None, use_apk: bool = False,
                         nnapi_accelerator: str | None = None, op_profiling: bool = False, runs: int = 50,
                         warmup_runs: int = 5, adb: str | None = None,
                         log: Callable[[str], None] = print) -> list[dict]:
    """Time each model at each thread count on one phone with one delegate; one result per run, as
    the dict of :class:`~mobile_sr.benchmark.schema.BenchmarkResult`.

    With ``use_apk`` the installed benchmark APK runs the models (closer to an app's scheduling);
    otherwise ``benchmark_binary`` (or $MOBILE_SR_BENCHMARK_MODEL) is pushed and run with adb shell.
    """
    if delegate not in DELEGATES:
        raise AndroidBenchError(f"unknown delegate '{delegate}'; choose one of {', '.join(DELEGATES)}")
    if nnapi_accelerator and delegate != "nnapi":
        raise AndroidBenchError("an NNAPI accelerator name only applies to --delegate nnapi")
    threads = list(threads)
    if not models or not threads or any(int(t) < 1 for t in threads) or runs < 1 or warmup_runs < 0:
        raise AndroidBenchError("need at least one model, thread counts >= 1, runs >= 1 and warm-up runs >= 0")
    models = [Path(m) for m in models]
    shapes = {m: _input_shape(m) for m in models}  # reject bad models before touching the phone
    macs = {m: count_macs(m) for m in models}
    binary = None if use_apk else _resolve_binary(benchmark_binary)

    adb = find_adb(adb)
    serial = select_device(adb=adb, serial=serial)
    device = device_info(adb=adb, serial=serial)
    log(f"{serial}: {_describe_device(device)}")
    if binary is not None:
        _check_binary_abi(binary, device)
        _adb(adb, serial, "push", str(binary), REMOTE_BINARY, timeout=PUSH_TIMEOUT_S)
        _adb(adb, serial, "shell", "chmod", "+x", REMOTE_BINARY)
    else:
        packages = _adb(adb, serial, "shell", "pm", "list", "packages", APK_PACKAGE).stdout.split()
        if f"package:{APK_PACKAGE}" not in packages:
            raise AndroidBenchError(f"TFLite's benchmark APK ({APK_PACKAGE}) is not installed on {serial}; install it "
                                    "with 'adb install -r -d -g android_aarch64_benchmark_model.apk' or use the "
                                    "benchmark_model binary")

    results = []
    for model in models:
        remote = _remote_name(model)
        _adb(adb, serial, "push", str(model), remote, timeout=PUSH_TIMEOUT_S)
        for count in threads:
            args = _tool_args(remote_model=remote, delegate=delegate, threads=int(count), runs=runs,
                              warmup_runs=warmup_runs, nnapi_accelerator=nnapi_accelerator, op_profiling=op_profiling)
            log(f"{model.name}: {delegate}, {count} thread(s), {runs} runs ...")
            if use_apk:
                output = _run_apk(adb, serial, args, op_profiling=op_profiling, log=log)
            else:
                output = _run_binary(adb, serial, args)
            parsed = parse_benchmark_output(output)
            if parsed["inference_avg_ms"] is None and parsed["inference"] is None:
                raise _failure(parsed, output, model=model, delegate=delegate, serial=serial)
            result = _result(parsed, model=model, device=device, delegate=delegate, threads=int(count),
                             shape=shapes[model], macs=macs[model], runner="apk" if use_apk else "binary",
                             nnapi_accelerator=nnapi_accelerator)
            log(f"{model.name}: median {result['latency_ms_median']:.2f} ms, average {result['latency_ms_mean']:.2f} ms")
            results.append(result)
    return results
