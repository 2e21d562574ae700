"""``request_steps``: the forget set applied as successive requests through each method's own
model folder, measured after every request against a Retrain matched to that point."""
import numpy as np

from recbole_unlearn import run_recbole_unlearn
from recbole_unlearn.benchmark.report import leaderboard_markdown

from conftest import read_audit, read_manifest, tiny_dict


def test_every_method_is_measured_after_every_request(in_tmp):
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        unlearn_method="sisa,sruga", n_shards=2, request_steps=2, shard_num_threads=1, save_model=False,
        sruga_epochs=1, results_dir=str(in_tmp / "r")), verbose=False)
    rows = {r["method"]: r for r in doc["rows"]}
    assert "steps" not in rows["retrain"]  # Retrain is the reference, matched at every step instead
    for name in ("sisa", "sruga"):
        steps = rows[name]["steps"]
        assert [s["step"] for s in steps] == [1, 2]
        assert sum(s["users"] for s in steps) == doc["forget_set"]["users"]
        assert abs(sum(s["seconds"] for s in steps) - rows[name]["seconds"]) < 0.01
        assert steps[-1]["cumulative_seconds"] == round(rows[name]["seconds"], 3)
        assert all({"ndcg@10_rem", "forget_hit@10", "seconds"} <= set(s["retrain"]) for s in steps)
        model_dir = rows[name]["model_dir"]
        assert [e["requested_interactions"] > 0 for e in read_audit(model_dir)] == [True, True]  # two requests
        assert read_manifest(model_dir)[0].endswith("v000003")  # fit, request 1, request 2
    # after the last request every method has forgotten the whole forget set, and Retrain's last
    # matched point is the Retrain row itself
    assert rows["sisa"]["steps"][-1]["retrain"]["forget_hit@10"] == rows["retrain"]["forget"]["hit@10"]
    assert np.isclose(rows["sisa"]["steps"][-1]["forget_hit@10"], rows["sisa"]["forget"]["hit@10"])
    table = leaderboard_markdown([{"model": "GRU4Rec", "dataset": "ml-tiny", "rows": doc["rows"]}])
    assert "Repeated requests" in table and "| sruga | 2 |" in table


def test_an_approximate_rows_step_facts_cover_every_request_not_the_last():
    """Under ``request_steps`` an approximate row's ``seconds`` summed every request, while its
    ``epochs_run``, ``stopped_by``, ``eval_seconds``, ``history`` and forget Hit@10 before / after
    were the last request's alone (found by probing: seconds 0.416 + 0.703 beside step 2's
    eval_seconds). They now cover all requests: sums, every reason, and each request's record
    under ``approximate_steps``."""
    from recbole_unlearn.unlearn.experiment import _info_over_requests

    infos = [{"changed": True, "epochs_run": 3, "stopped_by": "unseen", "kept_epoch": 3, "eval_seconds": 0.25,
              "history": [{"epoch": 0, "forget_hit@10": 0.5}], "forget_hit@10_before": 0.5, "forget_hit@10_after": 0.2},
             {"changed": True, "epochs_run": 4, "stopped_by": "utility_floor", "kept_epoch": 2, "eval_seconds": 0.5,
              "history": [{"epoch": 0, "forget_hit@10": 0.4}], "forget_hit@10_before": 0.4, "forget_hit@10_after": 0.3}]
    row = _info_over_requests(infos, np.array([], dtype=np.int64))
    assert row["epochs_run"] == 7 and row["eval_seconds"] == 0.75
    assert row["stopped_by"] == "unseen; utility_floor"
    assert [s["history"] for s in row["approximate_steps"]] == [infos[0]["history"], infos[1]["history"]]
    assert [s["forget_hit@10_after"] for s in row["approximate_steps"]] == [0.2, 0.3]
    assert not {"history", "kept_epoch", "forget_hit@10_before", "forget_hit@10_after"} & set(row)
    same = _info_over_requests([dict(infos[0]), dict(infos[0])], np.array([], dtype=np.int64))
    assert same["stopped_by"] == "unseen"


def test_a_sharded_rows_approximate_facts_cover_every_request():
    """Under ``shard_unlearning`` with ``request_steps`` the row's per-shard ``approximate`` was the
    last request's alone (found by probing the earlier fix, which covered single models only)."""
    from recbole_unlearn.unlearn.experiment import _info_over_requests
    from recbole_unlearn.utils.results import forget_hit_rose, why_unchanged

    first = {"0": {"epochs_run": 2, "stopped_by": "unseen", "forget_hit@10_before": 0.2, "forget_hit@10_after": 0.3,
                   "changed": True}}
    second = {"1": {"epochs_run": 1, "stopped_by": "utility_floor", "forget_hit@10_before": 0.3,
                    "forget_hit@10_after": 0.3, "changed": False}}
    row = _info_over_requests([{"changed": True, "approximate": first}, {"changed": False, "approximate": second}],
                              np.array([], dtype=np.int64))
    assert row["approximate_steps"] == [first, second] and "approximate" not in row
    assert forget_hit_rose(row)  # request 1's shard 0 rose: it was lost with the last request's facts
    assert why_unchanged(dict(row, changed=False)) == "unseen; utility_floor"
