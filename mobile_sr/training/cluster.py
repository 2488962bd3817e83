"""Training on several machines with TensorFlow's own engine.

``TF_CONFIG`` (https://www.tensorflow.org/guide/distributed_training#TF_CONFIG) names the cluster:
``cluster.chief`` (at most one address) and ``cluster.worker`` (addresses), and this process's
``task.type`` and ``task.index``. With more than one worker in it, training runs under
``tf.distribute.MultiWorkerMirroredStrategy``; otherwise on this machine alone, under
``MirroredStrategy`` with more than one GPU, else the default strategy.

Workers train in lockstep: each collective op (the gradients' all-reduce, a variable's creation,
a synchronised read while validating or saving) must be entered by every worker in the same
order. So the chief (``chief``, else ``worker`` 0) settles the run and the others follow it: the
chief holds the run folder and sends the others the files a resumed run starts from; they train
in a temporary copy they delete, and check that they were started with the chief's settings. At
each step the workers agree on the chief's clock (time budget, schedule, validations) and on
whether any of them wants a checkpoint or to stop (Ctrl-C), so all of them validate, save and stop
at the same step. Once started (until then they wait for each other as long as it takes), their
collectives time out after :data:`COLLECTIVE_TIMEOUT_S`, so a worker that hangs stops the others
with an error instead of holding them forever; one that dies is noticed sooner, by TensorFlow's
coordination service (its heartbeats stop: about 30 s).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mobile_sr import runs
from mobile_sr.core.errors import ConfigError, MobileSRError

# Longer than any wait between workers that are working: the first step's tracing and a
# validation or checkpoint take about as long on every worker, so a worker waits for a slower
# one for seconds, not minutes.
COLLECTIVE_TIMEOUT_S = 300.0

# What a resumed run starts from: the chief sends these (folders whole) to the other workers.
RESUME_FILES = (runs.CONFIG_FILE, runs.METRICS_FILE, runs.WEIGHTS_FILE, runs.CHECKPOINT_DIR)

TF_CONFIG_HELP = "see 'On several machines' in the README's Training section"


class ClusterError(MobileSRError):
    """A worker of a multi-worker run stopped or stopped answering, or the chief failed to start."""


@dataclass(frozen=True)
class ClusterPosition:
    """This process's place in ``TF_CONFIG``'s cluster: ``workers`` training together (1: this
    machine alone), this one's ``index`` among them (0: the chief) and its ``address``."""

    workers: int = 1
    index: int = 0
    address: str | None = None


def cluster_position(tf_config: str | None = None) -> ClusterPosition:
    """Read ``TF_CONFIG`` (by default the environment's; unset or empty: no cluster), with
    TensorFlow's semantics: the ``chief`` task, else ``worker`` 0, is the chief; a ``worker``'s
    index counts after it."""
    tf_config = os.environ.get("TF_CONFIG") if tf_config is None else tf_config
    if not tf_config:
        return ClusterPosition()
    try:
        spec = json.loads(tf_config)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not JSON ({exc}); {TF_CONFIG_HELP}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    if not cluster:
        return ClusterPosition()
    if not isinstance(cluster, dict) or not all(
            isinstance(addresses, list) and all(isinstance(a, str) for a in addresses) for addresses in cluster.values()):
        raise ConfigError(f"TF_CONFIG's cluster must map job names to lists of 'host:port' addresses; {TF_CONFIG_HELP}")
    others = sorted(set(cluster) - {"chief", "worker"})
    if others:
        raise ConfigError(f"TF_CONFIG's cluster names {', '.join(others)} job(s): multi-worker training takes only "
                          "'chief' and 'worker' tasks; remove the others")
    chiefs, workers = cluster.get("chief", []), cluster.get("worker", [])
    if len(chiefs) > 1:
        raise ConfigError(f"TF_CONFIG's cluster has {len(chiefs)} chiefs; name one, or list them all as workers")
    if len(chiefs) + len(workers) <= 1:
        return ClusterPosition()
    task = spec.get("task")
    task_type, index = (task.get("type"), task.get("index", 0)) if isinstance(task, dict) else (None, None)
    tasks = {"chief": chiefs, "worker": workers}.get(task_type, [])
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(tasks):
        raise ConfigError(f"TF_CONFIG's task {task!r} is not one of its cluster's chief or worker tasks; set "
                          "task.type to 'chief' or 'worker' and task.index to this machine's place in that list")
    return ClusterPosition(len(chiefs) + len(workers), index + (len(chiefs) if task_type == "worker" else 0),
                           tasks[index])


