"""Shard sub-models, slice stages and learned aggregators train to convergence by validation
(early stopping on NDCG@10, best state kept), like the original model and Retrain."""
import pytest

from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.data import build_shard_map, create_unlearn_dataset
from recbole_unlearn.data.utils import eval_loader
from recbole_unlearn.trainer import ShardJob, train_shard
from recbole_unlearn.trainer.aggregator_trainer import train_aggregator
from recbole_unlearn.trainer.trainer import UnlearnTrainer
from recbole_unlearn.unlearnable import ShardedUnlearnableModel

from conftest import tiny_dict


def _config(**overrides):
    settings = dict(unlearn_method="sru", n_shards=2, epochs=40, agg_epochs=40, stopping_step=1,
                    learning_rate=0.01, shard_num_threads=1)
    settings.update(overrides)
    return UnlearnConfig("SASRec", config_dict=tiny_dict(**settings)).for_method("sru")


def _valid_ndcg(config, model, loader) -> float:
    return UnlearnTrainer(config, model).evaluate(loader, load_best_model=False)["ndcg@10"]


def test_a_shard_stops_when_its_validation_stalls_and_keeps_its_best_state():
    config = _config(partitioner="random")
    dataset = create_unlearn_dataset(config)
    shard_map = build_shard_map(config, dataset)
    keep = dataset.full_keep()
    result = train_shard(config, dataset, shard_map, keep, ShardJob(0), 1)
    stage = result.stages[0]
    assert 1 <= stage.epochs < stage.cap == 40 and not stage.hit_cap  # validation ended it
    model = config.model_class(config, dataset).to(config["device"])
    model.load_state_dict(result.stage_states[0])
    valid = eval_loader(config, dataset, dataset.samples(shard_map.stage_valid_targets(dataset, 0, 0, keep), keep))
    assert _valid_ndcg(config, model, valid) == pytest.approx(stage.best_valid, abs=1e-4)
    # its validation set is its own users' validation targets
    users = dataset.log_user[shard_map.stage_valid_targets(dataset, 0, 0, keep)]
    assert set(shard_map.user_shard[users].tolist()) == {0}


def test_without_validation_a_shard_trains_its_fixed_epochs():
    config = _config(partitioner="random", validate_submodels=False, epochs=3)
    dataset = create_unlearn_dataset(config)
    shard_map = build_shard_map(config, dataset)
    result = train_shard(config, dataset, shard_map, dataset.full_keep(), ShardJob(1), 1)
    assert result.stages[0].epochs == 3 and result.stages[0].best_valid is None


def test_the_aggregator_stops_when_validation_stalls_and_keeps_its_best_state():
    config = _config(epochs=2)
    dataset = create_unlearn_dataset(config)
    model = ShardedUnlearnableModel.train(config, dataset)
    record = model.fit_training
    assert set(record["shards"]) == {"0", "1"} and record["shards"]["0"]["0"]["cap"] == 2
    keep = model.keep_mask()
    training = train_aggregator(config, model.ensemble, dataset, keep, model.shard_map)
    assert 1 <= training.epochs < training.cap == 40
    valid = eval_loader(config, dataset, dataset.samples(dataset.split_targets(keep)[1], keep))
    assert _valid_ndcg(config, model.ensemble, valid) == pytest.approx(training.best_valid, abs=1e-4)


def test_a_forget_reports_how_its_retrained_shards_and_aggregator_trained():
    config = _config(epochs=2, agg_epochs=3)
    dataset = create_unlearn_dataset(config)
    model = ShardedUnlearnableModel.train(config, dataset)
    user_rows = dataset.user_rows(int(model.shard_map.shard_users(1)[0]))
    report = model.forget(user_rows[dataset.is_training[user_rows]][:2])
    training = report.to_json()["training"]
    assert list(training["shards"]) == ["1"]
    assert training["shards"]["1"]["0"]["epochs"] <= 2
    assert training["aggregator"]["cap"] == 3 and training["aggregator"]["cache_mb"] > 0


