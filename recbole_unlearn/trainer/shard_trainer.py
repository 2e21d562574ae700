"""Training shard sub-models, slice stage by slice stage, in-process or as Ray tasks.

A shard with R slices is trained in R stages: stage r trains on the shard's users in slices
``0..r`` for ``slice_epochs`` epochs, starting from the weights after stage r-1 (Bourtoule et
al.'s sliced training). The weights after every stage are kept, so forgetting a user of slice
r restarts the shard from the weights after stage r-1.

With ``validate_submodels`` (the default) a stage trains until the ``valid_metric`` (NDCG@10 by default) on its own users'
validation targets has not improved for ``stopping_step`` + 1 evaluations, capped at
``slice_epochs`` epochs, and keeps its best state, as RecBole trains a single model; a
retraining after a forget follows the same rule, so its cost is honest. Without it a stage
trains for exactly ``slice_epochs`` epochs.

Every stage is seeded from (``seed``, shard, stage) alone and builds its own dataloaders, so
re-running a stage on the same data with the same torch thread count gives bit-identical
weights, whichever process runs it. The thread count changes float rounding, so each stage
records the count it trained with, and a shard resumed from stage r trains with the count its
stage r-1 recorded (:attr:`ShardJob.num_threads`), whatever ``shard_num_threads`` or
``num_workers`` the run answering the request has.
"""
import math
import os
import re
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from logging import getLogger
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.partition import ShardMap
from recbole_unlearn.data.utils import eval_loader, train_loader
from recbole_unlearn.trainer.trainer import UnlearnTrainer, cpu_state_dict, state_digest
from recbole_unlearn.trainer.training import new_model, valid_metric_name, validated_score
from recbole_unlearn.utils.cpu_meter import descendants_ended
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.faults import fault_point

# Seeds of shard k, stage r: seed + SHARD_SEED_STRIDE * (k + 1) + r (distinct for r < stride).
SHARD_SEED_STRIDE = 1000

StateDict = Dict[str, torch.Tensor]


def stage_seed(config, shard: int, stage: int) -> int:
    """The seed shard ``shard``'s slice stage ``stage`` is initialised and trained with."""
    return config["seed"] + SHARD_SEED_STRIDE * (shard + 1) + stage


@dataclass
class ShardJob:
    """Train ``shard`` from slice stage ``start_stage`` on; ``init_state`` holds the weights
    after stage ``start_stage - 1`` (``None`` when starting from scratch)."""

    shard: int
    start_stage: int = 0
    init_state: Optional[StateDict] = None
    #: torch threads to train with, before the run's own count: a resumed shard's earlier stages'
    num_threads: Optional[int] = None


@dataclass
class StageTraining:
    """How one slice stage trained: epochs run, the cap, and the best validation score of the
    state kept (``None`` without validation or without validation users), of ``metric``
    (``valid_metric``, lower case: NDCG@10 by default), recorded as ``best_valid_<metric>``."""

    epochs: int
    cap: int
    best_valid: Optional[float] = None
    metric: str = "ndcg@10"
    #: whether the cap, not validation, ended training (``UnlearnTrainer.hit_cap``)
    hit_cap: bool = False

    def to_json(self) -> dict:
        return {"epochs": self.epochs, "cap": self.cap, "hit_cap": self.hit_cap,
                f"best_valid_{self.metric}": None if self.best_valid is None else round(self.best_valid, 4)}


@dataclass
class ShardResult:
    """Weights after every (re)trained stage, how each stage trained, and the cost."""

    shard: int
    stage_states: Dict[int, StateDict] = field(default_factory=dict)
    stages: Dict[int, StageTraining] = field(default_factory=dict)
    seconds: float = 0.0
    samples: int = 0
    #: ``{stage: what it trained with}`` (:func:`stage_record`)
    trained_on: Dict[int, Dict[str, str]] = field(default_factory=dict)


