"""SISA: partitions, the ensemble, sliced shard training and the four proofs of forgetting."""
import os
import re
import socket
from concurrent import futures
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.data import build_shard_map, create_unlearn_dataset, sample_forget_set
from recbole_unlearn.data.partition import ShardMap, check_shard_users, shard_loads, shard_sizes
from recbole_unlearn.evaluator import full_ranking_metrics
from recbole_unlearn.trainer import ShardJob, train_shard
from recbole_unlearn.unlearnable import ShardedUnlearnableModel
from recbole_unlearn.utils.errors import UnlearnError

from conftest import tiny_dict


def sisa_config(model="GRU4Rec", **overrides):
    cfg = tiny_dict(unlearn_method="sisa", n_shards=3, n_slices=2, epochs=2, shard_num_threads=1)
    cfg.update(overrides)
    return UnlearnConfig(model, config_dict=cfg).for_method("sisa")


@pytest.fixture(scope="module")
def setup():
    config = sisa_config()
    return config, create_unlearn_dataset(config)


@pytest.fixture(scope="module")
def trained(setup):
    config, dataset = setup
    return ShardedUnlearnableModel.train(config, dataset)


def test_random_partition_is_balanced_and_seeded(setup):
    config, dataset = setup
    shard_map = build_shard_map(config, dataset)
    sizes = shard_sizes(shard_map)
    assert sum(sizes) == 60 and max(sizes) - min(sizes) <= 1
    for k in range(3):
        slices = np.bincount(shard_map.user_slice[shard_map.shard_users(k)], minlength=2)
        assert max(slices) - min(slices) <= 1
    again = build_shard_map(config, dataset)
    assert np.array_equal(again.user_shard, shard_map.user_shard)
    other = build_shard_map(sisa_config(partition_seed=1), dataset)
    assert not np.array_equal(other.user_shard, shard_map.user_shard)


def test_random_partition_can_balance_interactions(setup):
    """``partition_balance: interactions``: shuffled users dealt to the lightest shard, so the
    shards' training interactions differ by at most the heaviest user's."""
    config, dataset = setup
    shard_map = build_shard_map(config.override({"partition_balance": "interactions"}), dataset)
    loads = shard_loads(shard_map, dataset)
    heaviest = np.bincount(dataset.log_user[dataset.is_training]).max()
    assert sum(loads) == int(dataset.is_training.sum()) and max(loads) - min(loads) <= heaviest
    assert min(shard_sizes(shard_map)) > 0


def test_users_without_training_interactions_still_spread_over_shards(setup):
    """Under ``partition_balance: interactions`` a user with nothing left to train on weighed
    0, so once everything was forgotten (a redrawn partition) every user went to one shard and
    the forget was refused, its requests left queued. Such a user counts as one."""
    config, dataset = setup
    keep = dataset.full_keep() & ~dataset.is_training
    shard_map = build_shard_map(config.override({"partition_balance": "interactions", "n_slices": 2}), dataset, keep=keep)
    sizes = shard_sizes(shard_map)
    assert max(sizes) - min(sizes) <= 1


def test_a_shard_with_fewer_users_than_slices_is_refused():
    check_shard_users(np.array([0, 0, 1, 1, 2]), 3, 1)
    with pytest.raises(UnlearnError, match="shard 2 holds 1 users, fewer than n_slices = 2"):
        check_shard_users(np.array([0, 0, 1, 1, 2]), 3, 2)
    with pytest.raises(UnlearnError, match="shard 2 holds 0 users"):
        check_shard_users(np.array([0, 0, 1, 1]), 3, 1)


def test_shard_map_json_round_trip(setup):
    config, dataset = setup
    shard_map = build_shard_map(config, dataset)
    back = ShardMap.from_json(shard_map.to_json(dataset), dataset)
    assert np.array_equal(back.user_shard, shard_map.user_shard)
    assert np.array_equal(back.user_slice, shard_map.user_slice)


