"""SRU and RecEraser: similarity partitions, attention aggregators, extra deletion, sru protocol."""
import numpy as np
import pytest
import torch

from recbole_unlearn import run_recbole_unlearn
from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.data import ForgetSet, create_unlearn_dataset, sample_forget_set, split_loaders
from recbole_unlearn.data.extra_deletion import apply_extra_deletion
from recbole_unlearn.data.partition import ShardMap, build_shard_map, shard_loads, shard_sizes
from recbole_unlearn.data.similarity import _shard_means, balanced_kmeans
from recbole_unlearn.evaluator import full_ranking_metrics
from recbole_unlearn.trainer.pretrain import pretrain_embeddings
from recbole_unlearn.unlearnable import ShardedUnlearnableModel

from conftest import tiny_dict, uncached_aggregator_run


# --- balanced k-means ----------------------------------------------------------------------
def test_kmeans_recovers_planted_clusters():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = np.repeat(np.arange(3), 20)
    points = centers[truth] + rng.normal(scale=0.5, size=(60, 2))
    shard = balanced_kmeans([points], 3, 50, seed=1)
    for k in range(3):  # every shard is exactly one planted cluster
        assert len(set(truth[shard == k].tolist())) == 1 and (shard == k).sum() == 20


@pytest.mark.parametrize("n, k", [(61, 4), (10, 3), (100, 8)])
def test_balanced_within_one_and_seeded(n, k):
    points = np.random.default_rng(n).normal(size=(n, 4))
    shard = balanced_kmeans([points], k, 10, seed=3)
    sizes = np.bincount(shard, minlength=k)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == n
    assert np.array_equal(shard, balanced_kmeans([points], k, 10, seed=3))


@pytest.mark.parametrize("n, k", [(61, 4), (200, 8), (500, 3)])
def test_balanced_by_interactions_within_one_heaviest_user(n, k):
    """``partition_balance: interactions``: every user assigned, each shard's interaction load
    within the heaviest user of the others' (users' loads skewed as in real logs)."""
    rng = np.random.default_rng(n)
    points = rng.normal(size=(n, 4))
    weights = np.maximum(5, rng.zipf(1.8, size=n)).clip(max=60)
    shard = balanced_kmeans([points], k, 10, seed=3, weights=weights)
    assert shard.min() >= 0 and shard.max() < k
    loads = np.bincount(shard, weights=weights, minlength=k)
    assert loads.max() - loads.min() <= weights.max()
    assert np.array_equal(shard, balanced_kmeans([points], k, 10, seed=3, weights=weights))


def test_a_shard_left_empty_keeps_its_anchor():
    """Under weights a few heavy users can leave a shard empty: its anchor stays put (finite),
    the others move to their shards' means."""
    points = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    anchors = [np.array([[1.0, 1.0], [5.0, 5.0], [9.0, 9.0]])]
    new = _shard_means([points], anchors, np.array([0, 0, 2]))[0]
    assert np.array_equal(new, [[1.0, 0.0], [5.0, 5.0], [10.0, 10.0]])


def test_inbp_multiplies_distances():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 3))
    b = rng.normal(size=(30, 3))
    shard = balanced_kmeans([a, b], 3, 5, seed=0)
    assert np.bincount(shard, minlength=3).tolist() == [10, 10, 10]


# --- extra deletion --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tiny_setup):
    return tiny_setup


def _single_target(dataset, position=10):
    row = dataset.user_rows(dataset.token2id("user_id", "1"))[position]
    return ForgetSet(np.array([row]), source="test"), row


def test_ned_deletes_the_items_just_before_the_target(tiny):
    config, dataset = tiny
    fs, row = _single_target(dataset)
    out = apply_extra_deletion(config.override({"extra_deletion": "ned", "del_num": 2}), dataset, fs)
    assert out.extra.tolist() == [row - 2, row - 1]
    assert out.requested.tolist() == [row] and out.targets.tolist() == [row]


