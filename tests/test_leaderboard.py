"""The leaderboard grid: expansion and validation, resume, and the report files."""
import csv
import json
import io
import os
import shutil
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest
import yaml

from recbole_unlearn.benchmark import expand_grid, load_grid
from recbole_unlearn.benchmark import runner
from recbole_unlearn.benchmark.runner import run_grid
from recbole_unlearn.cli import main
from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.utils.errors import UnlearnError
from conftest import FIXTURES, TEST_GPU, read_audit, tiny_dict


#: quick settings every tiny grid gets, where one of its rows uses them (a grid setting that no
#: row uses is refused)
_TINY_METHOD_SETTINGS = {"n_shards": 2, "agg_epochs": 1, "sruga_epochs": 2}


def _tiny_grid(tmp_path, methods, models=("GRU4Rec",), **config) -> str:
    settings = {k: v for k, v in tiny_dict(**dict(_TINY_METHOD_SETTINGS, **config)).items() if k != "dataset"}
    grid = {"models": list(models), "datasets": ["ml-tiny"], "output_dir": str(tmp_path / "board"),
            "config": settings, "methods": methods}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    try:
        loaded = load_grid(str(path))
        used = {key for cell in loaded.cells[:1] for variant in cell.variants
                for key in runner.METHODS.get(variant.method).settings_used(
                    runner.CellRun(loaded, cell).variant_configs[variant.label])}
    except UnlearnError:  # a grid a test means to be refused: as written
        return str(path)
    unused = [key for key in _TINY_METHOD_SETTINGS if key not in config and key not in used]
    if unused:
        grid["config"] = {k: v for k, v in settings.items() if k not in unused}
        path.write_text(yaml.safe_dump(grid))
    return str(path)


# --- expansion ---------------------------------------------------------------------------
def test_grid_expands_models_outer_datasets_inner_and_adds_retrain_first():
    grid = expand_grid({"models": ["SASRec", "GRU4Rec"], "datasets": ["beauty", "video"],
                        "methods": {"sisa": {}, "sru-ced": {"unlearn_method": "sru", "extra_deletion": "ced"}}})
    assert [c.name for c in grid.cells] == ["SASRec-beauty", "SASRec-video", "GRU4Rec-beauty", "GRU4Rec-video"]
    variants = grid.cells[0].variants
    assert [(v.label, v.method) for v in variants] == [("retrain", "retrain"), ("sisa", "sisa"), ("sru-ced", "sru")]
    assert variants[2].overrides == {"extra_deletion": "ced"}
    assert grid.baseline is True


def test_grid_list_shorthand_and_retrain_moved_first():
    grid = expand_grid({"models": "SASRec", "datasets": ["ml-100k"], "methods": ["sisa", "retrain"]})
    assert [v.label for v in grid.cells[0].variants] == ["retrain", "sisa"]


@pytest.mark.parametrize("document, message", [
    ({"models": [], "datasets": ["d"], "methods": ["sisa"]}, "'models' must be a non-empty list"),
    ({"models": ["SASRec"], "datasets": ["d", "d"], "methods": ["sisa"]}, "lists a name twice"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["nope"]}, "unknown unlearning method 'nope'"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": {"x": {"unlearn_method": "sisa", "epochs": 3}}},
     "per-method keys can only be unlearning settings"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sisa"], "config": {"dataset": "x"}}, "cannot set 'dataset'"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sisa"], "extra": 1}, "unknown key 'extra'"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": {"original": {}}}, "label 'original' is not allowed"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sru"], "targets": {"sru": {"ndcg": 0.9}}},
     "unknown target 'ndcg' for 'sru'"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sru"], "targets": {"sru": {"ndcg_at_least": -1}}},
     "must be a finite positive number"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sru"], "targets": {"nope": {"ndcg_at_least": 1}}},
     "unknown unlearning method 'nope'"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sru"], "targets": [0.9]}, "'targets' must map"),
    # found by probing: a row labelled retrain that runs SISA became every speedup's reference;
    # config_files under 'config' was recorded and never read; a '|' in a label broke the table
    ({"models": ["SASRec"], "datasets": ["d"], "methods": {"retrain": {"unlearn_method": "sisa"}}},
     "the row 'retrain' is every speedup's reference: it must run unlearn_method retrain"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sisa"], "config": {"config_files": ["a.yaml"]}},
     "cannot set 'config_files'"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": {"sisa|k3": {"unlearn_method": "sisa"}}},
     "label 'sisa|k3' is not allowed"),
    # r12badinput probe: a row that is not a mapping ended in a TypeError traceback; verify under
    # 'config' ran the grid and was recorded in every folder's manifest; a NaN or infinite target
    # could never be met (">= nan x: missed")
    ({"models": ["SASRec"], "datasets": ["d"], "methods": {"sisa": [1, 2]}},
     r"method 'sisa' must map settings to values \(got list \[1, 2\]\)"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": {"sisa": "abc"}},
     r"method 'sisa' must map settings to values \(got str 'abc'\)"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": {"sisa": 5}},
     r"method 'sisa' must map settings to values \(got int 5\)"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sisa"], "config": {"verify": True}},
     "'config' cannot set 'verify'"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sisa"], "config": {"verify": 0}},
     "'config' cannot set 'verify'"),
    # (r12keys probe: a row's was recorded, and the report named busy rows by the config's)
    ({"models": ["SASRec"], "datasets": ["d"], "methods": {"sisa": {"busy_cpu_share": 0.05}}},
     "method 'sisa' sets 'busy_cpu_share': a grid names busy rows by its 'config' value; set it there"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sru"], "targets": {"sru": {"ndcg_at_least": float("nan")}}},
     "must be a finite positive number"),
    ({"models": ["SASRec"], "datasets": ["d"], "methods": ["sru"], "targets": {"sru": {"ndcg_at_least": float("inf")}}},
     "must be a finite positive number"),
])
def test_bad_grids_get_one_clear_error(document, message):
    with pytest.raises(UnlearnError, match=message):
        expand_grid(document)


def test_a_grids_output_dir_below_a_link_to_nothing_is_refused(tmp_path):
    """A bare ``[Errno 2]``, exit 1 (r12round3 probe), as a results_dir below one is refused."""
    os.symlink("nowhere", tmp_path / "dang")
    with pytest.raises(UnlearnError, match=r"output_dir .*dang/sub: .*dang is a link to nothing \(nowhere\)"):
        expand_grid({"models": ["SASRec"], "datasets": ["d"], "methods": ["sisa"],
                     "output_dir": str(tmp_path / "dang" / "sub")})


def test_a_grids_verify_false_is_not_recorded():
    """``verify: False`` under a grid's config ran and was written into every model folder's
    manifest and cell.json (r12docs probe): taken as not given."""
    grid = expand_grid({"models": ["SASRec"], "datasets": ["d"], "methods": ["sisa"], "config": {"verify": False}})
    assert "verify" not in grid.config


def test_grid_file_errors(tmp_path):
    with pytest.raises(UnlearnError, match="grid file not found"):
        load_grid(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [SASRec\n")
    with pytest.raises(UnlearnError, match=r"is not valid YAML \(line 2, column 1\): expected ',' or '\]'") as info:
        load_grid(str(bad))
    assert "\n" not in str(info.value)
    binary = tmp_path / "binary.yaml"  # a traceback (UnicodeDecodeError; r12badinput probe)
    binary.write_bytes(b"models: [SASRec]\n\xff: 1\n")
    with pytest.raises(UnlearnError, match=r"^grid .*binary.yaml is not UTF-8 text$"):
        load_grid(str(binary))
    sci = tmp_path / "sci.yaml"
    sci.write_text("models: [SASRec]\ndatasets: [d]\nmethods: [sruga]\nconfig: {learning_rate: 1e-3}\n")
    assert load_grid(str(sci)).config["learning_rate"] == 0.001  # RecBole's float syntax


def test_bad_config_key_in_grid_is_refused_before_any_training(tmp_path, in_tmp):
    path = _tiny_grid(tmp_path, ["sisa"], n_shardz=3)
    assert main([f"--benchmark={path}"]) == 2
    assert not os.path.exists(tmp_path / "board")


def test_a_grids_checkpoint_dir_is_refused_before_any_training(tmp_path, in_tmp, capsys):
    """The runner replaced it with each cell's folder, unsaid (configuration probe)."""
    path = _tiny_grid(tmp_path, ["sisa"], checkpoint_dir=str(tmp_path / "ckpt"))
    assert main([f"--benchmark={path}"]) == 2
    assert "config key 'checkpoint_dir' is set by the run" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "board") and not os.path.exists(tmp_path / "ckpt")


@pytest.mark.parametrize("settings, target, says", [
    ({"utility_metrics": ["MRR", "Hit"], "utility_topk": [5]}, "ndcg_at_least",
     "target ndcg_at_least of 'sisa' compares D_rem NDCG@10, which utility_metrics x utility_topk do not measure"),
    ({"forget_topk": [5]}, "forget_at_most",
     "target forget_at_most of 'sisa' compares forget Hit@10, which forget_topk does not measure"),
])
def test_a_target_on_a_metric_the_grid_does_not_measure_is_refused(tmp_path, in_tmp, capsys, settings, target, says):
    """A grid measuring MRR@5 and Hit@5 accepted an NDCG@10 target and reported it "not measured"
    for every row, after hours of training (configuration probe)."""
    path = _tiny_grid(tmp_path, ["sisa"], **settings)
    grid = yaml.safe_load(open(path))
    grid["targets"] = {"sisa": {target: 0.9}}
    with open(path, "w") as f:
        yaml.safe_dump(grid, f)
    assert main([f"--benchmark={path}"]) == 2
    assert says in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "board")


def test_benchmark_takes_no_other_arguments(tmp_path, capsys):
    assert main([f"--benchmark={tmp_path}/g.yaml", "--epochs=3"]) == 2
    assert "takes every setting from the grid file" in capsys.readouterr().err
    assert main([f"--benchmark={tmp_path}/g.yaml", "--cells=GRU4Rec-ml-tiny", "--epochs=3"]) == 2
    assert "only --cells" in capsys.readouterr().err