@pytest.mark.parametrize("overrides, message", [
    ({"n_shards": 0}, "'n_shards' must be a positive integer"),
    ({"n_shards": 61, "n_slices": 1}, "exceeds the 60 users"),
    ({"partitioner": "nope"}, "unknown partitioner 'nope'"),
])
def test_bad_shard_settings(setup, overrides, message):
    _, dataset = setup
    with pytest.raises(UnlearnError, match=message):
        build_shard_map(sisa_config(**overrides), dataset)


def _rows_seen_by_shard(model, shard):
    """Every log row a shard's training samples are built from (targets and histories), over
    all slice stages."""
    dataset, keep = model.dataset, model.keep_mask()
    seen = set()
    for stage in range(model.shard_map.n_slices):
        targets = model.shard_map.stage_targets(dataset, shard, stage, keep)
        kept_targets, history, valid = dataset.history_rows(targets, keep)
        seen |= set(kept_targets.tolist()) | set(history[valid].tolist())
    return seen


@pytest.fixture(scope="module")
def after_forget(setup, trained):
    """Forget a slice-1 user's items plus part of the thesis forget set owned by one shard."""
    config, dataset = setup
    before = [{k: v.clone() for k, v in s.items()} for s in trained.final_states()]
    thesis = sample_forget_set(config, dataset)
    owners = trained.shard_map.owner_of_rows(dataset, thesis.rows)
    target_shard = int(owners[0])
    rows = thesis.rows[owners == target_shard]
    # make sure the forgotten data sits in slice 1 for at least one user, so slicing is exercised
    slice1_users = [u for u in trained.shard_map.shard_users(target_shard) if trained.shard_map.user_slice[u] == 1]
    extra_rows = dataset.user_rows(slice1_users[0])[2:4]
    rows = np.union1d(rows, extra_rows)
    report = trained.forget(rows)
    return trained, before, rows, report, target_shard


def test_proof_a_no_shard_sees_a_forgotten_interaction(after_forget):
    model, _, rows, _, _ = after_forget
    for shard in range(model.shard_map.n_shards):
        assert not (_rows_seen_by_shard(model, shard) & set(rows.tolist()))


def test_proof_b_every_kept_training_interaction_in_exactly_one_shard(after_forget):
    model, _, rows, _, _ = after_forget
    dataset = model.dataset
    per_shard = [set(model.shard_training_rows(k).tolist()) for k in range(model.shard_map.n_shards)]
    union = set().union(*per_shard)
    assert sum(len(s) for s in per_shard) == len(union)  # disjoint
    expected = set(np.flatnonzero(dataset.is_training).tolist()) - set(rows.tolist())
    assert union == expected


def test_proof_c_untouched_shards_are_bit_identical(after_forget):
    model, before, _, report, target_shard = after_forget
    assert report.shards == [target_shard]
    for shard, state in enumerate(model.final_states()):
        same = all(torch.equal(state[k], before[shard][k]) for k in state)
        assert same == (shard != target_shard)


def test_proof_d_retrained_shard_equals_training_from_scratch(after_forget):
    model, _, _, report, target_shard = after_forget
    assert report.start_stages[target_shard] == 0 or report.start_stages[target_shard] == 1
    scratch = train_shard(model.config, model.dataset, model.shard_map, model.keep_mask(), ShardJob(target_shard), 1)
    last = model.shard_map.n_slices - 1
    for key, value in scratch.stage_states[last].items():
        assert torch.equal(value, model.stage_states[target_shard][last][key]), key


def test_restart_from_slice_checkpoint(setup):
    """Forgetting only slice-1 data restarts from the stage-0 checkpoint and still equals a
    from-scratch shard."""
    config, dataset = setup
    model = ShardedUnlearnableModel.train(config, dataset)
    shard = 0
    user = next(u for u in model.shard_map.shard_users(shard) if model.shard_map.user_slice[u] == 1)
    stage0 = {k: v.clone() for k, v in model.stage_states[shard][0].items()}
    report = model.forget(dataset.user_rows(user)[2:3])
    assert report.start_stages == {shard: 1}
    assert all(torch.equal(stage0[k], model.stage_states[shard][0][k]) for k in stage0)
    scratch = train_shard(config, dataset, model.shard_map, model.keep_mask(), ShardJob(shard), 1)
    assert all(torch.equal(v, model.stage_states[shard][1][k]) for k, v in scratch.stage_states[1].items())


