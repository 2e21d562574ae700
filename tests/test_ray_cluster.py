"""Shard training on a Ray cluster started the way users start one (``ray start --head``), with
a worker killed mid-shard: Ray retries the task and the shards are the same as in-process."""
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from recbole_unlearn import run_recbole_unlearn
from recbole_unlearn.utils.faults import ENV, ONCE_ENV

from conftest import load_model, read_manifest, tiny_dict

ray = pytest.importorskip("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    cli = os.path.join(os.path.dirname(sys.executable), "ray")
    if not os.path.exists(cli):
        cli = shutil.which("ray")
    if not cli:
        pytest.skip("the ray command is not installed")
    return cli


@pytest.fixture
def cluster(tmp_path):
    """A one-node cluster from ``ray start --head --num-cpus=2``; its workers kill themselves
    once, the first time one starts training a shard (``RECBOLE_UNLEARN_KILL_ONCE``)."""
    marker = tmp_path / "killed-once"
    env = dict(os.environ, **{ENV: "shard_training", ONCE_ENV: str(marker)})
    port = _free_port()
    cli = _ray_cli()
    temp = f"/tmp/ray-{os.getpid()}"
    start = subprocess.run([cli, "start", "--head", "--num-cpus=2", f"--port={port}", "--include-dashboard=false",
                            f"--temp-dir={temp}", "--disable-usage-stats"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}", marker
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([cli, "stop", "--force"], capture_output=True, timeout=300)
        shutil.rmtree(temp, ignore_errors=True)


def test_shards_trained_on_a_cluster_with_a_killed_worker_match_in_process(cluster, in_tmp):
    address, marker = cluster
    common = dict(unlearn_method="sisa", n_shards=2, n_slices=1, include_retrain=False, shard_num_threads=1,
                  save_model=False, results_dir=str(in_tmp / "r"))
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(num_workers=1, model_dir=str(in_tmp / "local"), **common),
                        verbose=False)
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(num_workers=2, ray_address=address,
                                                         model_dir=str(in_tmp / "cluster"), **common), verbose=False)
    assert marker.exists()  # a worker really was killed mid-shard, and Ray retried its task
    assert read_manifest(str(in_tmp / "local"))[1]["shard_map"] == read_manifest(str(in_tmp / "cluster"))[1]["shard_map"]
    local, remote = load_model(str(in_tmp / "local")), load_model(str(in_tmp / "cluster"))
    for a, b in zip(local.stage_states, remote.stage_states):
        for stage in a:
            assert a[stage].keys() == b[stage].keys()
            assert all(torch.equal(a[stage][k], b[stage][k]) for k in a[stage])