def test_a_shards_thread_count_does_not_outlive_the_shard():
    """``shard_num_threads`` in-process used to stay set after the shard: every later model in the
    process (Retrain, evaluation, the next grid row, the next test) ran on that many threads. Seen
    as a test that passed alone and failed after a sharded test on a 2-core machine."""
    import torch

    config = _config(partitioner="random", epochs=1)
    dataset = create_unlearn_dataset(config)
    shard_map = build_shard_map(config, dataset)
    before = torch.get_num_threads()
    other = 1 if before > 1 else 2  # any count but the current one
    train_shard(config, dataset, shard_map, dataset.full_keep(), ShardJob(0), other)
    assert torch.get_num_threads() == before


def test_the_training_record_names_the_metric_validation_used():
    """A probe: with ``valid_metric: Recall@10`` the shards and the aggregator stopped on
    Recall@10, yet recorded it as ``best_valid_ndcg@10`` (0.0667, where the kept shard's
    validation NDCG@10 was 0.0262). The record is named by the metric it holds."""
    config = _config(epochs=2, agg_epochs=2, valid_metric="Recall@10")
    dataset = create_unlearn_dataset(config)
    model = ShardedUnlearnableModel.train(config, dataset)
    record = model.fit_training
    stage = record["shards"]["0"]["0"]
    assert "best_valid_ndcg@10" not in stage and "best_valid_ndcg@10" not in record["aggregator"]
    shard = config.model_class(config, dataset).to(config["device"])
    shard.load_state_dict(model.stage_states[0][0])
    keep = model.keep_mask()
    valid = eval_loader(config, dataset, dataset.samples(model.shard_map.stage_valid_targets(dataset, 0, 0, keep), keep))
    recall = UnlearnTrainer(config, shard).evaluate(valid, load_best_model=False)["recall@10"]
    assert stage["best_valid_recall@10"] == pytest.approx(recall, abs=1e-4)
    assert record["aggregator"]["best_valid_recall@10"] is not None


def test_a_metric_without_a_cut_off_validates_every_model():
    """``valid_metric: GAUC`` (RecBole reports it without a cut-off, as ``gauc``) was refused as
    "not one of the validation metrics", which listed ``gauc@10`` instead (configuration probe):
    the original, the shards and the aggregator stop on it and record ``best_valid_gauc``."""
    config = _config(epochs=2, agg_epochs=2, metrics=["GAUC", "NDCG"], valid_metric="GAUC")
    dataset = create_unlearn_dataset(config)
    record = ShardedUnlearnableModel.train(config, dataset).fit_training
    assert 0.0 <= record["shards"]["0"]["0"]["best_valid_gauc"] <= 1.0
    assert 0.0 <= record["aggregator"]["best_valid_gauc"] <= 1.0


def test_without_validation_steps_no_best_score_is_written_as_infinity(tmp_path, monkeypatch):
    """``eval_step: 0`` runs no validation; shard stages and the aggregator recorded RecBole's
    starting score, ``-inf``, written as ``-Infinity`` into ``results.json`` and the audit log
    (not JSON: ``JSON.parse`` refuses it; found by probing). No score is ``None``."""
    from recbole_unlearn import run_recbole_unlearn

    monkeypatch.chdir(tmp_path)
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        unlearn_method="sru", n_shards=2, epochs=2, agg_epochs=2, eval_step=0, include_retrain=False,
        forget_user_ratio=0.05, model_dir=str(tmp_path / "m"), results_dir=str(tmp_path / "r")), verbose=False)
    for path in (doc["results_path"], tmp_path / "m" / "audit.jsonl"):
        assert "Infinity" not in open(path).read(), path
    row = next(r for r in doc["rows"] if r["method"] == "sru")
    stages = [stage for shard in row["fit_training"]["shards"].values() for stage in shard.values()]
    assert stages and all(stage["best_valid_ndcg@10"] is None for stage in stages)
    assert row["fit_training"]["aggregator"]["best_valid_ndcg@10"] is None