def test_forgetting_again_is_a_no_op(after_forget):
    model, _, rows, _, _ = after_forget
    report = model.forget(rows)
    assert report.interactions == 0 and report.shards == []


def test_static_aggregator_learns_weights(setup):
    config = sisa_config(aggregator="static", agg_epochs=1, n_slices=1)
    dataset = setup[1]
    model = ShardedUnlearnableModel.train(config, dataset)
    weights = model.ensemble.aggregator.weights().cpu()
    assert weights.shape == (3,) and torch.isclose(weights.sum(), torch.tensor(1.0))
    assert not torch.allclose(weights, torch.full((3,), 1 / 3))


@pytest.mark.parametrize("model_name", ["GRU4Rec", "SASRec", "BERT4Rec"])
def test_ensemble_evaluates_with_each_model(model_name, setup):
    config = sisa_config(model_name, n_shards=2, n_slices=1, epochs=1)
    dataset = create_unlearn_dataset(config)
    model = ShardedUnlearnableModel.train(config, dataset)
    from recbole_unlearn.data import split_loaders
    loaders = split_loaders(config, dataset)
    result = full_ranking_metrics(model.ensemble, loaders.test, config, ["NDCG"], [10])
    assert 0.0 <= result["ndcg@10"] <= 1.0
    batch = next(iter(loaders.test))[0].to(config["device"])
    scores = model.ensemble.full_sort_predict(batch)
    subs = torch.stack([s.full_sort_predict(batch) for s in model.ensemble.sub_models])
    assert torch.allclose(scores, subs.mean(0))


POPULARITY_NEGATIVES = dict(loss_type="BPR", train_neg_sample_args={
    "distribution": "popularity", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0})


def _fixture_plus_one_row(tmp_path):
    """``(data_path, user, item, time)``: ml-tiny plus one early training interaction of user 5
    with item 117 (another user's item), written last so every token keeps its id."""
    from conftest import FIXTURES

    folder = tmp_path / "plus-one" / "ml-tiny"
    folder.mkdir(parents=True)
    text = open(f"{FIXTURES}/ml-tiny/ml-tiny.inter", encoding="utf-8").read()
    (folder / "ml-tiny.inter").write_text(text.rstrip("\n") + "\n5\t117\t1\t875635100\n", encoding="utf-8")
    return str(tmp_path / "plus-one"), "5", "117", 875635100.0


def _the_added_row(dataset, user, item, time):
    uid, iid = dataset.token2id(dataset.uid_field, user), dataset.token2id(dataset.iid_field, item)
    log = dataset.log_feat
    rows = np.flatnonzero((log[dataset.uid_field].numpy() == uid) & (log[dataset.iid_field].numpy() == iid)
                          & (log[dataset.time_field].numpy() == time))
    assert len(rows) == 1 and dataset.is_training[rows[0]]
    return rows