def test_cells_runs_only_the_named_cells_of_a_grid(tmp_path, in_tmp, capsys):
    path = _tiny_grid(tmp_path, ["retrain"], models=("GRU4Rec", "SASRec"))
    assert main([f"--benchmark={path}", "--cells=SASRec-ml-tiny,GRU4Rec-beauty"]) == 2
    err = capsys.readouterr().err
    assert "no cell GRU4Rec-beauty" in err and "GRU4Rec-ml-tiny, SASRec-ml-tiny" in err
    assert not os.path.exists(tmp_path / "board")

    assert main([f"--benchmark={path}", "--cells=SASRec-ml-tiny"]) == 0
    assert sorted(os.listdir(tmp_path / "board")) == [".lock", "SASRec-ml-tiny", "grid.json", "leaderboard.csv",
                                                      "leaderboard.html", "leaderboard.md"]
    assert sorted(os.listdir(tmp_path / "board" / "SASRec-ml-tiny" / "rows")) == [
        "original.json", "recbole.json", "retrain.json"]
    # the grid's other cell, in a run of its own (a long grid split over runs or machines): the
    # leaderboard files held only the cells of the last call, the finished SASRec cell was gone
    assert main([f"--benchmark={path}", "--cells=GRU4Rec-ml-tiny"]) == 0
    from recbole_unlearn.benchmark.report import cells_from_markdown

    board = cells_from_markdown((tmp_path / "board" / "leaderboard.md").read_text())
    assert [c["model"] for c in board] == ["GRU4Rec", "SASRec"]  # grid order
    csv_models = {line.split(",")[0] for line in (tmp_path / "board" / "leaderboard.csv").read_text().splitlines()[1:]}
    assert csv_models == {"GRU4Rec", "SASRec"}
    # one unreadable row file of the other cell left the whole cell out: now that row only
    (tmp_path / "board" / "SASRec-ml-tiny" / "rows" / "retrain.json").write_text("garbage")
    capsys.readouterr()
    assert main([f"--benchmark={path}", "--cells=GRU4Rec-ml-tiny"]) == 0
    # said at any state (a log line, which the grid's state: ERROR hid; r11round5 probe)
    assert "warning: leaderboard: row retrain of cell SASRec-ml-tiny left out" in capsys.readouterr().out
    board = cells_from_markdown((tmp_path / "board" / "leaderboard.md").read_text())
    assert [[r["method"] for r in c["rows"]] for c in board] == [["recbole", "original", "retrain"],
                                                                  ["recbole", "original"]]
    # valid JSON of another shape ended the run in a traceback after its cell trained (probe): the
    # same, that row left out
    for damaged in ("[]", '{"overrides": {}, "settings": null}', '{"row": {"method": "retrain"}, "overrides": {}}',
                    '{"row": {"method": "retrain", "seconds": 1.0, "utility_rem": "bad"}}',
                    '{"row": {"method": "retrain", "seconds": 1.0, "utility_rem": {"ndcg@10": "0.5"}}}',
                    '{"row": {"method": "retrain", "seconds": NaN}}',
                    '{"row": {"method": "retrain", "seconds": 1.0, "audit": [1]}}'):
        (tmp_path / "board" / "SASRec-ml-tiny" / "rows" / "retrain.json").write_text(damaged)
        assert main([f"--benchmark={path}", "--cells=GRU4Rec-ml-tiny"]) == 0, damaged
        board = cells_from_markdown((tmp_path / "board" / "leaderboard.md").read_text())
        assert [[r["method"] for r in c["rows"]] for c in board] == [["recbole", "original", "retrain"],
                                                                      ["recbole", "original"]], damaged
    # in the cell's own run, one error line before anything trains
    capsys.readouterr()
    assert main([f"--benchmark={path}", "--cells=SASRec-ml-tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "retrain.json: not a row file" in err[0], err


# --- resume ------------------------------------------------------------------------------
def test_a_cell_recorded_with_a_setting_its_forget_set_never_read_resumes_without_it(tmp_path, in_tmp):
    """Earlier code took ``forget_user_ratio`` beside ``forget_protocol: sru`` (never read) and
    recorded it in the cell's fingerprint; today that setting is refused, and once it was dropped
    the cell was "started with other settings": its finished rows could only be deleted (upgrade
    probe). A cell's fingerprint leaves out the settings its forget set and audit never read."""
    import json

    path = _grid_named(tmp_path, "board", ["retrain"], forget_protocol="sru")
    run_grid(path)
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"
    recorded = json.loads((cell / "cell.json").read_text())
    assert "forget_user_ratio" not in recorded["fingerprint"]["settings"]
    recorded["fingerprint"]["settings"].update(forget_user_ratio=0.1, audit_shuffles=5)  # as earlier code wrote
    (cell / "cell.json").write_text(json.dumps(recorded))
    rows = {p.name: p.read_text() for p in (cell / "rows").iterdir()}
    run_grid(path)
    assert {p.name: p.read_text() for p in (cell / "rows").iterdir()} == rows  # resumed: nothing trained again


def test_resume_reruns_only_missing_rows_and_reuses_the_original_model(tmp_path, in_tmp, monkeypatch):
    from recbole_unlearn.unlearn import experiment as experiment_module

    path = _tiny_grid(tmp_path, {"sisa": {}, "sruga": {}, "sruga-ga": {"unlearn_method": "sruga", "sruga_kl": 0.0,
                                                                     "sruga_ft": 0.0}})
    run_grid(path)
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"
    rows = {p.name: p.read_text() for p in (cell / "rows").iterdir()}
    assert sorted(rows) == ["original.json", "recbole.json", "retrain.json", "sisa.json", "sruga-ga.json", "sruga.json"]

    # a killed run: the sisa row never finished and left a half-written model folder behind
    os.unlink(cell / "rows" / "sisa.json")
    (cell / "models" / "sisa" / "CURRENT").write_text("v999999\n")
    trained = []
    original_train = experiment_module.Experiment.train_original
    monkeypatch.setattr(experiment_module.Experiment, "train_original",
                        lambda self: trained.append(1) or original_train(self))
    run_grid(path)
    assert trained == []  # the original model was reloaded, not trained again
    after = {p.name: p.read_text() for p in (cell / "rows").iterdir()}
    assert sorted(after) == sorted(rows)
    for name in rows:
        if name != "sisa.json":
            assert after[name] == rows[name], name  # finished rows untouched
    assert (cell / "models" / "sisa" / "CURRENT").read_text().strip() == "v000002"

    # the same grid with other shared settings must not be mixed into the old cell
    changed = _tiny_grid(tmp_path, ["sisa"], learning_rate=0.01)
    with pytest.raises(UnlearnError, match="started with other settings"):
        run_grid(changed)


def test_resume_refuses_a_cell_whose_dataset_file_changed(tmp_path, in_tmp):
    """The cell's fingerprint hashed the forget set's log rows (positions), not the data: an
    edited dataset file whose rows kept their places (one forgotten interaction's item changed)
    gave the same fingerprint, and the grid reused every row measured on the old file."""
    from conftest import FIXTURES

    shutil.copytree(FIXTURES, tmp_path / "data")
    path = _tiny_grid(tmp_path, ["sisa"], data_path=str(tmp_path / "data"))
    run_grid(path)
    inter = tmp_path / "data" / "ml-tiny" / "ml-tiny.inter"
    lines = inter.read_text().splitlines(keepends=True)
    user, item, rest = lines[1].split("\t", 2)
    other = next(line.split("\t")[1] for line in lines[2:] if line.split("\t")[1] != item)
    inter.write_text("".join([lines[0], "\t".join([user, other, rest])] + lines[2:]))
    with pytest.raises(UnlearnError, match="another dataset file"):
        run_grid(path)


def test_a_report_of_finished_cells_refuses_a_cell_made_with_other_settings(tmp_path, in_tmp):
    """``finished_cells`` (benchmarks/leaderboard_doc.py) published a cell's rows under today's
    grid settings however they were made: rows trained with ``epochs: 1`` were reported under a
    grid that now says ``epochs: 3``, their cap taken from today's grid (so "1 epochs", not at
    cap), where the runner itself refuses that cell. It now checks what the runner checks
    without loading data: the cell's data settings and dataset file, and each row's method
    settings (a row made with other ones is left out, as the runner would run it again)."""
    from recbole_unlearn.benchmark.runner import finished_cells

    path = _tiny_grid(tmp_path, {"sruga": {}, "sruga-ga": {"unlearn_method": "sruga", "sruga_kl": 0.0,
                                                          "sruga_ft": 0.0}})
    run_grid(path)
    cells = finished_cells(path)
    assert [r["method"] for r in cells[0]["rows"]] == ["recbole", "original", "retrain", "sruga", "sruga-ga"]
    assert cells[0]["epochs_cap"] == 1
    changed = _tiny_grid(tmp_path, {"sruga": {}, "sruga-ga": {"unlearn_method": "sruga", "sruga_kl": 0.0,
                                                             "sruga_ft": 0.0, "sruga_learning_rate": 0.123}})
    assert [r["method"] for r in finished_cells(changed)[0]["rows"]] == ["recbole", "original", "retrain", "sruga"]
    changed = _tiny_grid(tmp_path, ["sruga"], epochs=3)
    with pytest.raises(UnlearnError, match="GRU4Rec-ml-tiny was made with other settings"):
        finished_cells(changed)


def test_resume_tolerates_keys_added_since_and_reruns_rows_whose_method_settings_changed(tmp_path, in_tmp):
    """A long grid is resumed by newer code: a cell or row recorded before a key existed still
    counts (a new key's default keeps the old behaviour), while a row whose recorded method
    settings differ from today's (a changed default) is run again; other rows stay untouched."""
    path = _tiny_grid(tmp_path, {"sruga": {}, "sruga-ga": {"unlearn_method": "sruga", "sruga_kl": 0.0,
                                                          "sruga_ft": 0.0}})
    run_grid(path)
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"

    def edit(name, change):
        document = json.loads((cell / name).read_text())
        change(document)
        (cell / name).write_text(json.dumps(document))

    edit("cell.json", lambda d: d["fingerprint"]["settings"].pop("forget_skip_first"))
    edit("rows/sruga.json", lambda d: d["settings"].pop("sruga_forget_check"))
    edit("rows/sruga-ga.json", lambda d: d["settings"].update(sruga_learning_rate=0.123))
    before = {p.name: p.read_text() for p in (cell / "rows").iterdir()}
    run_grid(path)
    after = {p.name: p.read_text() for p in (cell / "rows").iterdir()}
    assert {name for name in before if after[name] != before[name]} == {"sruga-ga.json"}
    rerun = json.loads(after["sruga-ga.json"])
    assert rerun["settings"]["sruga_learning_rate"] == 0.004
    assert rerun["code"]["version"] and "commit" in rerun["code"] and rerun["machine"]["cpu_count"]  # which code, where
    assert rerun["machine"]["cpu"] and rerun["machine"]["cpu_capability"]  # floating-point results depend on both


def test_bert4rec_cell_trains_every_row(tmp_path, in_tmp):
    """Benchmark rows get their configs before any dataloader exists; BERT4Rec still needs
    the field names its masking transform defines (a grid once died here on retrain)."""
    run_grid(_tiny_grid(tmp_path, ["sisa"], models=["BERT4Rec"]))
    rows = tmp_path / "board" / "BERT4Rec-ml-tiny" / "rows"
    assert sorted(p.name for p in rows.iterdir()) == ["original.json", "recbole.json", "retrain.json",
                                                      "sisa.json"]


def test_sharded_rows_that_differ_only_in_forgetting_or_aggregating_share_one_shard_fit(tmp_path, in_tmp):
    ced_rule = {"unlearn_method": "sru", "extra_deletion": "ced", "del_num": 1}
    path = _tiny_grid(tmp_path, {"sru-ced": ced_rule,
                                 "sru-red": {"unlearn_method": "sru", "extra_deletion": "red", "del_num": 1},
                                 "sru-mean": dict(ced_rule, aggregator="mean"),
                                 "sru-few": dict(ced_rule, agg_max_samples=40)})
    run_grid(path)
    rows = tmp_path / "board" / "GRU4Rec-ml-tiny" / "rows"
    ced, red, mean, few = (json.loads((rows / f"{label}.json").read_text())["row"]
                           for label in ("sru-ced", "sru-red", "sru-mean", "sru-few"))
    assert "fit_shared_with" not in ced
    assert red["fit_shared_with"] == mean["fit_shared_with"] == few["fit_shared_with"] == "sru-ced"
    assert red["initial_train_seconds"] == ced["initial_train_seconds"]
    assert red["extra_deleted"] > 0 and ced["extra_deleted"] > 0
    # the shards are shared; each row's own aggregator is trained on them and reported in place
    # of the donor's (the mean has none), its seconds replacing the donor's aggregator seconds
    assert mean["fit_training"]["shards"] == few["fit_training"]["shards"] == ced["fit_training"]["shards"]
    donor_aggregator = ced["fit_training"]["aggregator"]
    assert "aggregator" not in mean["fit_training"]
    assert mean["initial_train_seconds"] == pytest.approx(
        ced["initial_train_seconds"] - donor_aggregator["seconds"], abs=2e-3)
    assert few["fit_training"]["aggregator"]["samples"] == 40 < donor_aggregator["samples"]
    assert mean["extra_deleted"] == ced["extra_deleted"]  # CED judged by the same shards
    from conftest import read_manifest, verify_model

    for label, key, value in (("sru-ced", "extra_deletion", "ced"), ("sru-red", "extra_deletion", "red"),
                              ("sru-mean", "aggregator", "mean"), ("sru-few", "agg_max_samples", 40)):
        model_dir = str(tmp_path / "board" / "GRU4Rec-ml-tiny" / "models" / label)
        verify_model(model_dir)
        assert read_manifest(model_dir)[1]["config"][key] == value


def _assert_same_fitted_shards(models, donor: str, adopter: str, n_shards: int = 2):
    """The two rows' fitted versions (``v000001`` under ``models``) hold identical shard weights."""
    import torch

    for shard in range(n_shards):
        name = f"shard_{shard:02d}_stage_00.pth"
        given, taken = (torch.load(models / label / "v000001" / name) for label in (donor, adopter))
        assert given.keys() == taken.keys() and all(torch.equal(given[k], taken[k]) for k in given)


def test_receraser_ubp_shares_srus_kmeans_shard_fit_since_on_sequences_they_are_one_partition(tmp_path, in_tmp):
    """UBP on sequences is SRU's kmeans rule on the same vectors (SPEC section 4): a RecEraser
    UBP row shares an SRU row's shard fit and trains only its own aggregator on it; InBP does
    not share it (a grid once fitted the same eight shards twice, 17 minutes each)."""
    path = _tiny_grid(tmp_path, {"sru-ced": {"unlearn_method": "sru", "extra_deletion": "ced", "del_num": 1},
                                 "receraser-ubp": {"unlearn_method": "receraser", "partitioner": "ubp"},
                                 "receraser-inbp": {"unlearn_method": "receraser", "partitioner": "inbp"}})
    run_grid(path)
    rows = tmp_path / "board" / "GRU4Rec-ml-tiny" / "rows"
    ced, ubp, inbp = (json.loads((rows / f"{label}.json").read_text())["row"]
                      for label in ("sru-ced", "receraser-ubp", "receraser-inbp"))
    # whichever of the two runs first fits the shards (the grid file lists its rows by name)
    sharer, donor = (ced, ubp) if "fit_shared_with" in ced else (ubp, ced)
    assert sharer["fit_shared_with"] == donor["method"] and "fit_shared_with" not in donor
    assert "fit_shared_with" not in inbp
    assert ubp["fit_training"]["shards"] == ced["fit_training"]["shards"]
    assert ubp["aggregator"] == "receraser" and ubp["partitioner"] == "ubp" and ubp["extra_deleted"] == 0
    assert ced["aggregator"] == "attention" and ced["extra_deleted"] > 0
    # each trains its own aggregator on the shared shards (compared by the weights saved as each
    # row's fitted version: times of two runs can round to the same millisecond, so not by time)
    import torch

    models = tmp_path / "board" / "GRU4Rec-ml-tiny" / "models"
    assert ubp["fit_training"]["aggregator"]["epochs"] >= 1 and ced["fit_training"]["aggregator"]["epochs"] >= 1
    ubp_agg, ced_agg = (torch.load(models / label / "v000001" / "aggregator.pth") for label in ("receraser-ubp", "sru-ced"))
    assert ubp_agg.keys() != ced_agg.keys()
    _assert_same_fitted_shards(models, "sru-ced", "receraser-ubp")
    from conftest import read_manifest, verify_model

    model_dir = str(models / "receraser-ubp")
    verify_model(model_dir)
    assert read_manifest(model_dir)[1]["config"]["aggregator"] == "receraser"


def test_a_resumed_grid_reads_an_earlier_rows_shard_fit_back_from_its_first_version(tmp_path, in_tmp):
    """A row added to a grid after its donor finished (in an earlier run) shares the donor's
    shard fit: the donor's model folder keeps its fitted state as version 1."""
    ced_rule = {"unlearn_method": "sru", "extra_deletion": "ced", "del_num": 1}
    run_grid(_tiny_grid(tmp_path, {"sru-ced": ced_rule}))
    path = _tiny_grid(tmp_path, {"sru-ced": ced_rule, "sru-mean": dict(ced_rule, aggregator="mean")})
    run_grid(path)
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"
    ced, mean = (json.loads((cell / "rows" / f"{label}.json").read_text())["row"] for label in ("sru-ced", "sru-mean"))
    assert mean["fit_shared_with"] == "sru-ced"
    assert mean["fit_training"]["shards"] == ced["fit_training"]["shards"]
    assert "aggregator" not in mean["fit_training"]
    assert mean["initial_train_seconds"] == pytest.approx(
        ced["initial_train_seconds"] - ced["fit_training"]["aggregator"]["seconds"], abs=2e-3)
    assert mean["extra_deleted"] == ced["extra_deleted"]  # CED judged by the same shards
    _assert_same_fitted_shards(cell / "models", "sru-ced", "sru-mean")
    from conftest import verify_model

    verify_model(str(cell / "models" / "sru-mean"))
    # a donor whose fitted version is gone offers nothing: the row fits its own shards
    (cell / "rows" / "sru-mean.json").unlink()
    shutil.rmtree(cell / "models" / "sru-ced" / "v000001")
    run_grid(path)
    assert "fit_shared_with" not in json.loads((cell / "rows" / "sru-mean.json").read_text())["row"]
    from recbole_unlearn.serving.store import open_store

    with pytest.raises(UnlearnError, match="keeps no version 'v000001'"):
        open_store(str(cell / "models" / "sru-ced")).load(version="v000001")


# --- report files on ml-100k ---------------------------------------------------------------
def test_one_epoch_ml100k_grid_writes_csv_markdown_and_html(tmp_path, in_tmp):
    grid = {
        "models": ["GRU4Rec"], "datasets": ["ml-100k"], "output_dir": str(tmp_path / "board"),
        "config": {"epochs": 1, "n_shards": 2, "use_gpu": TEST_GPU, "hidden_size": 16, "embedding_size": 16,
                   "train_batch_size": 2048, "MAX_ITEM_LIST_LENGTH": 5, "sruga_epochs": 1,
                   "sru_inference_neg_num": 100, "state": "WARNING"},
        "methods": ["sisa", "sruga"],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    assert main([f"--benchmark={path}"]) == 0
    board = tmp_path / "board"
    with open(board / "leaderboard.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["method"] for r in table] == ["recbole", "original", "retrain", "sisa", "sruga"]
    assert all(r["model"] == "GRU4Rec" and r["dataset"] == "ml-100k" for r in table)
    for row in table:
        assert 0 < float(row["D_raw NDCG@10"]) <= 1
        assert float(row["seconds"]) > 0
    for row in table[1:]:
        assert row["D_rem NDCG@10"] and row["D_fgt Hit@10"] and row["SRU inf Hit@10"]
    assert table[0]["D_rem NDCG@10"] == ""  # RecBole's pipeline knows no forget set
    retrain_seconds = float(table[2]["seconds"])
    for row in table[3:]:
        assert float(row["speedup"]) == pytest.approx(retrain_seconds / float(row["seconds"]), rel=0.02)
    markdown = (board / "leaderboard.md").read_text()
    assert "## GRU4Rec on ml-100k" in markdown and "| D_fgt Hit@20 |" in markdown
    assert "epochs 1" in markdown and "n_shards 2" in markdown
    html = (board / "leaderboard.html").read_text()
    assert html.count('class="plotly-graph-div"') == 2
    assert "Utility on D_rem vs forget Hit@10" in html and "Unlearning time" in html


def test_finished_cells_reports_a_partial_grid(tmp_path, in_tmp):
    from recbole_unlearn.benchmark.report import leaderboard_markdown
    from recbole_unlearn.benchmark.runner import finished_cells

    path = _tiny_grid(tmp_path, ["sruga"])
    run_grid(path)
    os.unlink(tmp_path / "board" / "GRU4Rec-ml-tiny" / "rows" / "sruga.json")
    cells = finished_cells(path)
    assert [r["method"] for r in cells[0]["rows"]] == ["recbole", "original", "retrain"]
    assert "| retrain |" in leaderboard_markdown(cells) and "| sruga |" not in leaderboard_markdown(cells)


def _rounded_cell(model: str, dataset: str, seed: int, last: str = "sisa") -> dict:
    """A cell whose values are already at the table's rounding (metrics 4, seconds 1 decimal)."""
    import random

    from recbole_unlearn.benchmark.report import METRIC_COLUMNS

    rng = random.Random(seed)
    rows = [{"method": "recbole", "utility_raw": {"ndcg@10": 0.0257}, "seconds": 279.1, "speedup": None}]
    for method, speedup in (("original", None), ("retrain", None), (last, 0.9)):
        row = {"method": method, "seconds": round(rng.uniform(1, 500), 1), "speedup": speedup}
        for _, group, key in METRIC_COLUMNS:
            row.setdefault(group, {})[key] = round(rng.random(), 4)
        rows.append(row)
    return {"model": model, "dataset": dataset, "description": f"Forget set of {dataset}.",
            "machine": "", "rows": rows}


def test_a_leaderboard_table_reads_back_into_the_cells_it_was_written_from():
    from recbole_unlearn.benchmark.report import cells_from_markdown, leaderboard_markdown

    cells = [_rounded_cell("SASRec", "beauty", 1), _rounded_cell("GRU4Rec", "video", 2)]
    text = leaderboard_markdown(cells, title="")
    assert cells_from_markdown(text) == cells
    assert leaderboard_markdown(cells_from_markdown(text), title="") == text
    assert cells_from_markdown("## Reading the cell\n\nno table here\n") == []
    # tables written before speedups had 2 decimals (docs/leaderboard.md's 3-epoch cells) read
    # back at their own precision: re-rendered with --reuse, "0.9" became "0.90", a digit never
    # measured
    older = text.replace("| 0.90 |", "| 0.9 |")
    assert older != text
    assert leaderboard_markdown(cells_from_markdown(older), title="") == older


def test_leaderboard_doc_keeps_the_tables_of_cells_with_no_rows_here(tmp_path, in_tmp):
    import importlib.util

    from recbole_unlearn.benchmark.report import leaderboard_markdown

    spec = importlib.util.spec_from_file_location(
        "leaderboard_doc", os.path.join(os.path.dirname(__file__), "..", "benchmarks", "leaderboard_doc.py"))
    leaderboard_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(leaderboard_doc)

    path = _tiny_grid(tmp_path, {"ga-only": {"unlearn_method": "sruga", "sruga_kl": 0.0, "sruga_ft": 0.0}})
    earlier = tmp_path / "earlier.md"
    kept = _rounded_cell("GRU4Rec", "ml-tiny", 3, last="ga-only")
    earlier.write_text(leaderboard_markdown([kept, _rounded_cell("SASRec", "other", 4)]))
    # nothing has run: the grid's only cell comes from the earlier document, the other is not in the grid
    (reused,) = leaderboard_doc.collect_cells([path], reuse=str(earlier))
    methods = {r["method"]: r.pop("unlearn_method") for r in reused["rows"]}
    assert methods == {"recbole": "recbole", "original": "original", "retrain": "retrain", "ga-only": "sruga"}
    assert reused == kept
    assert leaderboard_doc.collect_cells([path]) == []
    run_grid(path)  # rows measured here take precedence over the earlier table
    (cell,) = leaderboard_doc.collect_cells([path], reuse=str(earlier))
    assert [r["method"] for r in cell["rows"]] == ["recbole", "original", "retrain", "ga-only"]
    assert cell["machine"]


def test_the_report_states_each_row_against_the_grids_targets():
    from recbole_unlearn.benchmark.report import leaderboard_markdown

    def row(method, ndcg, hit, seconds, unlearn_method=None, auc=None):
        out = {"method": method, "utility_rem": {"ndcg@10": ndcg}, "forget": {"hit@10": hit}, "seconds": seconds}
        if unlearn_method:
            out["unlearn_method"] = unlearn_method
        if auc:
            out["audit"] = {"auc": auc[0], "auc_interval": auc[1:], "verdict": "member signal"}
        return out

    grid = expand_grid({"models": ["SASRec"], "datasets": ["d"], "methods": ["sru", "sruga"], "targets": {
        "sru": {"ndcg_at_least": 0.9, "forget_at_most": 1.0},
        "sruga": {"ndcg_at_least": 0.85, "forget_at_most": 1, "seconds_at_most": 0.02}}})
    cell = {"model": "SASRec", "dataset": "d", "targets": grid.targets, "rows": [
        row("retrain", 0.0404, 0.119, 946.8),
        row("sruga", 0.0376, 0.1093, 18.6, auc=(0.555, 0.544, 0.567)),
        row("sru-ced", 0.0300, 0.0900, 300.0, unlearn_method="sru"),
        row("sisa", 0.0199, 0.0866, 580.0)]}
    text = leaderboard_markdown([cell])
    lines = {line.split(" | ")[0][2:]: line for line in text.splitlines()[text.splitlines().index(
        "Targets (fractions of Retrain's values; the grid's `targets`):"):] if line.startswith("| ")}
    assert set(lines) == {"method", "sruga", "sru-ced"}  # sisa has no targets
    assert "0.93 x; >= 0.85 x: met" in lines["sruga"] and "1/50.9; <= 1/50.0: met" in lines["sruga"]
    assert "| all met | member signal (0.555 [0.544, 0.567]) |" in lines["sruga"]
    assert "0.74 x; >= 0.90 x: missed" in lines["sru-ced"] and "0.76 x; <= 1.00 x: met" in lines["sru-ced"]
    assert "| missed: ndcg_at_least | - |" in lines["sru-ced"]
    cell["targets"]["sruga"]["seconds_at_most"] = 0.019
    assert "1/50.9; <= 1/52.6: missed" in leaderboard_markdown([cell])


def test_the_overview_puts_every_cell_side_by_side_as_fractions_of_its_own_retrain():
    from recbole_unlearn.benchmark.report import targets_overview_markdown

    def row(method, ndcg, hit, seconds, unlearn_method=None, verdict=None, auc=None):
        out = {"method": method, "utility_rem": {"ndcg@10": ndcg}, "forget": {"hit@10": hit}, "seconds": seconds}
        if unlearn_method:
            out["unlearn_method"] = unlearn_method
        if verdict:
            out["audit"] = {"auc": auc, "auc_interval": [auc - 0.01, auc + 0.01], "verdict": verdict}
        return out

    targets = expand_grid({"models": ["SASRec"], "datasets": ["d"], "methods": ["sru", "sruga"], "targets": {
        "sru": {"ndcg_at_least": 0.9, "forget_at_most": 1.0},
        "sruga": {"ndcg_at_least": 0.85, "forget_at_most": 1, "seconds_at_most": 0.02}}}).targets
    beauty = {"model": "SASRec", "dataset": "beauty", "targets": targets, "rows": [
        row("retrain", 0.04, 0.1, 1000.0, verdict="indistinguishable", auc=0.502),
        row("sruga", 0.036, 0.09, 10.0, verdict="member signal", auc=0.555),
        row("sru-ced", 0.02, 0.05, 500.0, unlearn_method="sru", verdict="indistinguishable", auc=0.494),
        row("sisa", 0.02, 0.12, 2000.0)]}
    video = {"model": "SASRec", "dataset": "video", "targets": targets, "rows": [
        row("retrain", 0.05, 0.2, 100.0), row("sisa", 0.04, 0.1, 50.0),
        row("sru-ced", 0.046, 0.1, 200.0, unlearn_method="sru")]}
    unfinished = {"model": "GRU4Rec", "dataset": "beauty", "targets": targets, "rows": [row("sisa", 0.1, 0.1, 1.0)]}
    lines = targets_overview_markdown([beauty, unfinished, video])
    assert lines[0] == "| method | SASRec beauty | SASRec video |"  # no Retrain, no column
    by_method = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[2:] if line}
    assert list(by_method) == ["retrain (the reference)", "sruga", "sru-ced", "sisa"]
    assert by_method["retrain (the reference)"] == ["0.0400, 0.1000, 1000.0 s", "0.0500, 0.2000, 100.0 s |"]
    # each cell against its own Retrain; a method with targets says which it missed
    assert by_method["sruga"] == ["0.90, 0.90, 1/100.0; met; audit 0.555 member signal", "- |"]
    assert by_method["sru-ced"] == ["0.50, 0.50, 1/2.0; **missed NDCG**", "0.92, 0.50, 2.00; met |"]
    assert by_method["sisa"] == ["0.50, 1.20, 2.00", "0.80, 0.50, 1/2.0 |"]  # no targets, no verdict
    assert targets_overview_markdown([unfinished]) == []
    # a miss that prints as its target shows the digits that decide it (it read "0.90, 1.00;
    # **missed NDCG, forget**"; probe)
    near = {"model": "SASRec", "dataset": "d", "targets": targets, "rows": [
        row("retrain", 0.02, 0.1, 100.0), row("sru-near", 0.0179, 0.1001, 50.0, unlearn_method="sru")]}
    assert "| sru-near | 0.89, 1.001, 1/2.0; **missed NDCG, forget** |" in targets_overview_markdown([near])


def test_report_gives_every_method_its_own_style_and_renders_offline():
    from recbole_unlearn.benchmark.report import leaderboard_html, method_styles

    methods = ["recbole", "original", "retrain", "sisa", "sru-ced", "sru-ned", "sru-red", "sru-mean", "sruga",
               "sruga-ga", "sruga-ga-kl", "sruga-ga-ft", "receraser-inbp", "receraser-ubp", "receraser-ibp"] + \
              [f"extra-{i}" for i in range(30)]
    styles = method_styles(methods)
    pairs = [(s["color"], s["symbol"]) for s in styles.values()]
    assert len(set(pairs)) == len(methods)
    assert styles["retrain"] == {"color": "#000000", "symbol": "star"}
    assert len({styles[m]["color"] for m in methods[:20]}) == 20  # the first methods differ by colour alone
    cell = {"model": "SASRec", "dataset": "tiny", "description": "", "machine": "", "rows": [
        {"method": m, "utility_rem": {"ndcg@10": 0.1 + i / 100}, "forget": {"hit@10": 0.2}, "seconds": 1.0 + i}
        for i, m in enumerate(["original", "retrain", "sisa"])]}
    html = leaderboard_html([cell])
    assert '<script src="https://cdn.plot.ly' not in html and len(html) > 1_000_000  # plotly.js is inline


def test_audit_and_training_table_and_csv_columns():
    """Every row's audit (AUC with its interval, TPRs, residual memorisation, verdict) and how its
    models trained, with models that stopped at their cap marked (issues: audit columns on the
    leaderboard; report when the cap was hit)."""
    from recbole_unlearn.benchmark.report import leaderboard_csv, leaderboard_markdown

    audit = {"auc": 0.62, "auc_interval": [0.6, 0.64], "tpr@1%fpr": 0.03, "tpr@5%fpr": 0.1,
             "residual_memorisation": 1.0, "verdict": "member signal"}
    shard = {"0": {"0": {"epochs": 12, "cap": 200, "hit_cap": False}},
             "1": {"0": {"epochs": 200, "cap": 200, "hit_cap": True}}}
    rows = [
        {"method": "original", "epochs_run": 200, "audit": audit},
        {"method": "retrain", "epochs_run": 31, "audit": dict(audit, auc=0.5, auc_interval=[0.48, 0.52],
                                                               verdict="indistinguishable", residual_memorisation=0.0)},
        {"method": "sruga", "epochs_run": 2, "stopped_by": "unseen"},
        {"method": "sru", "fit_training": {"shards": shard, "aggregator": {"epochs": 7, "cap": 100, "hit_cap": False}}},
    ]
    cell = {"model": "SASRec", "dataset": "beauty", "description": "", "epochs_cap": 200, "rows": rows}
    text = leaderboard_markdown([cell])
    assert "| original | 0.620 [0.600, 0.640] | 0.030 | 0.100 | 1.00 | member signal | 200 epochs (cap) |" in text
    assert "| retrain | 0.500 [0.480, 0.520] | 0.030 | 0.100 | 0.00 | indistinguishable | 31 epochs |" in text
    assert "| sruga | - | - | - | - | - | 2 epochs, stopped by unseen |" in text
    assert "| sru | - | - | - | - | - | fit: shards 12-200 epochs (1 at cap), aggregator 7 |" in text
    table = list(csv.DictReader(leaderboard_csv([cell]).splitlines()))
    assert [r["cap_hit"] for r in table] == ["True", "False", "False", "True"]
    assert table[1]["audit_auc_low"] == "0.48" and table[0]["audit_verdict"] == "member signal"


def test_a_grid_with_a_pause_file_waits_before_its_next_row_and_goes_on_once_it_is_gone(tmp_path, in_tmp,
                                                                                        monkeypatch):
    """The runner waited only before method rows: with ``PAUSE`` in place it still trained (and
    timed) the RecBole baseline and the original, the rows a pause exists to keep alone. It now
    waits before every training it times."""
    path = _tiny_grid(tmp_path, ["sisa"])
    pause = tmp_path / "board" / "PAUSE"
    pause.parent.mkdir()
    pause.write_text("")
    rows = tmp_path / "board" / "GRU4Rec-ml-tiny" / "rows"
    seen = []

    real_sleep = time.sleep

    def sleep(seconds):  # the grid is waiting: record what exists, then lift the pause
        if sys._getframe(1).f_code is not runner.wait_while_paused.__code__:
            return real_sleep(seconds)  # someone else's wait
        seen.append(sorted(p.name for p in rows.iterdir()))
        pause.unlink()

    monkeypatch.setattr(time, "sleep", sleep)
    run_grid(path)
    assert seen == [[]]  # paused before its first training, the baseline
    assert sorted(p.name for p in rows.iterdir()) == ["original.json", "recbole.json", "retrain.json", "sisa.json"]
    # the baseline row records what else ran while it did, as every row does (it had no meter)
    assert set(json.loads((rows / "recbole.json").read_text())["row"]["cpu_meter"]) == {
        "wall_s", "own_cpu_s", "others_cpu_s", "others_share"}


def test_repeated_requests_rows_count_every_requests_extra_deletions_and_training(tmp_path, in_tmp):
    """With ``request_steps`` a row's ``extra_deleted``, ``shards_retrained`` and forget training
    were the last request's alone (26 of 100 extra deletions), next to its ``seconds`` and
    ``forgotten_interactions`` over all requests."""
    path = _tiny_grid(tmp_path, {"sru-ced": {"unlearn_method": "sru", "extra_deletion": "ced"}}, request_steps=3)
    document = yaml.safe_load(open(path))
    document["baseline"] = False
    open(path, "w").write(yaml.safe_dump(document))
    run_grid(path)
    rows = tmp_path / "board" / "GRU4Rec-ml-tiny" / "rows"
    row = json.loads((rows / "sru-ced.json").read_text())["row"]
    retrain = json.loads((rows / "retrain.json").read_text())["row"]
    assert row["extra_deleted"] == row["forgotten_interactions"] - retrain["forgotten_interactions"] > 0
    assert len(row["forget_training"]["steps"]) == 3 and len(row["steps"]) == 3
    assert set(row["shards_retrained"]) >= {s for step in row["forget_training"]["steps"] for s in map(int, step["shards"])}


def test_a_row_read_back_from_a_committed_table_has_no_cap_flag_rather_than_false():
    """``leaderboard_doc.py --reuse`` reads a committed cell back from its Markdown table, which
    holds no training record: its CSV rows said ``cap_hit`` False, also for rows that had hit
    their cap."""
    from recbole_unlearn.benchmark.report import flat_rows

    flat = flat_rows([{"model": "GRU4Rec", "dataset": "d", "rows": [{"method": "sisa", "seconds": 1.0}]}])
    assert flat[0]["cap_hit"] is None and flat[0]["training"] == ""


# --- grids built on other grids ----------------------------------------------------------
def test_a_grid_extends_another_file_merging_config_and_targets_and_replacing_the_rest(tmp_path):
    base = {"models": ["SASRec"], "datasets": ["beauty", "video"], "output_dir": "base",
            "config": {"epochs": 200, "n_shards": 8, "audit": True},
            "targets": {"sru": {"ndcg_at_least": 0.9}}, "methods": ["sisa", "sru"]}
    (tmp_path / "grids").mkdir()
    (tmp_path / "grids" / "base.yaml").write_text(yaml.safe_dump(base))
    child = {"extends": "base.yaml", "models": ["GRU4Rec"], "datasets": ["beauty"], "output_dir": "child",
             "config": {"n_shards": 4, "audit": None}, "targets": {"sruga": {"seconds_at_most": 0.02}},
             "methods": {"sruga": {}}}
    (tmp_path / "grids" / "child.yaml").write_text(yaml.safe_dump(child))
    grid = load_grid(str(tmp_path / "grids" / "child.yaml"))
    assert [c.name for c in grid.cells] == ["GRU4Rec-beauty"] and grid.output_dir == "child"
    assert grid.config == {"epochs": 200, "n_shards": 4}  # merged; null dropped the base's audit
    assert grid.targets == {"sru": {"ndcg_at_least": 0.9}, "sruga": {"seconds_at_most": 0.02}}
    assert [v.label for v in grid.cells[0].variants] == ["retrain", "sruga"]  # methods replaced

    (tmp_path / "grids" / "base.yaml").write_text(yaml.safe_dump(dict(base, extends="child.yaml")))
    with pytest.raises(UnlearnError, match="goes round in a circle"):
        load_grid(str(tmp_path / "grids" / "child.yaml"))
    (tmp_path / "grids" / "child.yaml").write_text(yaml.safe_dump(dict(child, extends="nope.yaml")))
    with pytest.raises(UnlearnError, match="grid file not found: .*nope.yaml"):
        load_grid(str(tmp_path / "grids" / "child.yaml"))
    with pytest.raises(UnlearnError, match="read by load_grid only"):
        expand_grid(dict(child))


def test_the_shipped_grids_load_and_the_converged_cells_share_their_settings():
    grids = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "grids")
    loaded = {name: load_grid(os.path.join(grids, name)) for name in sorted(os.listdir(grids))}
    converged = loaded["converged-sasrec.yaml"]
    for name in ("converged-gru4rec-bert4rec.yaml", "converged-sruga-remedies.yaml"):
        assert loaded[name].config == converged.config, name
    assert loaded["converged-sruga-remedies.yaml"].reuse_cells_from == converged.output_dir


def _grid_named(tmp_path, name: str, methods, reuse_cells_from=None, **config) -> str:
    """A tiny grid without the RecBole baseline row, writing into ``tmp_path/name``."""
    path = _tiny_grid(tmp_path, methods, **config)
    document = yaml.safe_load(open(path))
    document.update(output_dir=str(tmp_path / name), baseline=False)
    if reuse_cells_from:
        document["reuse_cells_from"] = reuse_cells_from
    target = tmp_path / f"{name}.yaml"
    target.write_text(yaml.safe_dump(document))
    return str(target)


def _reuse_grid(tmp_path, lender: str, name: str, methods, **config) -> str:
    return _grid_named(tmp_path, name, methods, reuse_cells_from=lender, **config)


def test_a_grid_reuses_another_grids_original_references_and_retrain_row(tmp_path, in_tmp, monkeypatch):
    from recbole_unlearn.unlearn import experiment as experiment_module

    run_grid(_grid_named(tmp_path, "board", ["retrain"], audit=True, audit_references=2))
    lender = tmp_path / "board" / "GRU4Rec-ml-tiny"
    lender_files = {p.name: p.read_bytes() for p in lender.iterdir() if p.is_file()}
    assert {"audit_reference_0.pth", "audit_reference_1.pth"} <= set(lender_files)

    # another forget set or other data settings: refused, nothing written
    other = _reuse_grid(tmp_path, str(tmp_path / "board"), "other", ["sruga"], audit=True, audit_references=2,
                        forget_user_ratio=0.3)
    with pytest.raises(UnlearnError, match="cannot lend its original"):
        run_grid(other)
    # nothing: the folder was left created and claimed, refusing the corrected grid in another
    # file (a probe; the lender is checked before the claim)
    assert not os.path.exists(tmp_path / "other")
    # a lender that never ran: refused before anything trains
    missing = _reuse_grid(tmp_path, str(tmp_path / "nowhere"), "missing", ["sruga"], audit=True, audit_references=2)
    assert main([f"--benchmark={missing}"]) == 2
    assert not os.path.exists(tmp_path / "missing")

    trained = []
    real_train = experiment_module.train_model
    monkeypatch.setattr(experiment_module, "train_model", lambda *a, **k: trained.append(k.get("tag")) or
                        real_train(*a, **k))
    run_grid(_reuse_grid(tmp_path, str(tmp_path / "board"), "borrower", ["sruga"], audit=True, audit_references=2))
    assert trained == []  # neither the original nor the audit's reference was trained again
    cell = tmp_path / "borrower" / "GRU4Rec-ml-tiny"
    for name in ("original.pth", "audit_reference_0.pth", "audit_reference_1.pth"):
        assert (cell / name).read_bytes() == lender_files[name]
    assert json.loads((cell / "cell.json").read_text())["reused_from"] == str(lender)
    for name in ("original.json", "retrain.json"):
        assert (cell / "rows" / name).read_bytes() == (lender / "rows" / name).read_bytes(), name
    assert sorted(p.name for p in (cell / "rows").iterdir()) == ["original.json", "retrain.json", "sruga.json"]
    assert not any(p.name.endswith(".partial") for p in cell.rglob("*"))


def test_other_numerics_names_only_the_machine_keys_that_differ():
    from recbole_unlearn.utils.results import other_numerics

    today = {"cpu": "CPU A", "cpu_capability": "AVX2", "torch": "2.13.0+cpu", "platform": "here"}
    assert other_numerics({"platform": "there", "cpu_count": 2}, today) is None  # recorded before the keys
    assert other_numerics(dict(today, platform="there"), today) is None
    assert other_numerics(dict(today, cpu="CPU B"), today) == "cpu CPU B; here cpu CPU A"
    assert other_numerics(dict(today, cpu_capability="AVX512", torch="2.9.1"), today) == \
        "AVX512, torch 2.9.1; here AVX2, torch 2.13.0+cpu"


def test_a_cell_whose_model_files_are_gone_trains_them_again_and_keeps_its_rows_only_if_they_reproduce(
        tmp_path, in_tmp):
    """A cell copied to a new machine without its .pth files: the original and the references are
    trained again; the finished rows stay only if the original reproduces its saved row and the
    references its saved audit; otherwise the cell is refused and nothing new is left behind."""
    path = _grid_named(tmp_path, "board", ["sruga"], audit=True, audit_references=2)
    run_grid(path)
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"
    models = ["original.pth", "audit_reference_0.pth", "audit_reference_1.pth"]
    rows = {p.name: p.read_text() for p in (cell / "rows").iterdir()}

    for name in models:  # restored on a machine without the model files: reproduced, rows kept
        os.unlink(cell / name)
    run_grid(path)
    assert all((cell / name).is_file() for name in models)
    assert {p.name: p.read_text() for p in (cell / "rows").iterdir()} == rows  # the first time kept too

    # a reference file replaced by hand (here by the other one): the original's audit was measured
    # again against it and its row rewritten, the method rows keeping audits against the old
    # ones, one cell mixing two calibrations (r11audit probe): refused, nothing written
    kept = (cell / "audit_reference_1.pth").read_bytes()
    shutil.copy(cell / "audit_reference_0.pth", cell / "audit_reference_1.pth")
    with pytest.raises(UnlearnError, match=r"audit_reference_1.pth is not the audit reference model the original's "
                                           r"row recorded \(checksum\), which rows .*sruga.* were audited with"):
        run_grid(path)
    assert {p.name: p.read_text() for p in (cell / "rows").iterdir()} == rows
    # the same in a cell saved before the checksums were recorded: refused by the audit it gives
    # (it was measured again and its row rewritten, with the new file's checksum; r11round2 probe)
    saved = json.loads(rows["original.json"])
    del saved["row"]["audit"]["cost"]["references_sha256"]
    (cell / "rows" / "original.json").write_text(json.dumps(saved))
    with pytest.raises(UnlearnError, match=r"the saved audit reference models audit the original otherwise \(auc"):
        run_grid(path)
    assert json.loads((cell / "rows" / "original.json").read_text()) == saved
    (cell / "audit_reference_1.pth").write_bytes(kept)
    run_grid(path)  # restored: the checksums are recorded on this resume
    assert json.loads((cell / "rows" / "original.json").read_text()) == json.loads(rows["original.json"])

    # a saved original that this training does not reproduce: refused, nothing written
    saved = json.loads(rows["original.json"])
    saved["row"]["utility_rem"]["ndcg@10"] += 0.25
    (cell / "rows" / "original.json").write_text(json.dumps(saved))
    os.unlink(cell / "original.pth")
    with pytest.raises(UnlearnError, match=r"differs from its saved row in utility_rem.*sruga") as refused:
        run_grid(path)
    assert "another machine" not in str(refused.value)  # measured here: no machine to blame
    assert not (cell / "original.pth").exists()
    assert json.loads((cell / "rows" / "original.json").read_text()) == saved

    # the same, with the saved row measured on another CPU: the refusal names both machines
    saved["machine"] = dict(saved["machine"], cpu="Other CPU 9000", cpu_capability="SVE256")
    (cell / "rows" / "original.json").write_text(json.dumps(saved))
    with pytest.raises(UnlearnError, match=r"measured on another machine \(cpu Other CPU 9000, SVE256; here "):
        run_grid(path)
    assert not (cell / "original.pth").exists()

    # references trained again that audit the original otherwise: refused, the new ones removed
    (cell / "rows" / "original.json").write_text(rows["original.json"])
    run_grid(path)  # the original is reproduced again
    saved = json.loads(rows["original.json"])
    saved["row"]["audit"]["auc"] = 0.125
    (cell / "rows" / "original.json").write_text(json.dumps(saved))
    os.unlink(cell / "audit_reference_1.pth")
    with pytest.raises(UnlearnError, match=r"audit the original otherwise \(auc"):
        run_grid(path)
    assert (cell / "audit_reference_0.pth").is_file() and not (cell / "audit_reference_1.pth").exists()
    assert json.loads((cell / "rows" / "original.json").read_text()) == saved

    # references trained again that reproduce the audit but not a shuffled-labels check saved by
    # an older way of measuring it (one draw, not the mean of `audit_shuffles`): the same
    # calibration, so the references stay and the check is measured anew
    saved = json.loads(rows["original.json"])
    saved["row"]["audit"]["shuffled_labels"] = {"auc": 0.513, "auc_interval": [0.501, 0.526]}
    (cell / "rows" / "original.json").write_text(json.dumps(saved))
    run_grid(path)
    assert (cell / "audit_reference_1.pth").is_file()
    assert {p.name: p.read_text() for p in (cell / "rows").iterdir()} == rows

    # with no method row measured yet, a lost original is simply trained again
    for name in models + ["rows/retrain.json", "rows/sruga.json"]:
        if (cell / name).exists():
            os.unlink(cell / name)
    run_grid(path)
    assert json.loads((cell / "rows" / "original.json").read_text())["row"]["audit"]["auc"] != 0.125


def test_progress_counts_an_original_trained_again_among_the_steps_left(tmp_path, in_tmp, monkeypatch):
    """A resumed cell whose original.pth is gone trains the original again before its missing
    rows: that is a step left, so progress never counts past its total (it read 3/2, ETA < 0)."""
    path = _grid_named(tmp_path, "board", ["retrain", "sruga"])
    run_grid(path)
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"
    os.unlink(cell / "original.pth")
    os.unlink(cell / "rows" / "sruga.json")
    counted = []
    real_step = runner.Progress.step
    monkeypatch.setattr(runner.Progress, "step",
                        lambda self, what: real_step(self, what) or counted.append((self.done, self.total, what)))
    run_grid(path)
    assert [(done, total) for done, total, _ in counted] == [(2, 3), (3, 3)]
    assert [what.split()[-1] for _, _, what in counted] == ["original", "sruga"]


def test_an_extending_grid_keeps_the_bases_null_values_and_refuses_duplicate_keys(tmp_path):
    """``extends`` dropped every null the base grid set (``agg_max_samples: ~``, all samples, became
    the 20,000 cap), not only those the child wrote; a key written twice in a grid kept the last
    one without a word (a whole method row vanished)."""
    (tmp_path / "base.yaml").write_text("models: [SASRec]\ndatasets: [d]\nmethods: [sru]\n"
                                        "config: {agg_max_samples: ~, sruga_valid_users: ~, epochs: 3}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nconfig: {n_shards: 2, epochs: ~}\n")
    config = load_grid(str(tmp_path / "child.yaml")).config
    assert config == {"agg_max_samples": None, "sruga_valid_users": None, "n_shards": 2}  # the child's null drops
    (tmp_path / "twice.yaml").write_text("models: [SASRec]\ndatasets: [d]\n"
                                         "methods: {sisa: {n_shards: 2}, sisa: {n_shards: 3}}\n")
    with pytest.raises(UnlearnError, match=r"twice.yaml is not valid YAML \(line 3, column \d+\): key 'sisa' is written twice"):
        load_grid(str(tmp_path / "twice.yaml"))


def test_the_table_shows_the_speedup_as_recorded_not_rounded_twice():
    """A speedup of 0.9549 was recorded as 0.95 and shown as 0.9 (rounded again to one decimal);
    under 0.05 it read 0.0 (found by probing)."""
    from recbole_unlearn.benchmark.report import cells_from_markdown, leaderboard_markdown

    cell = _rounded_cell("SASRec", "beauty", 3)
    cell["rows"][-1]["speedup"] = 0.95
    cell["rows"].append(dict(cell["rows"][-1], method="slow", speedup=0.04))
    text = leaderboard_markdown([cell], title="")
    assert "| 0.95 |" in text and "| 0.04 |" in text, text
    assert cells_from_markdown(text) == [cell]


def test_every_committed_grid_builds_the_configs_of_its_cells():
    """Two committed grids (sruga-memorised*.yaml) set eval_step 0 (RecBole: no validation, the
    last epoch kept) and were refused by a range check added later: their documented command no
    longer ran (found by probing). Every grid under benchmarks/grids/ builds every cell's configs."""
    import glob

    from recbole_unlearn.benchmark.runner import CellRun

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = sorted(glob.glob(os.path.join(root, "benchmarks", "grids", "*.yaml")))
    assert len(paths) > 10
    for path in paths:
        grid = load_grid(path)
        for cell in grid.cells:
            CellRun(grid, cell)  # validates the cell's and every row's settings


def test_a_second_grid_file_is_refused_the_output_dir_another_grid_wrote(tmp_path, in_tmp, capsys):
    """Two grid files naming one ``output_dir``: the second rewrote the first's leaderboard files
    with its own cells and, for a label both have with other settings, ran the row again over the
    first's (found by probing). The folder now records the grid file that writes it, and another
    grid file is refused with one error line before anything is written; the first resumes."""
    first = _grid_named(tmp_path, "board", ["sruga"])
    run_grid(first)
    board = tmp_path / "board"
    before = {p: p.read_bytes() for p in board.rglob("*") if p.is_file()}
    document = yaml.safe_load(open(first))
    document["methods"] = {"sruga": {"sruga_epochs": 1}}
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump(document))
    capsys.readouterr()
    assert main([f"--benchmark={second}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "board.yaml" in err[0], err
    assert {p: p.read_bytes() for p in board.rglob("*") if p.is_file()} == before
    # a file of the same name in another folder (a committed grid copied to edit it) was taken
    # for the first: it overwrote the rows and leaderboard files (probe)
    (tmp_path / "copy").mkdir()
    same_name = tmp_path / "copy" / os.path.basename(first)
    same_name.write_text(yaml.safe_dump(document))
    assert main([f"--benchmark={same_name}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and first in err[0], err
    assert {p: p.read_bytes() for p in board.rglob("*") if p.is_file()} == before
    run_grid(first)  # the grid that wrote the folder resumes: every row is finished
    # the grid file moved (a clone on another machine): the same name resumes
    moved = tmp_path / "moved"
    moved.mkdir()
    os.rename(first, moved / os.path.basename(first))
    run_grid(str(moved / os.path.basename(first)))


def test_a_grid_without_output_dir_writes_below_results_leaderboard_in_a_folder_of_its_own(tmp_path):
    """The default ``output_dir`` was ``results/leaderboard`` for every grid, so two grid files that
    set none shared it; it is now ``results/leaderboard/<grid file name without .yaml>``."""
    path = tmp_path / "my-grid.yaml"
    path.write_text(yaml.safe_dump({"models": ["SASRec"], "datasets": ["ml-tiny"], "methods": {"sisa": {}}}))
    assert load_grid(str(path)).output_dir == os.path.join("results", "leaderboard", "my-grid")


def test_a_model_folder_a_grid_saved_keeps_no_version_from_before_a_forget(tmp_path, in_tmp):
    """The runner keeps each row's fitted version (``keep_previous_version``) to share fits, and
    wrote the key into the folder's settings: the folder, answering requests later, kept the
    version from before every forget, a model trained on the data it forgot (found by probing)."""
    from conftest import load_model, read_manifest
    from recbole_unlearn.quick_start import run_forget_requests

    run_grid(_grid_named(tmp_path, "board", ["sruga"]))
    model_dir = str(tmp_path / "board" / "GRU4Rec-ml-tiny" / "models" / "sruga")
    _, manifest = read_manifest(model_dir)
    assert "keep_previous_version" not in manifest["config"]
    model = load_model(model_dir)
    user = next(model.dataset.id2token("user_id", u) for u in range(1, model.dataset.user_num)
                if not np.isin(model.dataset.user_rows(u), model.forgotten).any())
    (tmp_path / "req.csv").write_text(f"{user}\n")
    run_forget_requests(model_dir, str(tmp_path / "req.csv"), {"state": "ERROR"}, verbose=False)
    assert sorted(e for e in os.listdir(model_dir) if e.startswith("v")) == ["v000003"]


def test_a_shared_sruga_key_reruns_only_the_rows_that_run_sruga(tmp_path, in_tmp, monkeypatch):
    """Every row recorded every method's keys, so changing a SRUGA key in the grid's shared config
    reran Retrain and every SISA row (hours on a converged grid; found by probing). A row set to a
    key its method does not use is refused (``scif_damping`` on a Fanchuan row was recorded)."""
    from recbole_unlearn.unlearn import experiment as experiment_module

    path = _tiny_grid(tmp_path, {"sisa": {}, "sruga": {}})
    run_grid(path)
    document = yaml.safe_load(open(path))
    document["config"]["sruga_learning_rate"] = 0.002
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(document))
    ran = []
    real = experiment_module.Experiment.run_method
    monkeypatch.setattr(experiment_module.Experiment, "run_method",
                        lambda self, config, *a, **k: ran.append(config.method) or real(self, config, *a, **k))
    run_grid(path)
    assert ran == ["sruga"], ran
    document["methods"] = {"fanchuan": {"scif_damping": 0.5}}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(UnlearnError, match="row 'fanchuan' sets scif_damping, which fanchuan does not use"):
        run_grid(path)


def test_a_grid_without_output_dir_that_ran_under_the_old_default_is_refused_not_rerun(tmp_path, in_tmp):
    """Before 089c52e a grid without ``output_dir`` wrote below ``results/leaderboard``; today's
    default (``results/leaderboard/<grid file name>``) silently ran every cell again in a new
    folder, hours on a converged grid (found by probing). Such a grid is refused with the line
    that resumes it."""
    path = tmp_path / "mygrid.yaml"
    settings = {k: v for k, v in tiny_dict(n_shards=2).items() if k != "dataset"}
    path.write_text(yaml.safe_dump({"models": ["GRU4Rec"], "datasets": ["ml-tiny"], "baseline": False,
                                    "config": settings, "methods": {"retrain": {}}}))
    old_cell = in_tmp / "results" / "leaderboard" / "GRU4Rec-ml-tiny"
    old_cell.mkdir(parents=True)
    (old_cell / "cell.json").write_text("{}")  # a cell the old default wrote
    with pytest.raises(UnlearnError, match=r"set output_dir: results/leaderboard in the grid file to resume"):
        run_grid(str(path))
    assert not os.path.exists(in_tmp / "results" / "leaderboard" / "mygrid")


def test_a_row_whose_forget_changed_nothing_is_never_shown_as_an_ordinary_forget():
    """A grid row whose SRUGA step kept no update (``changed: false``) was listed in
    leaderboard.md, leaderboard.csv and the HTML report like any forget, and the Targets table and
    the overview credited its unchanged forget Hit@10 as "met" (found by probing; SPEC section
    6). Each now says it did not change the model."""
    from recbole_unlearn.benchmark.report import (leaderboard_csv, leaderboard_html, leaderboard_markdown,
                                                  targets_overview_markdown)

    targets = expand_grid({"models": ["SASRec"], "datasets": ["d"], "methods": ["sruga"], "targets": {
        "sruga": {"ndcg_at_least": 0.85, "forget_at_most": 1, "seconds_at_most": 0.5}}}).targets
    cell = {"model": "SASRec", "dataset": "d", "targets": targets, "rows": [
        {"method": "retrain", "utility_rem": {"ndcg@10": 0.04}, "forget": {"hit@10": 0.09}, "seconds": 10.0},
        {"method": "sruga", "utility_rem": {"ndcg@10": 0.041}, "forget": {"hit@10": 0.09}, "seconds": 2.0,
         "changed": False, "stopped_by": "utility_floor"}]}
    text = leaderboard_markdown([cell])
    assert "sruga (stopped_by: utility_floor) did not change the model" in text
    target_line = next(line for line in text.splitlines() if line.startswith("| sruga |") and "met" in line)
    assert "all met" not in target_line and "did not change the model" in target_line
    (overview,) = [line for line in targets_overview_markdown([cell]) if line.startswith("| sruga")]
    assert "; met" not in overview and "did not change the model" in overview
    rows = list(csv.DictReader(io.StringIO(leaderboard_csv([cell]))))
    assert [r["changed"] for r in rows] == ["", "False"]
    assert "did not change the model" in leaderboard_html([cell], plotlyjs="cdn")


def test_an_unchanged_sharded_rows_note_names_its_shards_reasons():
    """Under ``shard_unlearning`` the no-change warning said ``stopped_by: unknown`` though each
    shard's step recorded why (found by probing)."""
    from recbole_unlearn.benchmark.report import targets_markdown
    from recbole_unlearn.utils.results import unchanged_rows_note

    reason = "fallback: negative curvature (raise scif_damping)"
    row = {"method": "sisa", "changed": False, "utility_rem": {"ndcg@10": 0.04}, "forget": {"hit@10": 0.09},
           "seconds": 1.0, "approximate": {"0": {"stopped_by": reason, "changed": False}}}
    assert f"sisa (stopped_by: {reason})" in unchanged_rows_note([row])
    targets = expand_grid({"models": ["SASRec"], "datasets": ["d"], "methods": ["sisa"],
                           "targets": {"sisa": {"forget_at_most": 1}}}).targets
    cell = {"model": "SASRec", "dataset": "d", "targets": targets, "rows": [
        {"method": "retrain", "utility_rem": {"ndcg@10": 0.04}, "forget": {"hit@10": 0.09}, "seconds": 10.0}, row]}
    assert reason in "\n".join(targets_markdown(cell))


def test_a_request_steps_row_whose_later_request_changed_nothing_is_not_called_unchanged():
    """Under ``request_steps`` a row's ``changed`` was every request's, so a row whose first
    request forgot (its utility and forget Hit@10 moved) and whose second stopped at the floor
    was reported as "did not change the model" (found by probing). ``changed`` now says whether
    any request changed it, and ``unchanged_steps`` names the others."""
    from recbole_unlearn.unlearn.experiment import _info_over_requests
    from recbole_unlearn.utils.results import unchanged_rows_note

    row = _info_over_requests([{"changed": True, "stopped_by": "unseen"},
                               {"changed": False, "stopped_by": "utility_floor"}], np.array([], dtype=np.int64))
    assert row["changed"] is True and row["unchanged_steps"] == [2]
    note = unchanged_rows_note([dict(row, method="sruga-floor")])
    assert "sruga-floor" in note and "request step 2 of 2" in note
    assert "did not change the model" in note
    assert _info_over_requests([{"changed": False}, {"changed": False}], np.array([], dtype=np.int64))["changed"] is False
    from recbole_unlearn.benchmark.report import leaderboard_csv, leaderboard_html

    cell = {"model": "SASRec", "dataset": "d", "rows": [dict(row, method="sruga-floor", seconds=1.0,
                                                             utility_rem={"ndcg@10": 0.03}, forget={"hit@10": 0.1})]}
    assert [r["unchanged_steps"] for r in csv.DictReader(io.StringIO(leaderboard_csv([cell])))] == ["[2]"]
    assert "request steps [2] did not change the model" in leaderboard_html([cell], plotlyjs="cdn")


# --- found by probing the grid runner (each failed before its fix) ------------------------------
@pytest.mark.parametrize("methods, says", [
    ({"..": {"unlearn_method": "sruga"}}, "label '..' is not allowed"),
    ({".": {"unlearn_method": "sruga"}}, "label '.' is not allowed"),
    (["sisa", "sisa"], "'sisa' is written twice"),
    ({"sruga-file": {"unlearn_method": "sruga", "forget": "req.csv"}}, "sets 'forget'"),
    ({"sisa-here": {"unlearn_method": "sisa", "model_dir": "m"}}, "sets 'model_dir'"),
])
def test_grid_rows_that_would_delete_results_or_be_ignored_are_refused(methods, says):
    """A row labelled ``..`` made the runner remove the whole cell folder (``models/..``), ``.`` every
    finished row's model; ``[sisa, sisa]`` ran one row without a word; a row's ``forget`` was
    recorded in its row file while the row forgot the cell's sampled set, and its ``model_dir``
    was replaced by the runner's."""
    with pytest.raises(UnlearnError, match=says):
        expand_grid({"models": ["GRU4Rec"], "datasets": ["ml-tiny"], "methods": methods})


def test_a_target_against_a_retrain_value_of_zero_is_judged_not_left_unmeasured():
    """Retrain's forget Hit@10 of 0.0 made a row at 0.05 "not measured" (the ratio divides by 0),
    where ``forget_at_most`` is missed: no fraction of 0 admits 0.05 (found by probing)."""
    from recbole_unlearn.benchmark.report import target_results

    retrain = {"method": "retrain", "forget": {"hit@10": 0.0}, "utility_rem": {"ndcg@10": 0.0}, "seconds": 10.0}
    row = {"method": "sruga", "forget": {"hit@10": 0.05}, "utility_rem": {"ndcg@10": 0.01}, "seconds": 1.0}
    results = target_results(row, retrain, {"forget_at_most": 1.0, "ndcg_at_least": 0.9})
    assert results["forget_at_most"][1] is False and results["ndcg_at_least"][1] is True
    assert target_results(dict(row, forget={"hit@10": 0.0}), retrain, {"forget_at_most": 1.0})["forget_at_most"][1]


def test_every_method_has_a_legend_entry_even_when_the_first_cell_lacks_it():
    """Only the first cell's traces were in the legend, so a method with no plotted row there was
    never named: its colour and marker explained only on hover (found by probing)."""
    from recbole_unlearn.benchmark.report import leaderboard_html

    def cell(model, methods):
        return {"model": model, "dataset": "d", "rows": [
            {"method": m, "forget": {"hit@10": 0.1}, "utility_rem": {"ndcg@10": 0.05}, "seconds": 1.0} for m in methods]}

    html = leaderboard_html([cell("A", ["retrain", "sisa"]), cell("B", ["retrain", "sisa", "fanchuan"])], plotlyjs="cdn")
    import re

    shown = set()
    for match in re.finditer(r'"legendgroup":"([^"]+)"', html):  # each trace's next showlegend is its own
        flag = re.search(r'"showlegend":(true|false)', html[match.end():match.end() + 2000])
        if flag and flag.group(1) == "true":
            shown.add(match.group(1))
    legend = {m: m in shown for m in ("retrain", "sisa", "fanchuan")}
    assert legend == {"retrain": True, "sisa": True, "fanchuan": True}, legend


def test_a_cells_run_reports_what_other_runs_finished_meanwhile_and_no_baseline_row_once_it_is_off(tmp_path,
                                                                                                    monkeypatch):
    """Two ``--cells`` runs at once on one output_dir: the one finishing last wrote a leaderboard
    without the other's cell, read once at its start. And with ``baseline`` switched off, a cell
    another call reported kept its old ``recbole`` row while this call's cells had none (both found
    by probing)."""
    path = _tiny_grid(tmp_path, ["retrain"], models=("GRU4Rec", "SASRec"))
    real_run_cell = runner.run_cell

    def another_process_finishes_sasrec_meanwhile(run, progress):
        out = real_run_cell(run, progress)
        if run.cell.name == "GRU4Rec-ml-tiny":
            run_grid(path, ["SASRec-ml-tiny"])
        return out

    monkeypatch.setattr(runner, "run_cell", another_process_finishes_sasrec_meanwhile)
    paths = run_grid(path, ["GRU4Rec-ml-tiny"])
    assert {r["model"] for r in csv.DictReader(open(paths["csv"]))} == {"GRU4Rec", "SASRec"}
    grid = yaml.safe_load(open(path))
    grid["baseline"] = False
    open(path, "w").write(yaml.safe_dump(grid))
    paths = run_grid(path, ["SASRec-ml-tiny"])
    rows = list(csv.DictReader(open(paths["csv"])))
    assert not [r for r in rows if r["method"] == "recbole"], [(r["model"], r["method"]) for r in rows]


def test_a_cell_whose_request_file_changed_is_not_reported_as_this_grids(tmp_path):
    """With the grid's ``forget: <request file>``, editing the file after a cell finished was
    caught when the cell ran again but not when it was reported (``finished_cells``, another
    call's ``--cells``): one leaderboard mixed two forget sets (found by probing)."""
    from recbole_unlearn.benchmark.runner import finished_cells

    (tmp_path / "req.csv").write_text("1\n2\n3\n")
    path = _tiny_grid(tmp_path, ["retrain"], forget=str(tmp_path / "req.csv"))
    run_grid(path)
    assert len(finished_cells(path)) == 1
    (tmp_path / "req.csv").write_text("4\n5\n6\n7\n")
    with pytest.raises(UnlearnError, match="request file"):
        finished_cells(path)


def test_a_row_refused_at_its_cell_leaves_the_output_folder_unclaimed(tmp_path):
    """A row whose value its method refuses (``extra_deletion: nope``) gave its ``error:`` line after
    the runner had written ``grid.json``, claiming the output folder for the grid file."""
    path = _tiny_grid(tmp_path, {"sru": {"extra_deletion": "nope"}})
    with pytest.raises(UnlearnError, match="nope"):
        run_grid(path)
    assert not os.path.exists(tmp_path / "board" / "grid.json")


def test_a_request_file_with_its_lines_reordered_is_the_same_forget_set_for_runner_and_report(tmp_path):
    """The report compared the request file's bytes, the runner its forget rows: lines reordered
    kept the forget set, the runner resumed the cell, and every report refused it with a traceback
    (found by probing this session's change)."""
    from recbole_unlearn.benchmark.runner import finished_cells

    (tmp_path / "req.csv").write_text("1\n2\n3\n")
    path = _tiny_grid(tmp_path, ["retrain"], forget=str(tmp_path / "req.csv"))
    run_grid(path)
    (tmp_path / "req.csv").write_text("# the same requests\n3\n2\n1\n")
    assert len(finished_cells(path)) == 1
    run_grid(path)


@pytest.mark.parametrize("label", ["a\0b", "x" * 300, "tab\x0bbed"])
def test_a_row_label_no_file_can_be_named_after_is_refused_before_training(label):
    """A label holding a NUL byte (a traceback) or 300 characters (file name too long) failed only
    after the original and Retrain trained and grid.json was written (found by probing)."""
    with pytest.raises(UnlearnError, match="label"):
        expand_grid({"models": ["GRU4Rec"], "datasets": ["ml-tiny"], "methods": {label: {"unlearn_method": "sruga"}}})


@pytest.mark.parametrize("kind, ratio, target, shown", [
    ("seconds_at_most", 0.506, 0.5, "1/1.98; <= 1/2.0: missed"),  # read "1/2.0; <= 1/2.0: missed" (a probe)
    ("ndcg_at_least", 0.8996, 0.9, "0.8996 x; >= 0.90 x: missed"),
    ("ndcg_at_least", 0.93, 0.9, "0.93 x; >= 0.90 x: met"),
])
def test_a_ratio_rounded_onto_its_target_is_shown_with_the_digits_that_decide(kind, ratio, target, shown):
    """A targets cell read ``8.8 (1/2.0; <= 1/2.0: missed)``: right (the ratio was 0.506) but
    reading like a pass. A ratio is shown with as many digits as tell it from its target."""
    from recbole_unlearn.benchmark.report import target_text

    assert target_text(ratio, target, kind) == shown


def test_a_grids_setting_of_another_models_is_dropped_from_cells_that_do_not_read_it(tmp_path, in_tmp):
    """A single run refuses ``--model=SASRec --num_layers=5`` (GRU4Rec's key, which SASRec never
    reads), but a grid's ``config`` went into every cell and was recorded in each cell's settings
    as if its model had read it. In a grid of several models a key for some of them is fine: the
    cells of the others drop it (their settings do not record it). A key no model of the grid
    reads is refused, as in a single run, before anything trains."""
    from recbole_unlearn.benchmark.runner import CellRun

    path = _tiny_grid(tmp_path, ["retrain"], models=("GRU4Rec", "SASRec"), n_layers=1)
    grid = load_grid(path)
    runs = {cell.model: CellRun(grid, cell) for cell in grid.cells}
    assert runs["SASRec"].base["n_layers"] == 1
    assert "n_layers" in runs["SASRec"].base.settings()
    assert "n_layers" not in runs["GRU4Rec"].base.settings()
    assert "n_layers" not in runs["GRU4Rec"].variant_configs["retrain"].settings()
    run_grid(path)  # nor in the cell's record (cell.json's config held it; probe)
    cells = {model: json.load(open(tmp_path / "board" / f"{model}-ml-tiny" / "cell.json")) for model in runs}
    assert "n_layers" not in cells["GRU4Rec"]["config"] and cells["SASRec"]["config"]["n_layers"] == 1
    (tmp_path / "lone").mkdir()
    lone = _tiny_grid(tmp_path / "lone", ["retrain"], models=("SASRec",), num_layers=5)
    with pytest.raises(UnlearnError, match="num_layers is not read by SASRec"):
        run_grid(lone)
    assert not os.path.exists(tmp_path / "lone" / "board")


@pytest.mark.parametrize("kind, value, reference, target, shown", [
    ("ndcg_at_least", 0.018, 0.02, 0.9, "0.90 x; >= 0.90 x: met"),  # 0.018 / 0.02 = 0.8999999999999999
    ("seconds_at_most", 0.234, 11.7, 0.02, "1/50.0; <= 1/50.0: met"),  # 0.234 / 11.7 = 0.020000000000000004
    ("forget_at_most", 0.3, 0.1, 3.0, "3.00 x; <= 3.00 x: met"),
])
def test_a_value_exactly_at_its_target_meets_it(kind, value, reference, target, shown):
    """A row exactly at its target was judged missed when the division rounded the ratio past
    it, and shown with four digits as a tie that failed (``0.9000 x; >= 0.90 x: missed``;
    probe): the recorded values are rounded, so such a tie is exact, and a tie meets ``at least``
    and ``at most``."""
    from recbole_unlearn.benchmark.report import target_results, target_text

    field = {"ndcg_at_least": "utility_rem", "forget_at_most": "forget", "seconds_at_most": "seconds"}[kind]

    def row(v):
        if field == "seconds":
            return {"method": "m", "seconds": v}
        return {"method": "m", field: {"ndcg@10" if field == "utility_rem" else "hit@10": v}}

    ratio, met = target_results(row(value), row(reference), {kind: target})[kind]
    assert met
    assert target_text(ratio, target, kind, met) == shown


def test_a_cell_another_runner_is_running_is_refused_not_run_twice(tmp_path, in_tmp):
    """Two runners of one cell: the second removed the first's model folder in the middle of its
    forget, taking it for a killed row's leftovers, and the first died in a traceback (probe). A
    cell is run under its own lock: the second runner is refused with one line, and the cell
    resumes once the first is done."""
    path = _tiny_grid(tmp_path, ["retrain"])
    cell_dir = tmp_path / "board" / "GRU4Rec-ml-tiny"
    cell_dir.mkdir(parents=True)
    with _held_by_another_process(cell_dir, "grid cell"):
        with pytest.raises(UnlearnError, match="grid cell .*GRU4Rec-ml-tiny is busy"):
            run_grid(path)
        assert not (cell_dir / "rows").exists()
    run_grid(path)
    assert (cell_dir / "rows" / "retrain.json").exists()


def test_a_rows_model_folder_that_answered_requests_is_never_removed_to_redo_the_row(tmp_path, in_tmp):
    """A row redone (its row file deleted, as the runner's own error lines advise) removed its
    model folder as a killed row's leftovers: also while a request run held that folder's lock,
    and also when the folder had answered request files since, whose applied deletions vanished
    with its ledger (probe). The folder is removed only under its own lock, and never once it
    answered requests: the run is refused with one line, the folder left as it was."""
    from recbole_unlearn.quick_start import run_forget_requests

    path = _tiny_grid(tmp_path, ["sisa"])
    run_grid(path)
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"
    model_dir = cell / "models" / "sisa"
    (tmp_path / "req.csv").write_text("7\n")
    run_forget_requests(str(model_dir), str(tmp_path / "req.csv"), {"state": "ERROR"}, verbose=False)
    os.remove(cell / "rows" / "sisa.json")
    before = {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    with pytest.raises(UnlearnError, match="answered request files"):
        run_grid(path)
    assert {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()} == before
    # a folder without answered requests, but held by another process: refused, not removed
    (tmp_path / "b").mkdir()
    path = _tiny_grid(tmp_path / "b", ["sisa"])
    run_grid(path)
    cell = tmp_path / "b" / "board" / "GRU4Rec-ml-tiny"
    model_dir = cell / "models" / "sisa"
    os.remove(cell / "rows" / "sisa.json")
    with _held_by_another_process(model_dir):
        with pytest.raises(UnlearnError, match="is busy"):
            run_grid(path)
        assert (model_dir / "CURRENT").exists()
    run_grid(path)  # free, and no request answered: a killed row's leftovers, redone
    assert (cell / "rows" / "sisa.json").exists()


def test_a_request_run_just_before_a_rows_folder_is_removed_keeps_the_folder(tmp_path, in_tmp, monkeypatch):
    """The runner checked a row's folder for answered requests, then took the folder's lock to
    remove it: a request run that took the lock first (between the two) applied deletions that
    vanished with the folder. The check runs again under the lock."""
    from recbole_unlearn.quick_start import run_forget_requests
    from recbole_unlearn.serving import lock as lock_module

    path = _tiny_grid(tmp_path, ["sisa"])
    run_grid(path)
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"
    model_dir = cell / "models" / "sisa"
    os.remove(cell / "rows" / "sisa.json")
    (tmp_path / "req.csv").write_text("7\n")
    hold = lock_module.FolderLock.hold
    raced = []

    def request_run_first(self, *args, **kwargs):
        if not raced and os.path.abspath(self.model_dir) == str(model_dir) and self.what == "model folder":
            raced.append(True)  # the request run's own lock is the next call: it holds and frees it first
            run_forget_requests(str(model_dir), str(tmp_path / "req.csv"), {"state": "ERROR"}, verbose=False)
        return hold(self, *args, **kwargs)

    monkeypatch.setattr(lock_module.FolderLock, "hold", request_run_first)
    with pytest.raises(UnlearnError, match="answered request files"):
        run_grid(path)
    assert raced and read_audit(str(model_dir))[-1]["source"] == "requests:req.csv"


def test_a_finished_cell_in_a_read_only_folder_is_still_reported(tmp_path, in_tmp, monkeypatch):
    """The cell lock made a finished grid in a read-only folder unreportable, with an error line
    about answering requests (probe): a cell with nothing to run is read without its lock; one
    with rows to run is refused, naming the cell."""
    from recbole_unlearn.serving import lock as lock_module

    path = _tiny_grid(tmp_path, ["retrain"])
    run_grid(path)

    def unlockable(self):
        raise self._unlockable(OSError(30, "Read-only file system"))

    monkeypatch.setattr(lock_module.FolderLock, "hold", unlockable)
    assert run_grid(path)["md"]
    # and its leaderboard files cannot be written either (a probe, on a read-only mount: it ended
    # in "error: [Errno 30] Read-only file system: .../.tmp-...leaderboard.csv"): the ones there stand
    from recbole_unlearn.benchmark import report as report_module

    def read_only(path, write):
        raise OSError(30, "Read-only file system", path)

    before = (tmp_path / "board" / "leaderboard.md").read_text()
    monkeypatch.setattr(report_module, "atomic_write", read_only)
    assert run_grid(path)["md"] == str(tmp_path / "board" / "leaderboard.md")
    assert (tmp_path / "board" / "leaderboard.md").read_text() == before
    # with no files there to stand, the error stands (round 3 of probing: paths of no file were
    # printed, exit 0)
    for kind in ("csv", "md", "html"):
        os.remove(tmp_path / "board" / f"leaderboard.{kind}")
    with pytest.raises(OSError, match="Read-only file system"):
        run_grid(path)
    monkeypatch.undo()
    monkeypatch.chdir(in_tmp)
    monkeypatch.setattr(lock_module.FolderLock, "hold", unlockable)
    os.remove(tmp_path / "board" / "GRU4Rec-ml-tiny" / "rows" / "retrain.json")
    with pytest.raises(UnlearnError, match="grid cell .* cannot be locked .*: its lock file is written"):
        run_grid(path)


@contextmanager
def _held_by_another_process(folder, what: str = "model folder"):
    """Hold ``folder``'s lock (``serving.lock.FolderLock``) in another process for the block."""
    import subprocess

    ready = folder.parent / f".{folder.name}.held"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time, pathlib\n"
        "from recbole_unlearn.serving.lock import FolderLock\n"
        f"with FolderLock({str(folder)!r}, 0, what={what!r}).hold():\n"
        f"    pathlib.Path({str(ready)!r}).write_text('x')\n"
        "    time.sleep(60)\n")])
    try:
        deadline = time.time() + 60
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert ready.exists()
        yield
    finally:
        holder.kill()
        holder.wait()
        ready.unlink()


def test_a_grid_cell_whose_model_cannot_be_trained_is_one_error_and_writes_no_rows(tmp_path):
    """A grid of TransRec (which trains on negatives, without a ``loss_type`` key to say so)
    ended in a ``KeyError: 'neg_item_id'`` traceback after its cell's files were written: a run
    tries its model on a few users first, a grid did not (found by probing)."""
    path = _tiny_grid(tmp_path, ["retrain"], models=("TransRec",))
    with pytest.raises(UnlearnError, match="model TransRec cannot be trained"):
        run_grid(path)
    cell = tmp_path / "board" / "TransRec-ml-tiny"
    assert not (cell / "cell.json").exists() and not (cell / "rows").exists()


def _edit_grid(path, methods) -> None:
    document = yaml.safe_load(open(path))
    document["methods"] = methods
    with open(path, "w") as f:
        yaml.safe_dump(document, f)


def test_a_refused_row_setting_leaves_a_finished_board_as_it_was(tmp_path, in_tmp):
    """A finished row's setting changed to a bad value (``aggregator: meen``) was refused with one
    ``error:`` line only after the runner had removed that row's deployable model folder, taking
    the row for one to run again (found by probing): every check comes first."""
    from conftest import snapshot

    path = _tiny_grid(tmp_path, ["sisa"])
    run_grid(path)
    before = snapshot(tmp_path / "board")
    _edit_grid(path, {"sisa": {"aggregator": "meen"}})
    with pytest.raises(UnlearnError, match="unknown aggregator 'meen'"):
        run_grid(path)
    assert snapshot(tmp_path / "board") == before


def test_a_refused_grid_that_reuses_cells_copies_nothing(tmp_path, in_tmp):
    """``reuse_cells_from`` copied the lender's original and rows into the new folder, and then a
    bad row setting was refused, leaving the copies (found by probing)."""
    run_grid(_grid_named(tmp_path, "board", ["retrain"]))
    borrower = _reuse_grid(tmp_path, str(tmp_path / "board"), "borrower", {"sisa": {"aggregator": "nope"}})
    with pytest.raises(UnlearnError, match="unknown aggregator 'nope'"):
        run_grid(borrower)
    assert not os.path.exists(tmp_path / "borrower")


def test_a_row_run_again_with_other_settings_and_stopped_leaves_no_row_naming_the_new_folder(tmp_path, in_tmp,
                                                                                              monkeypatch):
    """A finished row's settings changed (``n_shards`` 3) and its new run stopped once its new fit
    was saved left the old row file (2 shards) beside a 3-shard model folder; with the settings put
    back, the row counted as finished, and a row added to share its fit read the 3-shard fit
    back while its row recorded 2 (found by probing). The row file goes before its folder does."""
    from recbole_unlearn.serving import store as store_module

    path = _tiny_grid(tmp_path, ["sisa"])
    run_grid(path)
    _edit_grid(path, {"sisa": {"n_shards": 3}})
    real_fault_point = store_module.fault_point

    def stop_once_live(name):
        if name == "version_switched":
            raise KeyboardInterrupt
    monkeypatch.setattr(store_module, "fault_point", stop_once_live)
    with pytest.raises(KeyboardInterrupt):
        run_grid(path)
    monkeypatch.setattr(store_module, "fault_point", real_fault_point)
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"
    assert not (cell / "rows" / "sisa.json").exists()
    _edit_grid(path, {"sisa": {}, "sisa-static": {"unlearn_method": "sisa", "aggregator": "static"}})
    run_grid(path)
    for label in ("sisa", "sisa-static"):
        saved = json.load(open(cell / "rows" / f"{label}.json"))
        assert saved["settings"]["n_shards"] == 2 and saved["row"]["n_shards"] == 2, label
    manifest = json.load(open(cell / "models" / "sisa" / "v000001" / "manifest.json"))
    assert manifest["config"]["n_shards"] == 2


def test_two_grid_files_started_together_on_one_new_output_dir_do_not_both_run(tmp_path, in_tmp, monkeypatch):
    """Each grid checked that no other grid file claimed ``output_dir`` when it started and
    claimed it after its cell's checks, with nothing between: two grid files started together on
    a new folder both ran, and the leaderboard held the last one's cells (found by probing). The
    claim checks again under the folder's lock; the later grid is refused, writing nothing."""
    from recbole_unlearn.unlearn import experiment as experiment_module

    first = _grid_named(tmp_path, "board", ["retrain"])
    second = tmp_path / "second.yaml"
    document = yaml.safe_load(open(first))
    second.write_text(yaml.safe_dump(dict(document, models=["SASRec"])))  # another cell, the same folder
    real_check = experiment_module.Experiment.check_model

    def the_other_grid_claims_first(self, configs):
        real_check(self, configs)
        with monkeypatch.context() as inner:
            inner.setattr(experiment_module.Experiment, "check_model", real_check)
            run_grid(str(second))

    monkeypatch.setattr(experiment_module.Experiment, "check_model", the_other_grid_claims_first)
    with pytest.raises(UnlearnError, match="holds the results of grid file second.yaml"):
        run_grid(first)
    assert json.load(open(tmp_path / "board" / "grid.json"))["grid"] == "second.yaml"


def test_the_leaderboard_files_are_read_and_written_under_the_output_dirs_lock(tmp_path, in_tmp, monkeypatch):
    """Two ``--cells`` runs each read the other's finished rows and then wrote the leaderboard,
    with no lock between: one that read the other cell half done and wrote last left a
    leaderboard without the other's later rows (found by probing)."""
    import subprocess

    path = _grid_named(tmp_path, "board", ["retrain"])
    seen = []
    real_other = runner._other_finished_cells

    def other_cells(grid, selected):
        probe = subprocess.run([sys.executable, "-c", (
            "from recbole_unlearn.serving.lock import FolderLock\n"
            f"with FolderLock({grid.output_dir!r}, 0, what='leaderboard folder').hold():\n"
            "    pass\n")], capture_output=True, text=True, timeout=120)
        seen.append(probe.returncode != 0 and "is busy" in probe.stderr)
        return real_other(grid, selected)

    monkeypatch.setattr(runner, "_other_finished_cells", other_cells)
    run_grid(path)
    assert seen == [True]


def test_a_grid_setting_no_row_uses_is_refused_before_anything_is_written(tmp_path, in_tmp):
    """A grid's shared ``config`` setting a method key none of its rows uses (``scif_damping`` in
    a grid of Kookmin) ran and recorded it in cell.json and the model folders' manifests, as if it
    had mattered (a row setting it, and a run, are refused; found by probing)."""
    path = _tiny_grid(tmp_path, ["kookmin"], scif_damping=0.5)
    with pytest.raises(UnlearnError, match="scif_damping is not used by any row of grid .*: drop it"):
        run_grid(path)
    assert not os.path.exists(tmp_path / "board")


def test_a_grid_stopped_while_its_audit_references_trained_keeps_their_cost(tmp_path, in_tmp, monkeypatch):
    """A grid stopped after its first audit reference was saved reloaded it on resume and
    recorded the audit's cost as the second reference's alone (``references_trained: 1``,
    fewer seconds than a run that was not stopped; found by probing). Each reference's training
    time is saved beside it and counted again."""
    from recbole_unlearn.unlearn import experiment as experiment_module

    path = _grid_named(tmp_path, "board", ["retrain"], audit=True, audit_references=2)
    real_train = experiment_module.train_model
    seconds = {}

    def stop_at_the_second_reference(*args, **kwargs):
        if kwargs.get("tag") == "audit reference 1":
            raise KeyboardInterrupt
        trained = real_train(*args, **kwargs)
        seconds[kwargs.get("tag")] = trained.seconds
        return trained

    monkeypatch.setattr(experiment_module, "train_model", stop_at_the_second_reference)
    with pytest.raises(KeyboardInterrupt):
        run_grid(path)
    monkeypatch.setattr(experiment_module, "train_model", real_train)
    run_grid(path)
    cost = json.load(open(tmp_path / "board" / "GRU4Rec-ml-tiny" / "rows" / "original.json"))["row"]["audit"]["cost"]
    assert cost["references_trained"] == 2, cost
    assert cost["seconds"] >= seconds["audit reference 0"], (cost, seconds)
    assert None not in cost["references_epochs_run"], cost


def test_a_grid_dropping_an_inherited_setting_with_null_is_not_refused_for_setting_it(tmp_path):
    """``key: ~`` in a grid that ``extends`` another drops the inherited value (README); the
    check for settings no row uses counted it as set and told the user to drop it (a probe)."""
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"models": ["GRU4Rec"], "datasets": ["ml-tiny"],
                                    "config": {"n_shards": 2, "epochs": 1}, "methods": ["sisa"]}))
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"extends": "base.yaml", "output_dir": str(tmp_path / "board"),
                                     "config": {"n_shards": None}, "methods": ["kookmin"]}))
    grid = load_grid(str(child))
    runner.check_method_keys_used(grid, [runner.CellRun(grid, cell) for cell in grid.cells])
    child.write_text(yaml.safe_dump({"extends": "base.yaml", "output_dir": str(tmp_path / "board"),
                                     "config": {"n_shards": 3}, "methods": ["kookmin"]}))
    grid = load_grid(str(child))
    with pytest.raises(UnlearnError, match="n_shards is not used by any row"):
        runner.check_method_keys_used(grid, [runner.CellRun(grid, cell) for cell in grid.cells])