def test_red_deletes_random_remaining_training_items(tiny):
    config, dataset = tiny
    fs, row = _single_target(dataset)
    cfg = config.override({"extra_deletion": "red", "del_num": 3})
    out = apply_extra_deletion(cfg, dataset, fs)
    rows = dataset.user_rows(dataset.log_user[row])
    assert len(out.extra) == 3 and set(out.extra.tolist()) <= set(rows[dataset.is_training[rows]].tolist()) - {row}
    assert np.array_equal(out.extra, apply_extra_deletion(cfg, dataset, fs).extra)  # seeded


def test_ced_deletes_the_most_similar_items_by_absolute_cosine(tiny):
    config, dataset = tiny
    fs, row = _single_target(dataset)
    rows = dataset.user_rows(dataset.log_user[row])
    emb = np.tile(np.array([[0.0, 1.0]]), (dataset.item_num, 1))  # orthogonal to the target
    emb[dataset.log_item[row]] = [1.0, 0.0]
    near, opposite = rows[3], rows[15]
    emb[dataset.log_item[near]] = [0.9, 0.1]
    emb[dataset.log_item[opposite]] = [-1.0, 0.0]  # |cos| = 1: most similar in absolute value
    out = apply_extra_deletion(config.override({"extra_deletion": "ced", "del_num": 2}), dataset, fs, lambda target: emb)
    assert sorted(out.extra.tolist()) == sorted([near, opposite])


def test_del_num_zero_disables(tiny):
    config, dataset = tiny
    fs, _ = _single_target(dataset)
    assert len(apply_extra_deletion(config.override({"extra_deletion": "red", "del_num": 0}), dataset, fs).extra) == 0


# --- sru protocol -----------------------------------------------------------------------------
def test_sru_protocol(tiny):
    _, dataset = tiny
    config = UnlearnConfig("SASRec", config_dict=tiny_dict(forget_protocol="sru"))
    fs = sample_forget_set(config, dataset)
    users = np.unique(dataset.log_user[fs.targets])
    assert len(users) == len(fs.targets) == 12  # 20% of 60 users, one target each
    for target in fs.targets:
        user = dataset.log_user[target]
        rows = dataset.user_rows(user)
        n_train = int(dataset.is_training[rows].sum())
        p = dataset.log_position[target]
        assert n_train // 2 <= p < n_train
        forgotten = fs.requested[dataset.log_user[fs.requested] == user]
        assert forgotten.tolist() == list(range(target, rows[0] + n_train))  # target and everything after
    assert len(fs.forget_samples(dataset)) == 12


# --- aggregators ------------------------------------------------------------------------------
def _two_group_config(aggregator, **extra):
    cfg = tiny_dict(dataset="two-groups", unlearn_method="sru", n_shards=2, n_slices=1, epochs=15,
                    learning_rate=0.01, aggregator=aggregator, agg_epochs=30, agg_learning_rate=0.01,
                    shard_num_threads=1, MAX_ITEM_LIST_LENGTH=5, hidden_size=32, embedding_size=32)
    cfg.update(extra)
    return UnlearnConfig("GRU4Rec", config_dict=cfg).for_method("sru")


def test_attention_beats_mean_when_each_shard_is_an_expert():
    results = {}
    for aggregator in ("mean", "attention"):
        config = _two_group_config(aggregator)
        dataset = create_unlearn_dataset(config)
        users = np.arange(dataset.user_num)
        tokens = dataset.id2token("user_id", users)
        shard = np.array([0 if str(t).startswith("a") else 1 if str(t).startswith("b") else -1 for t in tokens])
        shard_map = ShardMap(shard, np.where(shard >= 0, 0, -1), 2, 1)  # shard k = user group k
        model = ShardedUnlearnableModel.train(config, dataset, shard_map=shard_map)
        test = split_loaders(config, dataset).test
        results[aggregator] = full_ranking_metrics(model.ensemble, test, config, ["NDCG"], [10])["ndcg@10"]
    assert results["attention"] > results["mean"] + 0.05, results


