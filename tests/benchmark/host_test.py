"""Host benchmark of a real tiny model, MAC counting, the op profile and the comparison report."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mobile_sr.benchmark.host import benchmark_host, count_macs, op_profile, parse_threads
from mobile_sr.benchmark.report import challenge_score, load_psnr, write_comparison
from mobile_sr.cli import main
from mobile_sr.core.errors import TFLiteError
from mobile_sr.export import convert
from mobile_sr.models import build_model, make_config
from mobile_sr.quantization.qat import quantize_for_training

REQUIRED_KEYS = {"model", "target", "delegate", "threads", "input_shape", "latency_ms_median", "latency_ms_p90", "runs", "macs"}


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory):
    model = build_model("scsrn", make_config("scsrn", scale=2, channels=8, feature_convs=2))
    qat_model = quantize_for_training(model, np.random.default_rng(0).uniform(0, 255, (2, 12, 16, 3)).astype(np.float32))
    path = tmp_path_factory.mktemp("bench") / "tiny_int8.tflite"
    path.write_bytes(convert(qat_model, mode="int8", input_size=(12, 16)))
    return path


def test_mac_count_is_exact(tiny_int8):
    per_pixel = 3 * 9 * 8 + 8 * 9 * 8 + (8 + 3) * 9 * 12  # two feature convs, the output conv on the concat
    assert count_macs(tiny_int8) == 12 * 16 * per_pixel


def test_real_host_benchmark(tiny_int8):
    lines = []
    (result,) = benchmark_host([tiny_int8], threads=[1], runs=5, warmup=1, log=lines.append)
    assert REQUIRED_KEYS <= set(result)
    assert result["target"] == "host" and result["runs"] == 5 and result["input_shape"] == [1, 12, 16, 3]
    assert 0 < result["latency_ms_min"] <= result["latency_ms_median"] <= result["latency_ms_p90"]
    assert result["gmacs_per_s"] > 0
    # a tiny model adds a few MB; the worker must not count this test process's TensorFlow
    assert 0 <= result["peak_memory_mb"] < 100
    assert "litert_benchmark_median_ms" in result or "litert_benchmark" in result
    assert "median" in lines[0]


def test_builtin_kernels_without_xnnpack(tiny_int8):
    (result,) = benchmark_host([tiny_int8], threads=[1], xnnpack=(False,), runs=3, warmup=0, log=lambda _: None)
    assert result["delegate"] == "builtin"


def test_op_profile_shares(tiny_int8):
    rows = op_profile(tiny_int8, runs=3, warmup=0)
    assert {row["op"] for row in rows} >= {"CONV_2D", "DEPTH_TO_SPACE"}
    assert sum(row["share"] for row in rows) == pytest.approx(1.0, abs=0.01)


def test_parse_threads():
    import os

    assert parse_threads("1,2,all") == list(dict.fromkeys([1, 2, os.cpu_count()]))
    with pytest.raises(ValueError, match="thread counts"):
        parse_threads("one")


def test_challenge_score():
    assert challenge_score(30.0, 100.0) == pytest.approx(2.0**60 / (0.1 * 0.1))
    assert challenge_score(30.5, 200.0) == pytest.approx(challenge_score(30.0, 100.0))  # +0.5 dB pays for 2x time


def test_comparison_report(tmp_path):
    results = [{"model": "a_int8.tflite", "target": "host", "runtime": "litert", "delegate": "xnnpack", "threads": 1,
                "latency_ms_median": 50.0},
               {"model": "b_int8.tflite", "target": "host", "runtime": "litert", "delegate": "xnnpack", "threads": 1,
                "latency_ms_median": 80.0}]
    (tmp_path / "eval.json").write_text(json.dumps([{"model": "a_int8", "dataset": "Set5", "mean_psnr_y": 30.1},
                                                   {"model": "b_int8", "dataset": "Set5", "mean_psnr_y": 30.4}]))
    markdown = write_comparison(results, load_psnr([tmp_path / "eval.json"]), tmp_path / "c.md", tmp_path / "c.png")
    assert "| a_int8.tflite | host | litert | xnnpack | 1 | 50.0 | 30.100 | Set5 |" in markdown
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_cli_bench_json_csv_and_errors(tiny_int8, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--threads", "1", "--runs", "3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(out.read_text())
    assert REQUIRED_KEYS <= set(entry)
    assert out.with_suffix(".csv").read_text().startswith("model,")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"junk")
    result = CliRunner().invoke(main, ["bench", str(bad), "--runs", "1"])
    assert result.exit_code == 1 and result.output.startswith("Error:")
    result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--threads", "x"])
    assert result.exit_code == 2


def test_cli_android_without_adb_is_a_one_line_error(tiny_int8, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ANDROID_HOME", raising=False)
    monkeypatch.delenv("ANDROID_SDK_ROOT", raising=False)
    fake_binary = tmp_path / "benchmark_model"
    fake_binary.write_bytes(b"\x7fELF" + b"\0" * 60)
    result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--android", "--benchmark-binary", str(fake_binary)])
    assert result.exit_code == 1 and "adb" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:") and "Traceback" not in result.output


def test_host_bench_refuses_a_dynamic_size_model(tiny_int8, tmp_path):
    dynamic = tmp_path / "dynamic.tflite"
    dynamic.write_bytes(convert(build_model("scsrn", make_config("scsrn", scale=2, channels=8, feature_convs=2)),
                                mode="float", input_size=None))
    lines = []
    with pytest.raises(TFLiteError, match="dynamic input size.*fixed --input-size"):
        benchmark_host([tiny_int8, dynamic], threads=[1], runs=1, warmup=0, log=lines.append)
    assert lines == []  # refused before timing the fixed-size model
    with pytest.raises(TFLiteError, match="dynamic input size"):
        op_profile(dynamic)


@pytest.mark.parametrize("content", ["{}", "[1, 2]", "[]", '{"model": "m", "dataset": "Set5", "mean_psnr_y": "30.1"}'])
def test_bad_compare_reports_fail_before_the_benchmark(tiny_int8, tmp_path, content):
    report = tmp_path / "eval.json"
    report.write_text(content)
    out = tmp_path / "bc.json"
    result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--threads", "1", "--runs", "1", "--json", str(out),
                                       "--compare", str(report)])
    assert result.exit_code == 1 and result.output.startswith(f"Error: {report}: ")
    assert "mean_psnr_y" in result.output and "mobile-sr eval" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]  # nothing benchmarked, nothing written


def test_host_only_flags_are_refused_with_android(tiny_int8):
    for flags in (["--seconds", "2"], ["--xnnpack", "off"]):
        result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--android", *flags])
        assert result.exit_code == 2 and f"{flags[0]} is for the host benchmark only" in result.output
        assert "with --android use --runs" in result.output


def test_android_only_flags_are_refused_on_the_host(tiny_int8):
    result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--delegate", "gpu", "--profile"])
    assert result.exit_code == 2 and "--delegate, --profile are for a phone: add --android" in result.output


@pytest.mark.parametrize("json_name,compare,message", [
    ("tiny_int8.tflite", None, "must end in .json"),
    ("r.csv", None, "must end in .json"),
    ("tiny_int8.json", None, "would replace the export report of"),
    ("r.json", "r.json", "would replace the --compare report"),
    ("r.json", "r.png", "would replace the --compare report"),
])
def test_bench_json_never_replaces_an_input(tiny_int8, tmp_path, json_name, compare, message):
    model = tmp_path / "tiny_int8.tflite"
    model.write_bytes(tiny_int8.read_bytes())
    (tmp_path / "tiny_int8.json").write_text("{}")
    if compare:
        (tmp_path / compare).write_text(json.dumps({"model": "tiny_int8", "dataset": "Set5", "mean_psnr_y": 30.0}))
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    result = CliRunner().invoke(main, ["bench", str(model), "--runs", "1", "--json", str(tmp_path / json_name),
                                       *(["--compare", str(tmp_path / compare)] if compare else [])])
    assert result.exit_code == 2 and message in result.output, result.output
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_bench_refuses_seconds_and_runs_together(tiny_int8):
    result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--seconds", "0.5", "--runs", "5"])
    assert result.exit_code == 2 and "give one of them" in result.output


def test_compare_reports_of_other_models(tiny_int8, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"model": "bicubic", "dataset": "Set5", "mean_psnr_y": 30.0}))
    out = tmp_path / "b.json"
    result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--runs", "1", "--threads", "1", "--json", str(out),
                                       "--compare", str(other)])
    assert result.exit_code == 1 and "reports are for bicubic, none of the benchmarked models (tiny_int8.tflite)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]  # refused before the benchmark
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"model": "tiny_int8", "dataset": "Set5", "mean_psnr_y": 30.0}))
    result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--runs", "1", "--threads", "1", "--json", str(out),
                                       "--compare", str(other), "--compare", str(mine)])
    assert result.exit_code == 0, result.output
    assert "note: the --compare reports of bicubic match no benchmarked model" in result.output
    assert "| tiny_int8.tflite | host |" in (tmp_path / "b.md").read_text()


def test_default_comparison_path_is_checked_before_the_benchmark(tiny_int8, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench.md").mkdir()
    report = tmp_path / "eval.json"
    report.write_text(json.dumps({"model": "tiny_int8", "dataset": "Set5", "mean_psnr_y": 30.0}))
    result = CliRunner().invoke(main, ["bench", str(tiny_int8), "--runs", "1", "--threads", "1", "--compare", str(report)])
    assert result.exit_code == 1 and "bench.md: is a folder" in result.output and "--json chooses another place" in result.output
    assert "ms" not in result.output  # nothing was timed


def test_parse_threads_says_what_a_thread_count_is():
    from mobile_sr.tflite import MAX_THREADS

    assert parse_threads(f"1,{MAX_THREADS}") == [1, MAX_THREADS]
    # '²' passes str.isdigit but not int(); 100000 threads crash LiteRT's thread pool
    for text in ("²", str(MAX_THREADS + 1), "0", "2,-1"):
        with pytest.raises(ValueError, match=rf"is not a list of thread counts such as 1,2,all: each a whole number from 1 to {MAX_THREADS}"):
            parse_threads(text)
    result = CliRunner().invoke(main, ["bench", "x.tflite", "--threads", "²"])
    assert result.exit_code == 2 and "whole number from 1" in result.output and "invalid literal" not in result.output


def _canned_results(model_name: str = "tiny_int8.tflite") -> list[dict]:
    """One host result, as benchmark_host returns it: the output tests need no timing."""
    from mobile_sr.benchmark.schema import BenchmarkResult

    return [BenchmarkResult(model=model_name, target="host", hardware="test CPU", delegate="xnnpack", threads=1,
                            input_shape=[1, 12, 16, 3], latency_ms_median=5.0, latency_ms_p90=6.0, latency_ms_min=4.0,
                            latency_ms_mean=5.1, runs=3, macs=1000, peak_memory_mb=1.0).to_dict()]


@pytest.fixture
def canned_host_benchmark(monkeypatch):
    import mobile_sr.benchmark.host

    monkeypatch.setattr(mobile_sr.benchmark.host, "benchmark_host", lambda *_args, **_kwargs: _canned_results())


def _eval_report(folder):
    report = folder / "eval.json"
    report.write_text(json.dumps({"model": "tiny_int8", "dataset": "Set5", "mean_psnr_y": 30.0}))
    return report


def test_bench_writes_every_output_and_no_staging_file(canned_host_benchmark, tmp_path):
    from mobile_sr.benchmark import run_benchmark

    report = _eval_report(tmp_path)
    lines = []
    run_benchmark([tmp_path / "tiny_int8.tflite"], json_path=tmp_path / "b.json", compare=[report], log=lines.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv", "b.json", "b.md", "b.png", "eval.json"]
    assert json.loads((tmp_path / "b.json").read_text())[0]["latency_ms_median"] == 5.0
    assert (tmp_path / "b.csv").read_text().startswith("model,")
    assert "| tiny_int8.tflite | host |" in (tmp_path / "b.md").read_text()
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {tmp_path / 'b.json'} and b.csv" in lines


@pytest.mark.parametrize("compare,fail_at", [(False, 2), (True, 4)])  # the CSV; the PNG after JSON, CSV and Markdown
def test_bench_on_a_full_disk_writes_nothing(canned_host_benchmark, tmp_path, monkeypatch, compare, fail_at):
    import errno
    import os

    from mobile_sr.benchmark import run_benchmark
    from mobile_sr.core.errors import OutputError

    report = _eval_report(tmp_path) if compare else None
    real_fdopen, writes = os.fdopen, []

    def full_disk_at_one_write(fd, mode="r", *args, **kwargs):
        if "w" in mode:
            writes.append(fd)
            if len(writes) == fail_at:  # the file was created; writing it fails
                os.close(fd)
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fdopen(fd, mode, *args, **kwargs)

    def run():
        writes.clear()
        with pytest.raises(OutputError) as raised:
            run_benchmark([tmp_path / "tiny_int8.tflite"], json_path=tmp_path / "b.json",
                          compare=[report] if compare else [], log=lambda _: None)
        assert len(writes) == fail_at
        return str(raised.value)

    monkeypatch.setattr(os, "fdopen", full_disk_at_one_write)
    message = run()
    assert message.startswith(f"the disk holding {tmp_path} is full (or your quota on it is used up): "
                              "none of b.json, b.csv")
    assert message.endswith("was written; free space, or write them to another disk")
    inputs = ["eval.json"] if compare else []
    assert sorted(p.name for p in tmp_path.iterdir()) == inputs  # no output, no staging or temporary file
    # the outputs of an earlier run stay as they were
    earlier = {name: f"earlier {name}" for name in ("b.json", "b.csv", "b.md", "b.png")}
    for name, text in earlier.items():
        (tmp_path / name).write_text(text)
    run()
    assert {p.name: p.read_text() for p in tmp_path.iterdir() if p.name != "eval.json"} == earlier


def test_cli_bench_on_a_full_disk_is_a_one_line_error(canned_host_benchmark, tmp_path, monkeypatch):
    import errno

    import mobile_sr.core.files

    real_write, calls = mobile_sr.core.files.atomic_write_bytes, []

    def full_disk(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        real_write(path, data)

    monkeypatch.setattr(mobile_sr.core.files, "atomic_write_bytes", full_disk)
    result = CliRunner().invoke(main, ["bench", str(tmp_path / "tiny_int8.tflite"), "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: the disk holding {tmp_path} is full (or your quota on it is used up): none of b.json, b.csv was "
        "written; free space, or write them to another disk")
    assert list(tmp_path.iterdir()) == []