def test_a_file_where_a_rows_model_folder_goes_is_refused_before_anything_is_written(tmp_path, in_tmp):
    """A file at ``<cell>/models/<label>`` was refused up front ("is a file"); with the rows'
    own folders left out of the checks (they are removed before a row runs again) it was found
    only after the original and Retrain had trained and were saved (a probe)."""
    path = _tiny_grid(tmp_path, ["kookmin"])
    models = tmp_path / "board" / "GRU4Rec-ml-tiny" / "models"
    models.mkdir(parents=True)
    (models / "kookmin").write_text("hi")
    with pytest.raises(UnlearnError, match="is a file; give a new folder"):
        run_grid(path)
    assert set(os.listdir(tmp_path / "board" / "GRU4Rec-ml-tiny")) - {".lock"} == {"models"}  # nothing trained



def test_the_recbole_baseline_row_never_unpickles_a_file_lying_in_the_cell_folder(tmp_path, in_tmp):
    """RecBole's ``data_preparation`` unpickles ``<checkpoint_dir>/<dataset>-for-<model>-dataloader.pth``
    whenever it exists, and the baseline row's checkpoint folder is the cell folder: a pickle put
    there ran its code (found by probing), where the README promises weights-only loading and JSON.
    The baseline builds its dataloaders itself; ``save_dataloaders`` / ``save_dataset`` (pickled
    copies of every interaction, forgotten ones included, which nothing removes) are refused."""
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = _tiny_grid(tmp_path, ["retrain"])
    cell = tmp_path / "board" / "GRU4Rec-ml-tiny"
    cell.mkdir(parents=True)
    (cell / "ml-tiny-for-GRU4Rec-dataloader.pth").write_bytes(pickle.dumps(Payload()))
    run_grid(path)
    assert not marker.exists()
    for key in ("save_dataloaders", "save_dataset"):
        with pytest.raises(UnlearnError, match=f"{key}: True is not supported"):
            UnlearnConfig("GRU4Rec", config_dict=tiny_dict(**{key: True}))