def stage_targets(config, dataset: UnlearnSequentialDataset, shard_map: ShardMap, shard: int, stage: int,
                  keep: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(training targets, validation targets)`` (log rows) of one slice stage under ``keep``:
    what :func:`train_shard` trains and validates that stage on (no validation targets without
    ``validate_submodels``)."""
    train = shard_map.stage_targets(dataset, shard, stage, keep)
    valid = shard_map.stage_valid_targets(dataset, shard, stage, keep) if config["validate_submodels"] \
        else np.array([], dtype=np.int64)
    return train, valid


def stage_data_digest(config, dataset: UnlearnSequentialDataset, shard_map: ShardMap, shard: int, stage: int,
                      keep: np.ndarray) -> str:
    """The digest of one slice stage's samples under ``keep`` (``samples_digest``). Recorded when
    the stage trains; ``--verify`` recomputes it on the remaining data, so weights a forget left
    untrained where their data changed are found."""
    return dataset.samples_digest(stage_targets(config, dataset, shard_map, shard, stage, keep), keep)


#: the ``start`` of a stage trained from its seeded initialisation (no earlier stage's weights)
SEEDED = "seeded"


#: the keys of a stage's training record (:func:`stage_record`); ``threads`` (an int) beside
#: them in records written since it was recorded
RECORD_KEYS = ("samples", "start", "weights")


def stage_record(samples: str, start: str, weights: str, threads: Optional[int] = None) -> Dict[str, object]:
    """What one slice stage trained with, recorded when it trains: ``samples`` (the digest of
    its samples, :func:`stage_data_digest`), ``start`` (``state_digest`` of the weights it started
    from, the slice stage before it, or :data:`SEEDED`) and ``weights`` (``state_digest`` of the
    weights it produced). ``--verify`` recomputes all three from the remaining data and the live
    files, so weights that are not what training on the remaining data gave are found, in any
    slice stage, not only the last (which the aggregator's record covers). ``threads``: the
    torch thread count it trained with (a stage resumed after it trains with the same)."""
    record: Dict[str, object] = dict(zip(RECORD_KEYS, (samples, start, weights)))
    if threads is not None:
        record["threads"] = int(threads)
    return record


def slice_epochs(config) -> int:
    """Epochs of one slice stage: ``slice_epochs`` if set, else ``ceil(epochs / n_slices)``."""
    if config["slice_epochs"]:
        return int(config["slice_epochs"])
    return max(1, math.ceil(config["epochs"] / config["n_slices"]))


def train_shard(config, dataset: UnlearnSequentialDataset, shard_map: ShardMap, keep: np.ndarray,
                job: ShardJob, num_threads: Optional[int] = None) -> ShardResult:
    """Run the slice stages ``job.start_stage .. n_slices-1`` of one shard (see module doc) with
    ``job.num_threads`` torch threads, else ``num_threads`` if given. The caller's thread count
    is restored afterwards.
    In-process, a set ``shard_num_threads`` used to stay in force for the rest of the process:
    Retrain, evaluation and every later row ran on that many threads."""
    previous = torch.get_num_threads()
    num_threads = job.num_threads or num_threads
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        return _train_stages(config, dataset, shard_map, keep, job)
    finally:
        torch.set_num_threads(previous)


def _train_stages(config, dataset: UnlearnSequentialDataset, shard_map: ShardMap, keep: np.ndarray,
                  job: ShardJob) -> ShardResult:
    start = time.perf_counter()
    result = ShardResult(job.shard)
    state = job.init_state
    start_digest = SEEDED if state is None else state_digest(state)
    for stage in range(job.start_stage, shard_map.n_slices):
        train_targets, valid_targets = stage_targets(config, dataset, shard_map, job.shard, stage, keep)
        samples_digest = dataset.samples_digest((train_targets, valid_targets), keep)
        samples = dataset.sample_dataset(train_targets, keep)
        # a stage left without samples (every user of its slices forgotten) is its seeded
        # initialisation: what training on nothing gives
        rows = shard_map.stage_rows(dataset, job.shard, stage, keep)
        loader = train_loader(config, dataset, samples, rows) if len(samples) else None
        model = new_model(config, samples, stage_seed(config, job.shard, stage))
        if state is not None:
            model.load_state_dict(state)
        cap = slice_epochs(config)
        training = StageTraining(0, cap, metric=valid_metric_name(config))
        if loader is not None:
            fault_point("shard_training")
            valid = None
            if len(valid_targets):
                valid = eval_loader(config, dataset, dataset.samples(valid_targets, keep))
            trainer = UnlearnTrainer(config, model)
            trainer.cap_epochs(cap)
            best, _ = trainer.fit(loader, valid, verbose=False, saved=valid is not None,
                                  show_progress=config["show_progress"])
            if valid is not None:
                trainer.load_best()
                training.best_valid = validated_score(best)
            training.epochs = len(trainer.train_loss_dict)
            training.hit_cap = trainer.hit_cap()
            result.samples += len(samples) * training.epochs
        result.stages[stage] = training
        state = cpu_state_dict(model)
        result.stage_states[stage] = state
        result.trained_on[stage] = stage_record(samples_digest, start_digest, state_digest(state),
                                                torch.get_num_threads())
        start_digest = result.trained_on[stage]["weights"]
    result.seconds = time.perf_counter() - start
    return result


def run_shard_jobs(config, dataset: UnlearnSequentialDataset, shard_map: ShardMap, keep: np.ndarray,
                   jobs: List[ShardJob]) -> List[ShardResult]:
    """Run ``jobs``: in this process when ``num_workers <= 1``, else as Ray tasks (a local Ray
    with ``num_workers`` CPUs, or the cluster at ``ray_address``)."""
    if not jobs:
        return []
    if config["num_workers"] <= 1:
        return [train_shard(config, dataset, shard_map, keep, job, config["shard_num_threads"]) for job in jobs]
    return _run_on_ray(config, dataset, shard_map, keep, jobs)


def check_ray_resources(config, available: Optional[Dict[str, float]] = None) -> None:
    """Refuse shard resources Ray can never grant (a shard would wait for them for ever, holding
    the model folder's lock): more CPUs per shard than the local Ray's ``num_workers`` (or than
    the cluster's, ``available``), GPUs per shard where there are fewer; and quantities Ray
    raises for at its first shard (above 1 but not whole, more than 4 decimals)."""
    if config["num_workers"] <= 1:
        return
    for key in ("ray_cpus_per_shard", "ray_gpus_per_shard"):  # Ray raises at ray.remote for these
        value = config[key]
        if value > 1 and value != int(value):
            raise UnlearnError(f"{key} {value!r}: Ray takes a whole number above 1 (a fraction only below it)")
        if value and round(value, 4) != value:
            raise UnlearnError(f"{key} {value!r}: Ray takes at most 4 decimal places")
    source = f"num_workers {config['num_workers']}"
    if available is None:
        if config["ray_address"] and config["ray_address"] != "local":  # before anything trains: it was
            _check_reachable(config["ray_address"], config["ray_connect_timeout_s"])  # found at the first shard
            return  # a cluster's resources are known once connected (_run_on_ray)
        cpus = config["num_workers"]
        if config["ray_address"] == "local":  # Ray starts with the machine's CPUs, whatever num_workers says
            cpus, source = os.cpu_count() or 1, "ray_address local: the machine's"  # (refused once started: r12ray)
        available = {"CPU": cpus, "GPU": torch.cuda.device_count()}
    for key, name in (("ray_cpus_per_shard", "CPU"), ("ray_gpus_per_shard", "GPU")):
        if config[key] > available.get(name, 0):
            raise UnlearnError(f"{key} {config[key]:g} exceeds the {available.get(name, 0):g} {name}s Ray has "
                               f"({source}): no shard could ever start")


@contextmanager
def _python_signal_handlers_kept():
    """Put back the process's SIGTERM and SIGINT handlers after importing ray (which sets one that
    exits with status 15) and after ``ray.init`` (whose core installs one that aborts with a core
    dump's trace): a stop then ends the run with the CLI's one ``error: interrupted`` line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            if handler is not None:
                signal.signal(sig, handler)


#: the Ray this package started in this process: what for (``(ray_address, num_cpus)``) and the
#: driver's node id (a local Ray the user started since has another); ``None``: none started
_RAY_STARTED_FOR: Optional[Tuple[Optional[str], Optional[int], Optional[str]]] = None


def _holds_cpus(ray) -> bool:
    """Whether the running Ray still has CPUs: a local Ray whose raylet died has none (it was
    reused, and every later forget failed as "exceeds the 0 CPUs Ray has")."""
    try:
        return ray.cluster_resources().get("CPU", 0) > 0
    except Exception:  # a Ray that cannot say is not one to run shards on
        return False


def _local_processes_alive(ray) -> bool:
    """Whether every process of the local Ray this driver started (its raylet, its GCS, ...) still
    runs: Ray counts a node whose raylet was killed dead, and its CPUs gone, only about 18 s later
    (a forget in that window failed). A driver joined to a cluster started none: ``True``."""
    try:
        node = ray._private.worker._global_node
    except AttributeError:  # another Ray than the pinned one: the CPU count tells (_holds_cpus)
        return True
    return node is None or node.remaining_processes_alive()


def _ray_node(ray) -> Optional[str]:
    """The running Ray driver's node id (a new local Ray is a new node; the job id is not: every
    new local Ray's first job is ``01000000``), or ``None``."""
    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # an older Ray without it: then only the settings tell
        return None


#: the port of Ray's client server, which a ``ray://host`` address without one names
RAY_CLIENT_PORT = 10001


def _auto_cluster_address() -> Optional[str]:
    """The ``host:port`` Ray's own ``auto`` resolves to (``RAY_ADDRESS``, the address file of a
    ``ray start`` on this machine under Ray's temporary folder, or a running cluster it finds),
    ``None`` where it finds none; ``"auto"`` where this Ray cannot say (its own answer then)."""
    with _python_signal_handlers_kept():  # importing ray sets its own SIGTERM handler
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except Exception:  # another Ray than the pinned one
            return "auto"
    try:
        return canonicalize_bootstrap_address("auto")
    except ConnectionError:
        return None
    except Exception:
        return "auto"


def _auto_address(timeout_s: float) -> None:
    """Refuse ``ray_address: auto`` where Ray finds no cluster, or nothing listens at the one it
    finds: it passed the check, and a run trained its original and Retrain (a request run queued
    and failed its requests) before Ray's error."""
    named = _auto_cluster_address()
    if named is None:
        raise UnlearnError("ray_address auto: no Ray cluster answers there (none is named by RAY_ADDRESS or "
                           "found running on this machine: ray start --head, or leave ray_address out for a "
                           "local Ray)")
    if named != "auto":
        _check_reachable(named, timeout_s, shown="auto")


def _check_reachable(address: str, timeout_s: float, shown: Optional[str] = None) -> None:
    """Refuse a ``host:port`` or ``ray://host[:port]`` ``ray_address`` nothing listens on at once
    (``ray.init`` retried for minutes, printing a line each time, before failing; Ray's client
    for 30 s), and a host without a port (a traceback from Ray); ``auto``: :func:`_auto_address`.
    ``shown``: the address the user gave, in the error (``auto`` for the one it named)."""
    if address == "auto":
        return _auto_address(timeout_s)
    shown = shown or address
    client = address.startswith("ray://")
    target = address[len("ray://"):] if client else address
    if client and not re.search(r":\d+$", target):
        target += f":{RAY_CLIENT_PORT}"  # Ray's client port when none is given
    if target == "local":
        return
    host, _, port = target.rpartition(":")
    # a host without a port ended in Ray's traceback; another scheme (http://) too, after the
    # original trained; an empty host waited for Ray's client (r12ray probe)
    if "://" in target or not host.strip("[]") or not port.isdigit():
        raise UnlearnError(f"ray_address {shown}: give host:port, ray://host[:port], auto or local (Ray "
                           "ended in a traceback, or waited, for this one)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]: an IPv6 address
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise UnlearnError(f"ray_address {shown}: no Ray cluster answers there ({e.strerror or e})") from None
    if not client:  # Ray's client gives up by itself (30 s)
        _check_gcs(target, timeout_s, shown)


#: what the reachability check asks a Ray GCS for: a key no one stores (a GCS answers "not found")
GCS_PROBE_KEY = (b"recbole_unlearn", b"reachability-check")


def _check_gcs(target: str, timeout_s: float, shown: str) -> None:
    """Refuse a ``host:port`` that accepts connections where no Ray GCS answers (a web server, a
    silent service): ``ray.init`` waited on it with Ray's own retries for minutes, with the model
    folder locked, before its error. Asks the GCS for one key over Ray's own gRPC channel (TLS
    where ``RAY_USE_TLS`` says so), within ``timeout_s``."""
    with _python_signal_handlers_kept():  # importing ray sets its own SIGTERM handler
        try:
            import grpc
            from ray._private.utils import init_grpc_channel
            from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
        except Exception:  # another Ray than the pinned one: its own answer
            return
    channel = init_grpc_channel(target)
    try:
        namespace, key = GCS_PROBE_KEY
        gcs_service_pb2_grpc.InternalKVGcsServiceStub(channel).InternalKVGet(
            gcs_service_pb2.InternalKVGetRequest(namespace=namespace, key=key), timeout=timeout_s)
    except grpc.RpcError as e:
        raise UnlearnError(f"ray_address {shown}: something answers there, but no Ray cluster (asked as Ray's "
                           f"GCS, within {timeout_s:g} s: {e.code().name.lower()})") from None
    finally:
        channel.close()


def connect_ray(ray, config) -> None:
    """Start (or join) the Ray ``config`` asks for: a local one of ``num_workers`` CPUs, or the
    cluster at ``ray_address``. A Ray this package started for other settings (an earlier call in
    the same process) is shut down first: it was reused as it was, so a later call asking for
    more CPUs was refused and one naming a cluster ran locally while recording that address. A
    Ray the user started is used as it is. An unreachable cluster is one error."""
    global _RAY_STARTED_FOR
    wanted = (config["ray_address"] or None, None if config["ray_address"] else int(config["num_workers"]))
    if ray.is_initialized():
        ours = _RAY_STARTED_FOR is not None and _RAY_STARTED_FOR[2] == _ray_node(ray)
        if not ours or (_RAY_STARTED_FOR[:2] == wanted and _holds_cpus(ray) and _local_processes_alive(ray)):
            return
        with descendants_ended():  # its workers' CPU is not other processes'
            ray.shutdown()
        _RAY_STARTED_FOR = None
    if config["ray_address"]:
        _check_reachable(config["ray_address"], config["ray_connect_timeout_s"])
    with _python_signal_handlers_kept():
        try:
            if config["ray_address"]:
                ray.init(address=config["ray_address"], log_to_driver=False)
            else:
                # "local": a new Ray of num_workers CPUs, also where a `ray start` cluster runs on
                # this machine (Ray joined it and refused num_cpus: a traceback after training)
                ray.init(address="local", num_cpus=config["num_workers"], include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
        except ConnectionError as e:
            raise UnlearnError(f"ray_address {config['ray_address']}: no Ray cluster answers there "
                               f"({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
    _RAY_STARTED_FOR = wanted + (_ray_node(ray),)
    getLogger().info(f"ray started: {ray.cluster_resources()}")


def _run_on_ray(config, dataset, shard_map, keep, jobs) -> List[ShardResult]:
    with _python_signal_handlers_kept():  # importing ray sets its own SIGTERM handler (sys.exit(15))
        import ray

    connect_ray(ray, config)
    check_ray_resources(config, ray.cluster_resources())
    cpus = config["ray_cpus_per_shard"]
    threads = config["shard_num_threads"] or max(1, int(cpus))
    remote = ray.remote(num_cpus=cpus, num_gpus=config["ray_gpus_per_shard"])(train_shard)
    refs = [ray.put(obj) for obj in (config, dataset, shard_map, keep)]
    futures = [remote.remote(*refs, job, threads) for job in jobs]
    return ray.get(futures)