@pytest.mark.parametrize("model", ["GRU4Rec", "SASRec"])
def test_a_forget_equals_a_fit_on_data_without_the_row_with_popularity_negatives(tmp_path, monkeypatch, model):
    """A probe: with ``distribution: popularity`` negatives, RecBole's sampler counted item
    popularity over the whole log, so every shard (retrained or not) and Retrain drew negatives
    by the forgotten row's count and by other shards' users. Forgetting a row must leave the
    shards a fit on the file without that row gives, bit for bit; Retrain likewise."""
    from recbole_unlearn.data.utils import split_loaders
    from recbole_unlearn.trainer.training import train_model

    monkeypatch.chdir(tmp_path)
    data_path, user, item, time = _fixture_plus_one_row(tmp_path)
    with_row = sisa_config(model, n_shards=2, n_slices=1, epochs=1, data_path=data_path, **POPULARITY_NEGATIVES)
    without = sisa_config(model, n_shards=2, n_slices=1, epochs=1, **POPULARITY_NEGATIVES)
    data_with, data_without = create_unlearn_dataset(with_row), create_unlearn_dataset(without)
    for field in (data_with.uid_field, data_with.iid_field):
        assert data_with.field2id_token[field].tolist() == data_without.field2id_token[field].tolist()
    rows = _the_added_row(data_with, user, item, time)

    forgotten = ShardedUnlearnableModel.train(with_row, data_with)
    forgotten.forget(rows)
    fresh = ShardedUnlearnableModel.train(without, data_without)
    for shard, (after, scratch) in enumerate(zip(forgotten.final_states(), fresh.final_states())):
        for key in scratch:
            assert torch.equal(after[key], scratch[key]), (shard, key)

    keep = data_with.full_keep()
    keep[rows] = False
    retrain = train_model(with_row, split_loaders(with_row, data_with, keep)).model.state_dict()
    scratch = train_model(without, split_loaders(without, data_without)).model.state_dict()
    for key in scratch:
        assert torch.equal(retrain[key], scratch[key]), ("retrain", key)


def test_a_redrawn_sru_forget_equals_a_fit_on_data_without_the_row_with_popularity_negatives(tmp_path, monkeypatch):
    """The same for SRU with ``redraw_partition``: its partition pretraining, shards and attention
    aggregator all drew negatives by the whole log's counts (the aggregator differed by 0.77)."""
    monkeypatch.chdir(tmp_path)
    data_path, user, item, time = _fixture_plus_one_row(tmp_path)
    settings = dict(tiny_dict(unlearn_method="sru", n_shards=2, agg_epochs=1, partition_pretrain_epochs=1,
                              extra_deletion="none", redraw_partition=True, shard_num_threads=1),
                    **POPULARITY_NEGATIVES)
    with_row = UnlearnConfig("SASRec", config_dict=dict(settings, data_path=data_path)).for_method("sru")
    without = UnlearnConfig("SASRec", config_dict=settings).for_method("sru")
    data_with, data_without = create_unlearn_dataset(with_row), create_unlearn_dataset(without)
    forgotten = ShardedUnlearnableModel.train(with_row, data_with)
    forgotten.forget(_the_added_row(data_with, user, item, time))
    fresh = ShardedUnlearnableModel.train(without, data_without)
    assert np.array_equal(forgotten.shard_map.user_shard, fresh.shard_map.user_shard)
    for shard, (after, scratch) in enumerate(zip(forgotten.final_states(), fresh.final_states())):
        assert all(torch.equal(after[key], scratch[key]) for key in scratch), shard
    after, scratch = forgotten.ensemble.state_dict(), fresh.ensemble.state_dict()
    assert all(torch.equal(after[key], scratch[key]) for key in scratch)


def test_the_original_draws_no_negative_by_the_held_out_twins(tmp_path, monkeypatch):
    """A probe: under ``audit: True`` the held-out twins H are left out of every model's training
    data, yet the original's (and every ``keep``-less loader's) popularity sampler still counted
    them. Its sampler counts the rows it may train on: all but H."""
    from recbole_unlearn.data.utils import split_loaders

    monkeypatch.chdir(tmp_path)
    config = sisa_config("SASRec", n_shards=2, n_slices=1, **POPULARITY_NEGATIVES)
    dataset = create_unlearn_dataset(config)
    dataset.held_out = dataset.user_rows(3)[1:3]  # two training rows, as the audit's twins are
    counted = split_loaders(config, dataset).train._sampler.dataset.inter_feat
    assert len(counted) == dataset.n_rows - 2