def test_a_grid_whose_later_cell_cannot_deal_its_requests_is_refused_before_anything_trains(tmp_path):
    """A cell with fewer forget users than ``request_steps`` was refused only when it started,
    after the cells before it had trained (and its error named no cell; r9steps probe): every
    pending cell's data settings are checked, naming the cell, before the first model trains."""
    data = tmp_path / "data"
    for name, users in (("ml-tiny", 60), ("few", 20)):
        (data / name).mkdir(parents=True)
        lines = open(os.path.join(FIXTURES, "ml-tiny", "ml-tiny.inter")).read().splitlines()
        kept = [lines[0]] + [line for line in lines[1:] if int(line.split("\t")[0]) <= users]
        (data / name / f"{name}.inter").write_text("\n".join(kept) + "\n")
    path = _tiny_grid(tmp_path, {"sisa": {}}, request_steps=8, data_path=str(data))
    grid = yaml.safe_load(open(path))
    grid["datasets"] = ["ml-tiny", "few"]
    open(path, "w").write(yaml.safe_dump(grid))
    with pytest.raises(UnlearnError, match=r"^cell GRU4Rec-few: request_steps \(8\) deals the forget set's 4 users"):
        run_grid(path)
    assert not os.path.exists(tmp_path / "board" / "GRU4Rec-ml-tiny" / "original.pth")


