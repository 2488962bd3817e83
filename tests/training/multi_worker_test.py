"""Training across machines (a TF_CONFIG cluster, MultiWorkerMirroredStrategy), with two worker
processes on 127.0.0.1: their run equals one process's at the same global batch, only the chief
writes the run folder and logs, and a run that lost a worker resumes from the chief's checkpoint."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mobile_sr import runs
from mobile_sr.core.errors import ConfigError
from mobile_sr.core.images import save_png
from mobile_sr.training import TrainConfig, train
from mobile_sr.training.cluster import ClusterPosition, cluster_position
from tests.helpers import TINY_SR, default_sigint, textured_image

# One worker: trains as `mobile-sr train` would, and prints its error, if any, as the CLI does.
_WORKER = textwrap.dedent("""
    import json, sys
    from mobile_sr.training import cluster
    from mobile_sr.core.errors import MobileSRError
    from mobile_sr.training import TrainConfig, train

    args = json.loads(sys.argv[1])
    cluster.COLLECTIVE_TIMEOUT_S = args["timeout_s"]
    try:
        train(TrainConfig.from_dict(args["config"]), run_dir=args["run_dir"], resume=args["resume"], log=print)
    except MobileSRError as exc:
        print(f"Error: {exc}")
        sys.exit(1)
""")


def _free_addresses(count: int) -> list[str]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def start_workers(tmp_path):
    """``start_workers(config, run_dir, resume=, timeout_s=)``: two worker processes training
    ``config`` (a dict), each with its own temporary folder and data cache, printing to
    ``worker<index>/<start|resume>.log``; any still running at the end of the test is killed."""
    started = []

    def start(config: dict, run_dir, *, resume: bool = False, timeout_s: float = 60.0) -> list:
        addresses = _free_addresses(2)
        workers = []
        for index in range(2):
            private = tmp_path / f"worker{index}"
            (private / "tmp").mkdir(parents=True, exist_ok=True)
            tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
            env = {**os.environ, "TMPDIR": str(private / "tmp"), "MOBILE_SR_CACHE": str(private / "cache"),
                   "PYTHONUNBUFFERED": "1", "TF_CONFIG": json.dumps(tf_config)}
            args = {"config": config, "run_dir": str(run_dir), "resume": resume, "timeout_s": timeout_s}
            with (private / f"{'resume' if resume else 'start'}.log").open("w") as output:
                workers.append(subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(args)], env=env,
                                                stdout=output, stderr=subprocess.STDOUT, preexec_fn=default_sigint))
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        worker.kill()
        worker.wait()


def _finish(workers, timeout_s: float) -> list[int]:
    """The workers' exit codes; one still running after ``timeout_s`` fails the test."""
    deadline = time.monotonic() + timeout_s
    return [worker.wait(timeout=max(1.0, deadline - time.monotonic())) for worker in workers]


def _wait_for(condition, workers, timeout_s: float = 240.0) -> None:
    """Until ``condition()`` holds; fails if it does not within ``timeout_s`` or a worker ends first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline and all(worker.poll() is None for worker in workers)
        time.sleep(0.1)


def _lines(tmp_path, index: int, log: str) -> list[str]:
    """What worker ``index`` printed itself (not TensorFlow's native logs)."""
    text = (tmp_path / f"worker{index}" / f"{log}.log").read_text()
    return [line for line in text.splitlines() if line.startswith(("worker ", "data: ", "resumed ", "training ", "step ",
                                                                   "done: ", "Error: "))]


def _weights(run_dir) -> list[np.ndarray]:
    model, _ = runs.load_trained_model(run_dir)
    return model.get_weights()


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / runs.METRICS_FILE).read_text().splitlines()]


def _validations(run_dir) -> dict[int, float]:
    return {record["step"]: record["val_psnr_y"] for record in _metrics(run_dir) if "val_psnr_y" in record}


@pytest.fixture
def images(tmp_path):
    """Three small training images (one of them held out for validation)."""
    for index in range(3):
        save_png(tmp_path / "data" / f"{index}.png", textured_image(80, 96, seed=index))
    return tmp_path / "data"


@pytest.mark.parametrize("tf_config,position", [
    (None, ClusterPosition()),
    ("", ClusterPosition()),
    ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, ClusterPosition()),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, ClusterPosition(2, 1, "b:2")),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}},
     ClusterPosition(3, 0, "c:0")),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}},
     ClusterPosition(3, 1, "a:1")),
])
def test_tf_config_gives_the_workers_and_the_chief_as_tensorflow_reads_it(tf_config, position, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    text = tf_config if tf_config is None or isinstance(tf_config, str) else json.dumps(tf_config)
    assert cluster_position(text) == position
    if text:
        monkeypatch.setenv("TF_CONFIG", text)
    assert cluster_position() == position  # read from the environment


@pytest.mark.parametrize("tf_config,match", [
    ("{cluster", "TF_CONFIG is not JSON"),
    ({"cluster": {"worker": "a:1,b:2"}}, "lists of 'host:port' addresses"),
    ({"cluster": {"worker": ["a:1"], "ps": ["p:1"]}}, "names ps job.*only 'chief' and 'worker'"),
    ({"cluster": {"chief": ["c:0", "d:0"]}}, "2 chiefs"),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}, "task.index"),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "evaluator", "index": 0}}, "task.type"),
    ({"cluster": {"worker": ["a:1", "b:2"]}}, "task.type"),
])
def test_a_tf_config_that_names_no_usable_cluster_is_refused_with_the_fix(tf_config, match):
    with pytest.raises(ConfigError, match=match):
        cluster_position(tf_config if isinstance(tf_config, str) else json.dumps(tf_config))