def test_a_partitioner_registered_on_pretrained_vectors_gets_them(in_tmp):
    """A new partitioner reading the pretrained vectors was "one file plus one line", yet only
    the four built-in names got vectors (a hard-coded set): a fifth crashed with a traceback
    after the run folder was written, its pretraining settings were refused as unread, and
    ``redraw_partition`` too (probe). A partitioner that declares ``pretrained_vectors=True``
    when it registers is a similarity partitioner by that alone."""
    from recbole_unlearn import run_recbole_unlearn
    from recbole_unlearn.data import PARTITIONERS
    from recbole_unlearn.data.similarity import is_similarity_partitioner
    from recbole_unlearn.utils.registry import Registry

    seen = []

    def by_hidden_norm(config, dataset, users, n_shards, embeddings, weights=None):
        seen.append(embeddings.user_hidden.shape)
        order = np.argsort(np.linalg.norm(embeddings.user_hidden[users], axis=1), kind="stable")
        shards = np.empty(len(users), dtype=np.int64)
        shards[order] = np.arange(len(users)) % n_shards
        return shards

    saved = dict(PARTITIONERS._entries), dict(PARTITIONERS._traits)
    try:
        PARTITIONERS.register("byhiddennorm", pretrained_vectors=True)(by_hidden_norm)
        assert is_similarity_partitioner("ByHiddenNorm") and not is_similarity_partitioner("random")
        PARTITIONERS.register("hiddennorm")(by_hidden_norm)  # an alias is the same entry, traits too (probe)
        assert is_similarity_partitioner("hiddennorm") and is_similarity_partitioner("ubp")
        doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
            unlearn_method="sisa", n_shards=2, partitioner="byhiddennorm", partition_pretrain_epochs=1,
            redraw_partition=True, include_retrain=False, save_model=False, results_dir=str(in_tmp / "r")),
            verbose=False)
    finally:
        PARTITIONERS._entries, PARTITIONERS._traits = saved
    assert seen and doc["rows"][-1]["method"] == "sisa"
    assert Registry("x", "y").traits("nothing") == {}


class _FakeRay:
    """Ray's ``is_initialized`` / ``init`` / ``shutdown`` / ``cluster_resources``, recording calls."""

    def __init__(self, initialized=False, refuse=None):
        self.initialized, self.calls, self.refuse, self.cpus, self.job = initialized, [], refuse, 2, 0
        self.node = type("Node", (), {"dead": [], "remaining_processes_alive": lambda node: not node.dead})()
        self._private = type("Private", (), {"worker": type("Worker", (), {"_global_node": self.node})})

    def _new_node(self):
        self.node.dead = []

    def get_runtime_context(self):
        job = self.job
        return type("Context", (), {"get_node_id": lambda _: f"node-{job}"})()

    def is_initialized(self):
        return self.initialized

    def init(self, address=None, num_cpus=None, **kwargs):
        self.calls.append(("init", address, num_cpus))
        if self.refuse and address == self.refuse:
            raise ConnectionError(f"Could not find any running Ray instance at {address}")
        self.initialized, self.cpus, self.job = True, num_cpus or 8, self.job + 1
        self._new_node()

    def shutdown(self):
        self.calls.append(("shutdown",))
        self.initialized = False

    def cluster_resources(self):
        return {"CPU": self.cpus}


#: a shard's Ray resources, as the defaults give them
ONE_CPU = {"ray_cpus_per_shard": 1, "ray_gpus_per_shard": 0}