@pytest.mark.parametrize("aggregator", ["attention", "receraser"])
def test_learned_aggregators_have_gradients_only_in_themselves(aggregator):
    config = _two_group_config(aggregator, epochs=1, agg_epochs=1)
    dataset = create_unlearn_dataset(config)
    model = ShardedUnlearnableModel.train(config, dataset)
    ensemble = model.ensemble
    batch = next(iter(split_loaders(config, dataset).train)).to(config["device"])
    ensemble.train()
    loss = ensemble.calculate_loss(batch)
    loss.backward()
    assert all(p.grad is None for p in ensemble.sub_models.parameters())
    assert any(p.grad is not None for p in ensemble.aggregator.parameters())
    scores = ensemble.full_sort_predict(batch)
    assert scores.shape == (len(batch), dataset.item_num)


def test_similarity_partition_is_balanced_and_saved(tiny):
    config = UnlearnConfig("GRU4Rec", config_dict=tiny_dict(unlearn_method="sru", n_shards=4, epochs=1,
                                                            agg_epochs=1, shard_num_threads=1)).for_method("sru")
    dataset = create_unlearn_dataset(config)
    model = ShardedUnlearnableModel.train(config, dataset)
    sizes = shard_sizes(model.shard_map)
    assert max(sizes) - min(sizes) <= 1
    assert not hasattr(model, "embeddings")  # the pretrained vectors are dropped after partitioning
    again = ShardedUnlearnableModel.train(config, dataset)
    assert np.array_equal(again.shard_map.user_shard, model.shard_map.user_shard)


@pytest.mark.parametrize("balance", ["users", "interactions"])
def test_similarity_partition_balances_the_chosen_unit(tiny, balance):
    config = UnlearnConfig("GRU4Rec", config_dict=tiny_dict(
        unlearn_method="sru", n_shards=4, epochs=1, agg_epochs=1, shard_num_threads=1,
        partition_balance=balance)).for_method("sru")
    dataset = create_unlearn_dataset(config)
    embeddings, _ = pretrain_embeddings(config, dataset, dataset.full_keep())
    shard_map = build_shard_map(config, dataset, embeddings)
    users, loads = shard_sizes(shard_map), shard_loads(shard_map, dataset)
    heaviest = np.bincount(dataset.log_user[dataset.is_training]).max()
    if balance == "users":
        assert max(users) - min(users) <= 1
    else:
        assert max(loads) - min(loads) <= heaviest
    assert sum(loads) == int(dataset.is_training.sum())


# --- end to end -----------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["GRU4Rec", "SASRec", "BERT4Rec"])
@pytest.mark.parametrize("method", ["sru", "receraser"])
def test_methods_run_end_to_end(model, method, in_tmp):
    doc = run_recbole_unlearn(model, config_dict=tiny_dict(
        unlearn_method=method, n_shards=2, agg_epochs=1, include_retrain=False, save_model=False,
        shard_num_threads=1, results_dir=str(in_tmp / "r")), verbose=False)
    row = doc["rows"][-1]
    assert row["method"] == method
    assert row["partitioner"] == {"sru": "kmeans", "receraser": "inbp"}[method]
    assert row["aggregator"] == {"sru": "attention", "receraser": "receraser"}[method]
    if method == "sru":
        assert row["extra_deleted"] > 0  # CED, del_num 1
    assert 0.0 <= row["utility_rem"]["ndcg@10"] <= 1.0


def test_extra_deletion_lowers_sru_inference(in_tmp):
    """SRU inference Hit@k on a tiny run: with 5 neighbours of each target deleted, the target is
    harder to infer from what remains than with no extra deletion."""
    common = dict(unlearn_method="sisa", n_shards=2, include_retrain=False, save_model=False, epochs=2,
                  forget_protocol="sru", shard_num_threads=1, sru_inference_neg_num=100, results_dir=str(in_tmp / "r"))
    off = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(extra_deletion="none", **common), verbose=False)
    on = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(extra_deletion="ned", del_num=5, **common),
                             verbose=False)
    hit_off = off["rows"][-1]["sru_inference"]["hit@20"]
    hit_on = on["rows"][-1]["sru_inference"]["hit@20"]
    assert on["rows"][-1]["extra_deleted"] > 0
    assert hit_on < hit_off, (hit_on, hit_off)