@dataclass
class Workers:
    """The processes that train together (one: this machine alone) and their ``strategy``; this
    process is worker ``index`` of ``count`` (0: the chief)."""

    strategy: Any
    count: int = 1
    index: int = 0
    _shared: bool = field(default=False, init=False, repr=False)  # whether the chief has sent its run (share_run)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def several(self) -> bool:
        return self.count > 1

    def agree(self, elapsed: float, *, checkpoint_due: bool, stop: bool) -> tuple[float, bool, bool]:
        """``(elapsed, checkpoint_due, stop)`` for every worker: the chief's training time, and
        whether any worker is due a checkpoint or asked to stop."""
        if not self.several:
            return elapsed, checkpoint_due, stop
        chief_elapsed, due, stopping = self._sum(np.array([elapsed, checkpoint_due, stop], np.float64),
                                                 chief_only=np.array([True, False, False]))
        return float(chief_elapsed), due > 0, stopping > 0

    def share_run(self, run_dir: Path, config, *, resume: bool) -> None:
        """Chief: send the other workers the run's folder, its settings (``config``) and, when
        resuming, the files the run restarts from."""
        if not self.several:
            return
        files = {}
        for name in RESUME_FILES if resume else ():
            path = run_dir / name
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    files[file.relative_to(run_dir).as_posix()] = base64.b64encode(file.read_bytes()).decode()
        self._broadcast({"run_dir": str(run_dir), "resume": resume, "settings": config.to_dict(), "files": files})
        self._shared = True

    def tell_failure(self, message: str) -> None:
        """Chief, before :meth:`share_run`: tell the other workers, which wait for it, why it stopped."""
        if self.several and self.is_chief and not self._shared:
            self._broadcast({"error": message})

    def chief_run(self, folder: Path, *, resume: bool) -> tuple[Path, dict]:
        """Not the chief: the chief's run folder and settings, from :meth:`share_run`; the files
        of a resumed run written into ``folder``."""
        shared = self._broadcast(None)
        if "error" in shared:
            raise ClusterError(f"the chief stopped: {shared['error']}")
        if shared["resume"] != resume:
            raise ConfigError(f"the chief was started with{'' if shared['resume'] else 'out'} --resume, worker "
                              f"{self.index} with{'' if resume else 'out'}: start every worker with the same command")
        for name, data in shared["files"].items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(data))
        return Path(shared["run_dir"]), shared["settings"]

    def _broadcast(self, message: dict | None) -> dict:
        """The chief's JSON ``message`` (the others pass None), on every worker."""
        payload = json.dumps(message).encode() if self.is_chief else b""
        length = int(self._sum(np.array([len(payload)], np.float64), chief_only=np.array([True]))[0])
        words = np.zeros(-(-length // 4), np.int32)  # 4 bytes a word: collectives sum numbers, not bytes
        words.view(np.uint8)[:len(payload)] = np.frombuffer(payload, np.uint8)
        received = self._sum(words, chief_only=np.ones(words.shape, bool))
        return json.loads(received.astype(np.int32).tobytes()[:length])

    def _sum(self, values: np.ndarray, *, chief_only: np.ndarray) -> np.ndarray:
        """``values`` summed over every replica of every worker, those flagged ``chief_only``
        taken from the chief's first replica alone: one all-reduce."""
        return self._compiled_sum(values, chief_only).numpy()

    @cached_property
    def _compiled_sum(self) -> Callable:
        from mobile_sr.core.backend import tf

        strategy = self.strategy

        @tf.function(reduce_retracing=True)
        def replica_sum(values, chief_only):
            def replica_values(values, chief_only):
                first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
                return tf.where(tf.logical_and(chief_only, tf.logical_not(first)), tf.zeros_like(values), values)

            return strategy.reduce("SUM", strategy.run(replica_values, args=(values, chief_only)), axis=None)

        return replica_sum


def join_workers(position: ClusterPosition, log: Callable[[str], None]) -> Workers:
    """The strategy for ``position``: a multi-worker one, waiting until every worker has started
    (it must be made before anything else runs TensorFlow in this process), or this machine's."""
    from mobile_sr.core.backend import tf

    if position.workers == 1:
        gpus = tf.config.list_logical_devices("GPU")
        return Workers(tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy())
    role = "the chief" if position.index == 0 else "following the chief, which logs and writes the run folder"
    log(f"worker {position.index} of {position.workers} (TF_CONFIG) at {position.address}, {role}: waiting for the others")
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as exc:
        if "startup" not in str(exc):
            raise
        raise ConfigError("multi-worker training must start TensorFlow itself, and this process already runs it: "
                          "start training in a new process (e.g. 'mobile-sr train')") from None
    return Workers(strategy, position.workers, position.index)


def lost_worker_problem(exc: Exception) -> str:
    """What a collective's failure (``tf.errors.UnavailableError`` or ``DeadlineExceededError``)
    says of the cluster, in one line."""
    from mobile_sr.core.backend import tf

    if isinstance(exc, tf.errors.DeadlineExceededError):
        return f"a worker did not answer for {COLLECTIVE_TIMEOUT_S:.0f} s (hung, or its machine unreachable)"
    return "a worker stopped or became unreachable (its own output says why)"