def test_qat_refuses_a_cluster_before_starting_tensorflow_on_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    config = TrainConfig(init_from=str(tmp_path / "float"), qat=True, **TINY_SR)
    with pytest.raises(ConfigError, match="runs on one machine: unset TF_CONFIG"):
        train(config, run_dir=tmp_path / "qat", log=lambda _: None)


def test_a_worker_started_with_other_settings_than_the_chief_is_refused():
    from mobile_sr.training.cluster import Workers
    from mobile_sr.training.stages import _check_chief_settings

    config = TrainConfig(steps=6, **TINY_SR)
    chief = json.loads(json.dumps({**config.to_dict(), "batch_size": 8}))
    _check_chief_settings(config, json.loads(json.dumps(config.to_dict())), Workers(None, 2, 1))
    with pytest.raises(ConfigError, match="worker 1 has other training settings than the chief "
                                          r"\(batch_size 4 here, 8 on the chief\): start every worker with the same"):
        _check_chief_settings(config, chief, Workers(None, 2, 1))


def test_two_workers_train_as_one_process_does_at_the_same_global_batch(images, start_workers, tmp_path):
    """Each worker draws its shard of the patch stream: two workers of two patches a step see the
    patches one process of four does, so their weights end equal; only the chief writes and logs."""
    config = TrainConfig(data=str(images), steps=6, **TINY_SR)  # two validations, a checkpoint at step 3
    workers = start_workers(config.to_dict(), tmp_path / "two")
    train(config, run_dir=tmp_path / "one", log=lambda _: None)  # meanwhile, one process
    assert _finish(workers, timeout_s=240) == [0, 0], _lines(tmp_path, 0, "start") + _lines(tmp_path, 1, "start")

    single, chief = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert max(float(np.abs(a - b).max()) for a, b in zip(single, chief, strict=True)) < 1e-5
    assert _validations(tmp_path / "two") == pytest.approx(_validations(tmp_path / "one"), abs=1e-4)
    assert len(_validations(tmp_path / "two")) == 2
    assert {path.name for path in (tmp_path / "two").iterdir()} == {path.name for path in (tmp_path / "one").iterdir()}
    assert not runs.lock_path(tmp_path / "two").exists()
    chief_lines, other_lines = _lines(tmp_path, 0, "start"), _lines(tmp_path, 1, "start")
    assert any("split over 2 replicas on 2 workers" in line for line in chief_lines)
    assert chief_lines[-1].startswith("done: 6 steps")
    assert len(other_lines) == 1 and "worker 1 of 2" in other_lines[0] and "following the chief" in other_lines[0]
    assert not any((tmp_path / "worker1" / "tmp").iterdir())  # its temporary run folder is gone


@pytest.mark.large
def test_a_lost_worker_stops_the_chief_which_keeps_its_checkpoint_to_resume_from(images, start_workers, tmp_path):
    """A worker killed mid-run: the chief stops within the collective timeout with one line that
    names its last checkpoint, and every worker restarted with --resume continues from it. Ctrl-C
    on one worker stops all of them at the same step, with a checkpoint. A chief that cannot start
    tells the other workers why."""
    config = TrainConfig(data=str(images), steps=5000, **{**TINY_SR, "validations": 25})
    run_dir = tmp_path / "two"
    resume_command = f"'mobile-sr train --out {run_dir} --resume' on every worker"
    workers = start_workers(config.to_dict(), run_dir, timeout_s=20)
    _wait_for(lambda: (run_dir / runs.CHECKPOINT_DIR / "checkpoint").exists(), workers)  # the first, at step 200
    workers[1].kill()
    assert _finish(workers, timeout_s=120)[0] == 1
    error = _lines(tmp_path, 0, "start")[-1]
    assert error.startswith("Error: a worker stopped or became unreachable") or "did not answer for 20 s" in error
    assert f"is kept: stop every worker, then continue with {resume_command}" in error
    kept = int(error.split("the checkpoint of step ")[1].split()[0])

    workers = start_workers(config.to_dict(), run_dir, resume=True, timeout_s=20)
    # once steps run, worker 1 is past its start-up and holds its Ctrl-C handler
    _wait_for(lambda: any(line.startswith("step ") for line in _lines(tmp_path, 0, "resume")), workers)
    workers[1].send_signal(signal.SIGINT)
    assert _finish(workers, timeout_s=120) == [1, 1]
    stops = {_lines(tmp_path, index, "resume")[-1] for index in range(2)}
    assert len(stops) == 1, stops  # the same step on both
    stop = stops.pop()
    assert stop.startswith("Error: interrupted at step ") and stop.endswith(f"checkpoint saved, continue with {resume_command}")
    stopped = int(stop.split("interrupted at step ")[1].split(";")[0])
    assert stopped >= kept and f"resumed {run_dir} at step {kept}" in _lines(tmp_path, 0, "resume")

    resumed = {**config.to_dict(), "steps": stopped + 10}
    assert _finish(start_workers(resumed, run_dir, resume=True), timeout_s=240) == [0, 0]
    assert _lines(tmp_path, 0, "resume")[-1].startswith(f"done: {stopped + 10} steps")
    steps = [record["step"] for record in _metrics(run_dir)]
    assert steps == sorted(steps) and steps[-1] == stopped + 10  # the log goes on from each checkpoint

    assert _finish(start_workers(resumed, run_dir), timeout_s=240) == [1, 1]  # a new run there: refused
    assert "already holds a run" in _lines(tmp_path, 0, "start")[-1]
    refusal = _lines(tmp_path, 1, "start")[-1]
    assert refusal.startswith("Error: the chief stopped: ") and "already holds a run" in refusal