def test_request_steps_with_retrain_alone_is_refused(tmp_path):
    """``request_steps`` deals the forget set into requests to the methods other than Retrain:
    with Retrain alone it did nothing, and results.json and a grid's cell.json recorded it as if
    it had (r9steps probe)."""
    from recbole_unlearn import run_recbole_unlearn

    with pytest.raises(UnlearnError, match="request_steps 3 deals the forget set into requests to the methods other "
                                           "than Retrain"):
        run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="retrain", request_steps=3,
                                                             results_dir=str(tmp_path / "r")), verbose=False)
    assert not os.path.exists(tmp_path / "r")
    path = _tiny_grid(tmp_path, {"retrain": {}}, request_steps=3)
    with pytest.raises(UnlearnError, match="request_steps 3 deals the forget set into requests to the methods other "
                                           "than Retrain"):
        run_grid(path)
    assert not os.path.exists(tmp_path / "board")


def test_a_started_cell_whose_dataset_changed_is_refused_before_other_cells_train(tmp_path):
    """A started cell whose dataset file changed since was refused when it started, after the
    cells before it had trained (r9round3 probe): every cell's fingerprint is checked up front."""
    data = tmp_path / "data"
    lines = open(os.path.join(FIXTURES, "ml-tiny", "ml-tiny.inter")).read()
    for name in ("tinya", "tinyb"):
        (data / name).mkdir(parents=True)
        (data / name / f"{name}.inter").write_text(lines)
    path = _tiny_grid(tmp_path, {"sisa": {}}, data_path=str(data))
    grid = yaml.safe_load(open(path))
    grid["datasets"] = ["tinya", "tinyb"]
    open(path, "w").write(yaml.safe_dump(grid))
    run_grid(path, cells=["GRU4Rec-tinyb"])
    with open(data / "tinyb" / "tinyb.inter", "a") as f:
        f.write("1\t9999\t5\t999999999\n")
    with pytest.raises(UnlearnError, match="GRU4Rec-tinyb was started with other settings, another dataset file"):
        run_grid(path)
    assert not os.path.exists(tmp_path / "board" / "GRU4Rec-tinya" / "original.pth")


