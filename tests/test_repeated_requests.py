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