def test_a_second_call_in_one_process_gets_the_ray_its_settings_ask_for(monkeypatch):
    """Ray started by one call (``num_workers`` 2, local) was reused as it was by every later call
    in the process: one asking for 3 CPUs per shard was refused ("exceeds the 2 CPUs Ray has"),
    and one naming an unreachable ``ray_address`` ran on the local Ray and recorded that address
    (found by probing). Ray this package started is started again when the settings differ; a
    Ray the user started is used as it is; an unreachable cluster is one error."""
    from recbole_unlearn.trainer import shard_trainer
    from recbole_unlearn.utils.errors import UnlearnError

    monkeypatch.setattr(shard_trainer, "_RAY_STARTED_FOR", None)  # (the real one's, if any, comes back)
    ray = _FakeRay()
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 2})
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 2})  # the same: kept
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 3})
    assert ray.calls == [("init", "local", 2), ("shutdown",), ("init", "local", 3)]
    # "local": a new local Ray of that size even where a `ray start` cluster runs on the machine
    # (without it Ray joined that cluster and refused num_cpus: a traceback, exit 1, and a request
    # run's requests failed; round 2 of probing)
    ray = _FakeRay(refuse="127.0.0.1:1")
    monkeypatch.setattr(shard_trainer, "_RAY_STARTED_FOR", None)
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 2})
    with pytest.raises(UnlearnError, match="ray_address 127.0.0.1:1: no Ray cluster answers there"):
        shard_trainer.connect_ray(ray, {"ray_address": "127.0.0.1:1", "num_workers": 2, "ray_connect_timeout_s": 5})
    # a Ray Client address nothing listens on: Ray's client retried for 30 s before its error
    ray = _FakeRay()
    with pytest.raises(UnlearnError, match="ray_address ray://127.0.0.1:1: no Ray cluster answers there"):
        shard_trainer.connect_ray(ray, {"ray_address": "ray://127.0.0.1:1", "num_workers": 2,
                                        "ray_connect_timeout_s": 5})
    assert ray.calls == []  # refused before Ray was asked
    # without a port (Ray's client port, 10001) and with an IPv6 host (round 2: "[::1]" was looked
    # up as a host name, refused though a server listened there)
    monkeypatch.setattr(shard_trainer, "RAY_CLIENT_PORT", 1)  # (a test's real cluster may hold 10001)
    with pytest.raises(UnlearnError, match="ray_address ray://127.0.0.1: no Ray cluster answers there"):
        shard_trainer._check_reachable("ray://127.0.0.1", 5)
    # a host without a port ended in Ray's traceback, and every refusal came after the original and
    # Retrain had trained (round 3): the method's check asks, before anything trains
    with pytest.raises(UnlearnError, match="ray_address 127.0.0.1: give host:port"):
        shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address="127.0.0.1", ray_connect_timeout_s=5))
    with pytest.raises(UnlearnError, match="ray_address 127.0.0.1:1: no Ray cluster answers there"):
        shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address="127.0.0.1:1", ray_connect_timeout_s=5))
    # an unknown scheme ended in Ray's traceback after the original trained; an empty host waited
    # 33 s for Ray's client; a local Ray (ray_address local, the machine's CPUs) granted fewer CPUs
    # than asked only once started, the run having trained (r12ray probe)
    for address in ("http://127.0.0.1:1", "ray://", "ray://:10001", "tcp://x:1"):
        with pytest.raises(UnlearnError, match=f"ray_address {re.escape(address)}: give host:port"):
            shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address=address,
                                                   ray_connect_timeout_s=5))
    with pytest.raises(UnlearnError, match=f"ray_cpus_per_shard {os.cpu_count() + 1} exceeds the {os.cpu_count()} "
                                           r"CPUs Ray has \(ray_address local: the machine's\)"):
        shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address="local",
                                               ray_cpus_per_shard=os.cpu_count() + 1, ray_connect_timeout_s=5))
    shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address="local", ray_connect_timeout_s=5))
    if socket.has_ipv6:
        with socket.socket(socket.AF_INET6) as server:
            server.bind(("::1", 0))
            server.listen()
            shard_trainer._check_reachable(f"ray://[::1]:{server.getsockname()[1]}", 5)
    mine = _FakeRay(initialized=True)  # ray.init called by the user before the run
    monkeypatch.setattr(shard_trainer, "_RAY_STARTED_FOR", None)
    shard_trainer.connect_ray(mine, {"ray_address": None, "num_workers": 3})
    assert mine.calls == []
    # the user's own Ray started after one of the package's (round 3 of probing: it was shut down
    # and replaced, the package taking it for its own)
    ray = _FakeRay()
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 2})
    ray.shutdown()
    ray.init(num_cpus=1)  # the user's
    ray.calls.clear()
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 3})
    assert ray.calls == [] and ray.cpus == 1