def test_a_lender_that_cannot_lend_a_later_cell_is_refused_before_earlier_cells_train(tmp_path):
    """``reuse_cells_from`` compared a cell's lender only when that cell started: the cells before
    it adopted their lenders and trained their rows first (r9round4 probe)."""
    data = tmp_path / "data"
    lines = open(os.path.join(FIXTURES, "ml-tiny", "ml-tiny.inter")).read()
    for name in ("tinya", "tinyb"):
        (data / name).mkdir(parents=True)
        (data / name / f"{name}.inter").write_text(lines)

    def two_cells(path):
        grid = yaml.safe_load(open(path))
        grid["datasets"] = ["tinya", "tinyb"]
        open(path, "w").write(yaml.safe_dump(grid))
        return path

    run_grid(two_cells(_grid_named(tmp_path, "lender", ["retrain"], data_path=str(data))))
    with open(data / "tinyb" / "tinyb.inter", "a") as f:
        f.write("1\t9999\t5\t999999999\n")
    borrower = two_cells(_reuse_grid(tmp_path, str(tmp_path / "lender"), "borrower", {"sisa": {}},
                                     data_path=str(data)))
    with pytest.raises(UnlearnError, match="lender/GRU4Rec-tinyb was made with other data settings"):
        run_grid(borrower)
    assert not os.path.exists(tmp_path / "borrower" / "GRU4Rec-tinya" / "rows" / "sisa.json")