def test_several_methods_keep_their_own_yaml_defaults(in_tmp):
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        unlearn_method="sisa,sru", n_shards=2, agg_epochs=1, include_retrain=False, save_model=False,
        shard_num_threads=1, results_dir=str(in_tmp / "r")), verbose=False)
    rows = {r["method"]: r for r in doc["rows"]}
    assert (rows["sisa"]["partitioner"], rows["sisa"]["aggregator"], rows["sisa"]["extra_deleted"]) == ("random", "mean", 0)
    assert (rows["sru"]["partitioner"], rows["sru"]["aggregator"]) == ("kmeans", "attention")
    assert rows["sru"]["extra_deleted"] > 0


def test_one_model_dir_for_two_saving_methods_is_refused(in_tmp):
    from recbole_unlearn.utils.errors import UnlearnError

    with pytest.raises(UnlearnError, match="model_dir names one model folder"):
        run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="sisa,sru", model_dir=str(in_tmp / "m")))
    assert not (in_tmp / "m").exists()


# --- the aggregator's representation cache --------------------------------------------------
@pytest.mark.parametrize("aggregator", ["attention", "receraser"])
@pytest.mark.parametrize("model_name", ["SASRec", "BERT4Rec"])
def test_cached_aggregator_training_equals_the_uncached_path(aggregator, model_name, monkeypatch):
    import math

    from recbole_unlearn.model import ensemble as ensemble_module
    from recbole_unlearn.trainer.aggregator_trainer import train_aggregator

    config, dataset, model, keep, batch, uncached, uncached_scores = uncached_aggregator_run(model_name, aggregator)
    cached_config = config.override({"agg_cache": True})
    calls = []
    forward = ensemble_module.sequence_representation
    monkeypatch.setattr(ensemble_module, "sequence_representation", lambda *a: calls.append(1) or forward(*a))
    training = train_aggregator(cached_config, model.ensemble, dataset, keep, model.shard_map)
    monkeypatch.undo()
    assert training.cache_mb is not None and training.cache_mb > 0
    # the sub-models ran only to fill the cache, never again in the aggregator's epochs
    assert len(calls) == 2 * math.ceil(training.samples / config["eval_batch_size"])
    assert model.ensemble.cache is None  # dropped after training
    cached = model.ensemble.aggregator.state_dict()
    assert cached.keys() == uncached.keys()
    # On CPU both paths give bit-identical states. Where the cache's bigger batches round
    # differently (CUDA), Adam turns a one-ulp change of a near-zero gradient into a step of up to
    # its learning rate: measured on CPU by scaling the cached representations by (1 + 1e-7 x noise),
    # the weights moved by up to 3.8e-4 (agg_learning_rate 1e-3) and the scores by at most 1.2e-5,
    # while a cache misaligned by one sample moved the weights by 1.1e-2-2.0e-2 and the scores by
    # 1.9e-3-0.25 (docs/benchmarks.md, the cache section). So the weights must agree within one
    # Adam step and the outputs within 1e-4, on any device (no CPU-only bit-identity: a CPU whose
    # kernels round by batch size would fail it by chance).
    for key in cached:
        torch.testing.assert_close(cached[key], uncached[key], atol=config["agg_learning_rate"], rtol=0.0,
                                   msg=lambda m: f"{key}: {m}")
    model.ensemble.eval()
    torch.testing.assert_close(model.ensemble.full_sort_predict(batch), uncached_scores, atol=1e-4, rtol=1e-4)


def test_aggregator_cache_respects_its_memory_budget(tiny):
    from recbole_unlearn.trainer.aggregator_trainer import train_aggregator

    config = UnlearnConfig("SASRec", config_dict=tiny_dict(
        unlearn_method="sru", n_shards=2, epochs=1, agg_epochs=1, shard_num_threads=1)).for_method("sru")
    dataset = create_unlearn_dataset(config)
    model = ShardedUnlearnableModel.train(config, dataset)
    full = train_aggregator(config, model.ensemble, dataset, model.keep_mask(), model.shard_map)
    small = config.override({"agg_cache_max_mb": full.cache_mb / 2})
    halved = train_aggregator(small, model.ensemble, dataset, model.keep_mask(), model.shard_map)
    assert halved.cache_mb <= full.cache_mb / 2 and halved.samples < full.samples