def test_a_dead_local_ray_of_the_packages_is_started_again(monkeypatch):
    """A long-lived process whose local Ray's raylet died reused it: every later forget failed with
    "ray_cpus_per_shard 1 exceeds the 0 CPUs Ray has" (a valid setting blamed; Ray probe)."""
    from recbole_unlearn.trainer import shard_trainer

    monkeypatch.setattr(shard_trainer, "_RAY_STARTED_FOR", None)
    ray = _FakeRay()
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 2})
    ray.cpus = 0  # its raylet killed: the cluster holds no CPU
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 2})
    assert ray.calls == [("init", "local", 2), ("shutdown",), ("init", "local", 2)] and ray.cpus == 2
    # Ray counts the node dead, and its CPUs gone, only about 18 s after its raylet died (a forget
    # in that window failed, its requests `failed`; left in the last note): a process of the local
    # Ray that died is seen at once
    ray.calls.clear()
    ray.node.dead = ["raylet"]
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 2})
    assert ray.calls == [("shutdown",), ("init", "local", 2)] and ray.node.dead == []


@pytest.mark.parametrize("settings, message", [
    ({"ray_cpus_per_shard": 1.5}, "ray_cpus_per_shard 1.5: Ray takes a whole number above 1"),
    ({"ray_cpus_per_shard": 0.00001}, "ray_cpus_per_shard 1e-05: Ray takes at most 4 decimal places"),
    ({"ray_cpus_per_shard": 0.12345}, "ray_cpus_per_shard 0.12345: Ray takes at most 4 decimal places"),
])
def test_shard_resources_ray_refuses_are_refused_before_anything_is_asked_of_it(settings, message):
    """Ray raises at ``ray.remote`` for these: a traceback after the original and Retrain trained,
    or after a request run had queued (and failed) its requests (Ray probe)."""
    from recbole_unlearn.trainer import shard_trainer
    from recbole_unlearn.utils.errors import UnlearnError

    config = dict({"num_workers": 2, "ray_address": None, "ray_cpus_per_shard": 1, "ray_gpus_per_shard": 0}, **settings)
    with pytest.raises(UnlearnError, match=message):
        shard_trainer.check_ray_resources(config)
    shard_trainer.check_ray_resources(dict(config, ray_cpus_per_shard=0.25))  # fractions Ray takes pass


@contextmanager
def _fake_gcs():
    """A gRPC server answering the one call a Ray GCS is asked before ``ray.init`` (a key not
    found, as a real GCS answers it); yields its ``host:port``."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    class KeyValues(gcs_service_pb2_grpc.InternalKVGcsServiceServicer):
        def InternalKVGet(self, request, context):
            reply = gcs_service_pb2.InternalKVGetReply()
            reply.status.code = 17  # NotFound
            return reply

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    gcs_service_pb2_grpc.add_InternalKVGcsServiceServicer_to_server(KeyValues(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


@pytest.mark.parametrize("answer", ["nothing", "http"])
def test_a_host_port_that_answers_but_is_not_ray_is_refused_within_the_timeout(answer):
    """A ``ray_address`` where something listens but no Ray GCS answers (a silent service, a web
    server) passed the check, and ``ray.init`` then waited on it with Ray's own retries for minutes
    with the model folder locked, its requests queued and then ``failed`` (Ray probe, left in the
    last note): one error within ``ray_connect_timeout_s``, before Ray is started."""
    import http.server
    import threading
    import time

    from recbole_unlearn.trainer import shard_trainer

    if answer == "http":
        server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port, stop = server.server_address[1], server.shutdown
    else:
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port, stop = silent.getsockname()[1], silent.close
    try:
        started = time.monotonic()
        with pytest.raises(UnlearnError, match=f"ray_address 127.0.0.1:{port}: something answers there, but no Ray "
                                               "cluster"):
            shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address=f"127.0.0.1:{port}",
                                                   ray_connect_timeout_s=2))
        assert time.monotonic() - started < 10
    finally:
        stop()
    with _fake_gcs() as address:  # a GCS answering (not found, for the key asked) passes
        shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address=address, ray_connect_timeout_s=2))


def test_ray_address_auto_without_a_cluster_is_refused_before_anything_trains(monkeypatch):
    """``ray_address: auto`` with no cluster passed the reachability check (it probed host:port
    only): a run trained its original and Retrain, a request run queued and failed its requests,
    before Ray's "no cluster" (Ray probe)."""
    from recbole_unlearn.trainer import shard_trainer
    from recbole_unlearn.utils.errors import UnlearnError

    monkeypatch.setattr(shard_trainer, "_auto_cluster_address", lambda: None)  # Ray finds none
    with pytest.raises(UnlearnError, match="ray_address auto: no Ray cluster answers there"):
        shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address="auto", ray_connect_timeout_s=5))
    monkeypatch.setattr(shard_trainer, "_auto_cluster_address", lambda: "127.0.0.1:1")  # nothing listens there
    with pytest.raises(UnlearnError, match="ray_address auto: no Ray cluster answers there"):
        shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address="auto", ray_connect_timeout_s=5))
    with _fake_gcs() as address:  # a GCS answers: auto passes, as Ray's own resolution would connect
        monkeypatch.setattr(shard_trainer, "_auto_cluster_address", lambda: address)
        shard_trainer.check_ray_resources(dict(ONE_CPU, num_workers=2, ray_address="auto", ray_connect_timeout_s=5))
    # Ray's own resolution, with RAY_ADDRESS naming a cluster: its address (TMPDIR, RAY_TMPDIR and
    # running clusters are Ray's to find; a check of /tmp alone refused a cluster under TMPDIR)
    monkeypatch.undo()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6391")
    named = shard_trainer._auto_cluster_address()
    assert named == "auto" or named.endswith(":6391"), named  # Ray names this host by its address