def test_the_recbole_baseline_row_reports_the_metrics_every_other_row_reports(tmp_path):
    """The baseline row was scored with ``metrics`` x ``topk`` (what validation computes), every
    other row with ``utility_metrics`` x ``utility_topk``: with ``metrics: [Hit, NDCG]``, ``topk:
    [5]`` its D_raw cells were all ``-`` beside the original's NDCG@10 (r10baseline probe). Its
    training still validates on ``valid_metric``, as RecBole's does."""
    path = _tiny_grid(tmp_path, ["retrain"], metrics=["Hit", "NDCG"], topk=[5], valid_metric="NDCG@5")
    run_grid(path)
    rows = tmp_path / "board" / "GRU4Rec-ml-tiny" / "rows"
    baseline, original = (json.loads((rows / f"{name}.json").read_text())["row"] for name in ("recbole", "original"))
    assert set(baseline["utility_raw"]) == set(original["utility_raw"]) == {"ndcg@10", "ndcg@20", "recall@10",
                                                                             "recall@20"}, baseline
    assert all(0 <= value <= 1 for value in baseline["utility_raw"].values())
    assert isinstance(baseline.get("best_valid_ndcg@5"), float), baseline
    table = (tmp_path / "board" / "leaderboard.md").read_text()
    line = next(line for line in table.splitlines() if line.startswith("| recbole"))
    assert f"{baseline['utility_raw']['ndcg@10']:.4f}" in line, line