def test_aggregator_trains_on_all_remaining_samples_without_a_cap(tiny):
    """``agg_max_samples: ~`` (SPEC section 5: the remaining training data) trains the aggregator
    on every remaining training sample; a number draws that many of them."""
    from recbole_unlearn.trainer.aggregator_trainer import train_aggregator

    config = UnlearnConfig("SASRec", config_dict=tiny_dict(
        unlearn_method="sru", n_shards=2, epochs=1, agg_epochs=1, shard_num_threads=1,
        agg_max_samples=None)).for_method("sru")
    dataset = create_unlearn_dataset(config)
    model = ShardedUnlearnableModel.train(config, dataset)
    keep = model.keep_mask()
    targets = dataset.split_targets(keep)[0]
    remaining = len(dataset.samples(targets, keep))  # targets with a history before them
    everything = train_aggregator(config, model.ensemble, dataset, keep, model.shard_map)
    capped = train_aggregator(config.override({"agg_max_samples": len(targets) // 3}), model.ensemble,
                              dataset, keep, model.shard_map)
    assert everything.samples == remaining
    assert capped.samples <= len(targets) // 3 < remaining


def test_bert4rec_s_output_bias_is_part_of_what_it_scores_with():
    """BERT4Rec scores ``h q^T + output_bias``, a trained parameter that starts at zero: the
    preflight check of "what it scores with" ran on an untrained model (bias 0) and passed,
    while a trained BERT4Rec failed the same check (top-10 agreement 0.97 < 0.99, a probe); and
    RecEraser's aggregator, which scores items through the shards' own item embeddings, dropped
    every shard's bias. The check counts the bias, and the aggregator adds each shard's,
    weighted by its item-side attention."""
    from conftest import uncached_aggregator_run
    from recbole_unlearn.data import split_loaders
    from recbole_unlearn.trainer.preflight import _check_representations

    config, dataset, model, _, batch, _, scores = uncached_aggregator_run("BERT4Rec", "receraser")
    sub = model.ensemble.sub_models[0]
    with torch.no_grad():  # what training gives a popular item (the probe's trained bias reached 0.14)
        sub.output_bias.copy_(torch.linspace(-3.0, 3.0, len(sub.output_bias)))
    sub.eval()
    sample = next(iter(split_loaders(config, dataset).valid))[0].to(config["device"])
    _check_representations(sub, sample, sub.full_sort_predict(sample), 0.99)
    with torch.no_grad():
        biased = model.ensemble.full_sort_predict(batch)
    assert not torch.allclose(biased, scores), "the aggregator ignored the shards' output bias"


def test_a_receraser_folder_saved_before_the_item_bias_scores_as_it_was_trained(tmp_path):
    """A BERT4Rec RecEraser folder saved before its aggregator added the shards' output bias
    served other scores on the new code with no forget in between (test N@10 0.0274 -> 0.0262, a
    probe): its aggregator was trained without the term. Such a folder scores without it until a
    forget trains the aggregator again, which records ``item_bias``."""
    import json
    import os

    from conftest import load_model, read_manifest, train_saved_model
    from recbole_unlearn.quick_start.forget_requests import run_forget_requests

    model_dir = train_saved_model(tmp_path, "BERT4Rec", unlearn_method="receraser", epochs=2, agg_epochs=2,
                                  forget_protocol="none")
    model = load_model(model_dir)
    batch = next(iter(split_loaders(model.config, model.dataset).valid))[0].to(model.config["device"])
    with torch.no_grad():
        biased = model.ensemble.full_sort_predict(batch)
        model.ensemble.aggregator.adds_item_bias = False
        unbiased = model.ensemble.full_sort_predict(batch)
    assert not torch.equal(biased, unbiased)  # the shards' trained bias moves the scores
    version_dir, manifest = read_manifest(model_dir)
    assert manifest["aggregator_trained_on"]["item_bias"] is True
    del manifest["aggregator_trained_on"]["item_bias"]  # as a folder saved before wrote it
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    old = load_model(model_dir)
    with torch.no_grad():
        assert torch.equal(old.ensemble.full_sort_predict(batch), unbiased)
    request = tmp_path / "r.csv"
    request.write_text(f"{old.dataset.id2token('user_id', 3)}\n")
    run_forget_requests(model_dir, str(request), verbose=False)
    assert read_manifest(model_dir)[1]["aggregator_trained_on"]["item_bias"] is True
    assert load_model(model_dir).ensemble.aggregator.adds_item_bias is True


def test_the_aggregator_records_the_thread_count_it_trained_with(tmp_path):
    """Float rounding follows the thread count: every shard stage records its count, the
    learned aggregator, which every forget trains again in the answering process, recorded none,
    so a folder answered with 2 threads could not be reproduced from its records (r9slices probe:
    every aggregator tensor of a fresh fit at 1 thread differed by up to 4.6e-5)."""
    from conftest import read_manifest, train_saved_model

    model_dir = train_saved_model(tmp_path, unlearn_method="sru", epochs=1, agg_epochs=1, forget_protocol="none")
    assert read_manifest(model_dir)[1]["aggregator_trained_on"]["threads"] == torch.get_num_threads()


def test_a_request_run_reports_the_extra_deletions_it_made(tmp_path):
    """A request run's row and ``requests`` said ``interactions: 2`` for one requested pair and
    CED's extra, with no ``extra_deleted`` (the audit log alone held it; a training run's row has
    it; r11requests probe)."""
    import json
    import os

    from conftest import load_model, train_saved_model
    from recbole_unlearn.quick_start.forget_requests import run_forget_requests

    model_dir = train_saved_model(tmp_path, unlearn_method="sru", n_shards=2, epochs=1, agg_epochs=1,
                                  forget_protocol="none")
    model = load_model(model_dir)
    rows = model.dataset.user_rows(3)
    item = model.dataset.inter_feat["item_id"][int(rows[2])].item()  # a training pair past the first item
    request = tmp_path / "r.csv"
    request.write_text(f"{model.dataset.id2token('user_id', 3)},{model.dataset.id2token('item_id', item)}\n")
    doc = run_forget_requests(model_dir, str(request), {"results_dir": str(tmp_path / "out")}, verbose=False)
    line = json.loads(open(os.path.join(model_dir, "audit.jsonl")).readlines()[-1])
    assert line["extra_deleted"] >= 1 and line["interactions"] == line["requested_interactions"] + line["extra_deleted"]
    assert doc["requests"]["extra_deleted"] == doc["rows"][0]["extra_deleted"] == line["extra_deleted"]
    assert doc["requests"]["interactions"] == line["interactions"]


def test_the_partition_pretraining_is_recorded_and_validates_only_with_the_sub_models(tiny, monkeypatch):
    """The similarity partition's pretraining validated and stopped by early stopping whatever
    ``validate_submodels`` said (10 epochs asked, 3 run, the first kept) and was recorded nowhere
    (r10records probe). It follows ``validate_submodels`` as shard stages do and its fit records it,
    the epochs counted here as they train."""
    from recbole_unlearn.trainer import trainer as trainer_module

    epochs_trained = []
    original_train_epoch = trainer_module.UnlearnTrainer._train_epoch

    def counting(self, *args, **kwargs):
        epochs_trained.append(self.config["epochs"])
        return original_train_epoch(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.UnlearnTrainer, "_train_epoch", counting)
    for validates in (False, True):
        config = UnlearnConfig("GRU4Rec", config_dict=tiny_dict(
            unlearn_method="sru", n_shards=2, epochs=1, agg_epochs=1, shard_num_threads=1, learning_rate=0.01,
            partition_pretrain_epochs=6, stopping_step=1, validate_submodels=validates)).for_method("sru")
        dataset = create_unlearn_dataset(config)
        epochs_trained.clear()
        _, record = pretrain_embeddings(config, dataset, dataset.full_keep())
        ran = epochs_trained.count(6)  # the pretraining's epochs (its cap, 6, is the only one of 6)
        assert record["epochs"] == ran and record["cap"] == 6 and record["seconds"] > 0, record
        if validates:
            assert isinstance(record["best_valid_ndcg@10"], float) and record["hit_cap"] == (ran == 6), record
        else:
            assert ran == 6 and record["hit_cap"] is True and record["best_valid_ndcg@10"] is None, record
    model = ShardedUnlearnableModel.train(config, dataset)
    assert model.fit_training["partition_pretraining"]["cap"] == 6