def test_a_slice_stage_resumed_with_another_thread_count_still_equals_a_from_scratch_shard(tmp_path):
    """``shard_num_threads`` and ``num_workers`` may change on a saved model (runtime keys), and
    torch's thread count changes float rounding: a shard resumed from slice stage 1 chained
    stage 0's weights (trained with 2 threads) to a stage 1 trained with 1, a model no
    from-scratch training gives with either count, and ``--verify`` passed (a probe; Ray's
    workers train with ``ray_cpus_per_shard`` threads by default, so ``--num_workers=2`` did
    the same). A resumed shard trains with the thread count its earlier stages recorded."""
    from conftest import load_model, read_manifest, train_saved_model, verify_model
    from recbole_unlearn.quick_start.forget_requests import run_forget_requests

    model_dir = train_saved_model(tmp_path, "GRU4Rec", n_slices=2, epochs=2, shard_num_threads=2,
                                  forget_protocol="none")
    model = load_model(model_dir)
    shard = 0
    user = next(u for u in model.shard_map.shard_users(shard) if model.shard_map.user_slice[u] == 1)
    row = model.dataset.user_rows(user)[model.dataset.is_training[model.dataset.user_rows(user)]][0]
    request = tmp_path / "r.csv"
    request.write_text(f"{model.dataset.id2token('user_id', user)},"
                       f"{model.dataset.id2token('item_id', model.dataset.log_item[row])}\n")
    run_forget_requests(model_dir, str(request), {"shard_num_threads": 1}, verbose=False)
    model = load_model(model_dir)
    scratch = train_shard(model.config, model.dataset, model.shard_map, model.keep_mask(), ShardJob(shard), 2)
    for stage in (0, 1):
        live = model.stage_states[shard][stage]
        assert all(torch.equal(value, live[key]) for key, value in scratch.stage_states[stage].items()), stage
    records = read_manifest(model_dir)[1]["trained_on"]
    assert records["shard_00_stage_01.pth"]["threads"] == 2, records
    assert verify_model(model_dir)["weights_checked"] > 0
    # a count no machine runs (hand-edited) passed --verify, then every forget crashed in
    # torch.set_num_threads (round 2)
    import json
    import os

    version_dir, manifest = read_manifest(model_dir)
    manifest["trained_on"]["shard_00_stage_00.pth"]["threads"] = 10 ** 30
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(UnlearnError, match="manifest.json"):
        verify_model(model_dir)