def test_the_settings_line_names_the_shard_counts_its_rows_ran():
    """The settings line said "n_shards 8" (the grid's base value) for a Retrain-only cell, and
    the base value where every sharded row set its own (r10baseline probe)."""
    from recbole_unlearn.benchmark.runner import CellRun, _describe

    class Facts:
        data = type("Data", (), {"user_num": 3, "item_num": 3, "log_item": [1, 2]})()

        @staticmethod
        def forget_summary():
            return {"interactions": 1, "users": 1, "source": "sampled"}

    for methods, said in (({"retrain": {}}, None), ({"sisa-2": {"unlearn_method": "sisa", "n_shards": 2},
                                                      "sru-3": {"unlearn_method": "sru", "n_shards": 3}}, "n_shards 2, 3,")):
        grid = expand_grid({"models": ["GRU4Rec"], "datasets": ["ml-tiny"], "methods": methods,
                            "config": {"n_shards": 8}})
        line = _describe(CellRun(grid, grid.cells[0]), Facts())
        assert ("n_shards" not in line) if said is None else (said in line and "n_shards 8" not in line), line


@pytest.mark.parametrize("key, value, said", [
    ("save_model", False, "keeps each cell's original.pth"),
    ("include_retrain", False, "trains Retrain in every cell"),
    ("results_dir", "gres", "under output_dir"),
])
def test_a_grid_config_setting_the_grid_decides_is_refused_not_ignored(tmp_path, key, value, said):
    """A grid's ``config`` took ``save_model``, ``include_retrain`` and ``results_dir`` and ignored
    them, unsaid: ``original.pth`` written, Retrain trained, and ``results_dir`` recorded in the
    rows' model folders, where later request runs wrote (r10paths probe)."""
    path = _tiny_grid(tmp_path, ["sisa"], **{key: value})
    with pytest.raises(UnlearnError, match=f"'config' cannot set '{key}': .*{said}"):
        load_grid(path)
    assert not os.path.exists(tmp_path / "board")
    if key != "results_dir":  # a row setting results_dir was refused already; these were taken (round 4)
        path = _tiny_grid(tmp_path, {"sisa": {"unlearn_method": "sisa", "n_shards": 2, key: value}})
        with pytest.raises(UnlearnError, match=f"method 'sisa' sets '{key}': .*{said}"):
            load_grid(path)


def test_code_version_marks_untracked_code_as_modified_and_ignores_other_untracked_files(tmp_path):
    """A row or benchmark record measured with an uncommitted new module or script was recorded
    as the clean commit (only tracked files counted); a user's untracked notes are not code."""
    import subprocess

    from recbole_unlearn.utils.results import code_version

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "recbole_unlearn").mkdir()
    (tmp_path / "recbole_unlearn" / "a.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    assert code_version(str(tmp_path))["modified"] is False
    (tmp_path / "notes.txt").write_text("mine\n")
    assert code_version(str(tmp_path))["modified"] is False
    (tmp_path / "benchmarks" / "grids").mkdir(parents=True)
    (tmp_path / "benchmarks" / "grids" / "mine.yaml").write_text("models: [GRU4Rec]\n")  # a user's grid
    (tmp_path / "recbole_unlearn" / ".a.py.swp").write_text("x")  # an editor's
    assert code_version(str(tmp_path))["modified"] is False
    for new in ("benchmarks/new_script.py", "sitecustomize.py", "recbole_unlearn/log/new.py",
                "properties/method/new.yaml", "recbole/__init__.py"):
        (tmp_path / new).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / new).write_text("x = 1\n")
        if new == "recbole_unlearn/log/new.py":  # ignored by a pattern that matches at any depth (r11round3)
            (tmp_path / ".gitignore").write_text("log/\n")
        assert code_version(str(tmp_path))["modified"] is True, new
        # from the package's folder, as it runs by default (the patterns read from there: r11round5)
        assert code_version(str(tmp_path / "recbole_unlearn"))["modified"] is True, new
        os.remove(tmp_path / new)
    os.remove(tmp_path / ".gitignore")
    (tmp_path / "recbole_unlearn" / "a.py").write_text("x = 2\n")
    assert code_version(str(tmp_path))["modified"] is True
