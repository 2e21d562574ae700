"""End-to-end runs (1 epoch, ml-tiny) through the Python API and the CLI."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from recbole_unlearn import run_recbole_unlearn
from recbole_unlearn.utils.errors import UnlearnError

from conftest import FIXTURES, snapshot, tiny_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = ("utility_raw", "utility_rem", "forget", "sru_inference")


def _check_schema(doc, model):
    assert doc["model"] == model and doc["dataset"] == "ml-tiny"
    settings = doc["settings"]
    for key in ("epochs", "seed", "MAX_ITEM_LIST_LENGTH", "learning_rate", "forget_user_ratio",
                "forget_seed", "unlearn_method", "hidden_size"):
        assert key in settings, key
    assert [r["method"] for r in doc["rows"]] == ["original", "retrain"]
    for row in doc["rows"]:
        assert set(GROUPS) <= set(row) and row["seconds"] > 0
        assert set(row["utility_raw"]) == {"ndcg@10", "ndcg@20", "recall@10", "recall@20"}
        assert set(row["utility_rem"]) == {"ndcg@10", "ndcg@20", "recall@10", "recall@20"}
        assert set(row["forget"]) == {"hit@1", "hit@5", "hit@10", "hit@20"}
        assert set(row["sru_inference"]) == {"hit@1", "hit@5", "hit@10", "hit@20"}
        for group in GROUPS:
            assert all(0.0 <= v <= 1.0 for v in row[group].values())


@pytest.mark.parametrize("model", ["GRU4Rec", "SASRec", "BERT4Rec"])
def test_api_runs_each_model(model, in_tmp):
    doc = run_recbole_unlearn(model, config_dict=tiny_dict(results_dir=str(in_tmp / "results")), verbose=False)
    _check_schema(doc, model)
    with open(doc["results_path"]) as f:
        assert json.load(f)["rows"] == doc["rows"]
    for name in ("original", "retrain"):
        weights = torch.load(os.path.join(doc["run_dir"], f"{name}.pth"), weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in weights.values())
    assert doc["forget_set"]["users"] == 12 and doc["forget_set"]["forget_samples"] > 0
    assert doc["rows"][1]["forgotten_interactions"] == doc["forget_set"]["interactions"]


def test_same_seed_same_numbers(in_tmp):
    cfg = tiny_dict(results_dir=str(in_tmp / "r"), include_retrain=False, save_model=False)
    first = run_recbole_unlearn("GRU4Rec", config_dict=cfg, verbose=False)
    second = run_recbole_unlearn("GRU4Rec", config_dict=cfg, verbose=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "cpu_meter")} for r in rows]
    assert strip(first["rows"]) == strip(second["rows"])


def _cli(args, cwd):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "run_recbole_unlearn.py"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )


def test_cli_success_prints_table_and_results_path(in_tmp):
    proc = _cli(["--model=GRU4Rec", "--dataset=ml-tiny", f"--data_path={FIXTURES}", "--epochs=1",
                 "--state=ERROR", "--unlearn_method=retrain"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("results: ")
    assert any(line.startswith("original") for line in lines) and any(line.startswith("retrain") for line in lines)
    assert "note: original, retrain stopped at their cap (epochs 1), not by validation" in proc.stdout  # 1 epoch: the cap ends training
    path = os.path.join(in_tmp, lines[-1][len("results: "):])
    with open(path) as f:
        assert json.load(f)["model"] == "GRU4Rec"


def test_the_cap_note_names_sharded_models_whose_shards_or_aggregator_hit_their_cap(in_tmp, capsys):
    """The note built its list from ``epochs_run``, which only single models have: a run whose
    every shard and aggregator stopped at its cap said only "original, retrain stopped at the
    epochs cap", though the leaderboard marks the same rows "(2 at cap)"."""
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method=["sisa", "sru"], n_shards=2,
                                                               agg_epochs=1, shard_num_threads=1,
                                                               results_dir=str(in_tmp / "r")))
    note = next(line for line in capsys.readouterr().out.splitlines() if "stopped at" in line)
    sharded = {row["method"]: row for row in doc["rows"] if row.get("fit_training")}
    assert set(sharded) == {"sisa", "sru"} and all(  # 1 epoch: every shard stage hit the cap
        stage["hit_cap"] for row in sharded.values() for shard in row["fit_training"]["shards"].values()
        for stage in shard.values())
    assert re.match(r"note: original, retrain, sisa \(fit: 2 shard stages; forget: [12] shard stages?\), "
                    r"sru \(fit: 2 shard stages, aggregator; forget: [12] shard stages?, aggregator\) "
                    r"stopped at their cap \(epochs 1, agg_epochs 1\), not by validation", note), note


def test_cli_request_file(in_tmp):
    (in_tmp / "req.csv").write_text("1\n2,305\n")
    proc = _cli(["--model=GRU4Rec", "--dataset=ml-tiny", f"--data_path={FIXTURES}", "--epochs=1",
                 "--state=ERROR", "--forget=req.csv", "--include_retrain=False"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    path = os.path.join(in_tmp, proc.stdout.strip().splitlines()[-1][len("results: "):])
    with open(path) as f:
        doc = json.load(f)
    assert doc["forget_set"]["source"] == "requests:req.csv"
    assert doc["forget_set"]["users"] == 2


def test_a_training_run_that_keeps_its_previous_version_says_so(in_tmp):
    """A run that forgets a request file into a model folder with ``keep_previous_version`` kept the
    fit on all data (the requests' data included) beside the live version without a word; a request
    run says so in a ``note:`` (r12privacy probe)."""
    (in_tmp / "req.csv").write_text("1\n")
    proc = _cli(["--model=GRU4Rec", "--dataset=ml-tiny", f"--data_path={FIXTURES}", "--epochs=1", "--state=ERROR",
                 "--forget=req.csv", "--unlearn_method=sisa", "--n_shards=2", "--include_retrain=False",
                 "--save_model=False", "--model_dir=m", "--keep_previous_version=True"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    assert sorted(v for v in os.listdir(in_tmp / "m") if v.startswith("v0")) == ["v000001", "v000002"]
    assert (f"note: {os.path.join('m', 'v000001')} is kept (keep_previous_version): a model from before this run's "
            "latest forget, trained on the data it forgot" in proc.stdout), proc.stdout


@pytest.mark.parametrize("where", ["evaluation", "second_step", "audit_line"])
def test_a_failure_after_a_training_runs_forget_went_live_says_so(in_tmp, capsys, monkeypatch, where):
    """A failure in the row's evaluation (a full disk, out of memory), after the run's forget had
    gone live in its model_dir, was a bare ``error: [Errno 28]`` with exit 1, "the folder as it
    was", while the folder had moved on (r12trainkill probe); so was one in a later request step,
    after the first step's version went live. Exit 3 names the folder."""
    import errno

    import recbole_unlearn.unlearn.experiment as experiment_module
    from recbole_unlearn.cli import main

    (in_tmp / "req.csv").write_text("3\n7\n")
    args = ["--model=GRU4Rec", f"--data_path={FIXTURES}", "--dataset=ml-tiny", "--epochs=1", "--state=ERROR",
            "--unlearn_method=sisa", "--n_shards=2", "--include_retrain=False", "--model_dir=m",
            "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}", "--results_dir=r"]
    if where == "audit_line":  # its own exit-3 line named no folder (r12round2 probe)
        from recbole_unlearn.serving.audit import AuditLog

        real_append = AuditLog.append

        def append(self, entry):
            if entry.get("interactions"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_append(self, entry)

        monkeypatch.setattr(AuditLog, "append", append)
        args.append("--forget=req.csv")
    elif where == "evaluation":
        real = experiment_module.make_row

        def make_row(name, *a, **k):
            if name != "original":
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(name, *a, **k)

        monkeypatch.setattr(experiment_module, "make_row", make_row)
        args.append("--forget=req.csv")
    else:
        real = experiment_module.gate_step_on_reference
        calls = []

        def gate(*a, **k):  # once a step, after its forget went live: fails after the first
            calls.append(1)
            if len(calls) == 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*a, **k)

        monkeypatch.setattr(experiment_module, "gate_step_on_reference", gate)
        args += ["--request_steps=2", "--forget_user_ratio=0.2"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: this run's forget went live in m (") and "No space left on device" in err, err
    # what went live, as a stop says it (it claimed the whole forget for one of two steps; r12fixes probe)
    assert ("m is live at version v000002; 1 of the run's 2 request steps went live there (the forget set's other "
            "steps are not forgotten in it)" if where == "second_step"
            else "m is live at version v000002; of its 2 requests 2 applied, 0 rejected, 0 waiting") in err, err
    if where == "audit_line":
        assert "its audit line could not be written" in err and "results.json was not written" in err, err
    assert (in_tmp / "m" / "CURRENT").read_text().strip() != "v000001"


def test_cli_run_that_forgets_a_request_file_and_saves_its_model(in_tmp, capsys):
    """--model with --forget=<file> and --model_dir is a run that forgets the file and saves to
    model_dir (earlier: refused with "drop --model, --dataset and --config_files", as if the folder
    were a saved model answering the file); answering requests stays --model_dir with --forget alone."""
    (in_tmp / "req.csv").write_text("1\n")
    args = ["--dataset=ml-tiny", f"--data_path={FIXTURES}", "--epochs=1", "--state=ERROR", "--forget=req.csv",
            "--unlearn_method=sisa", "--n_shards=2", "--include_retrain=False", "--model_dir=m"]
    proc = _cli(["--model=GRU4Rec"] + args, in_tmp)
    assert proc.returncode == 0, proc.stderr
    # the run folder's original.pth is a loadable model trained on the requests' data: the run said
    # nothing of it (the README did; privacy probe)
    run_dir = os.path.dirname(proc.stdout.strip().splitlines()[-1][len("results: "):])
    assert (f"note: {os.path.join(run_dir, 'original.pth')} is a model trained on the data this run forgot"
            in proc.stdout), proc.stdout
    with open(os.path.join(in_tmp, "m", "audit.jsonl")) as f:
        (entry,) = [json.loads(line) for line in f]
    assert entry["source"] == "requests:req.csv" and entry["version"] == "v000002"
    again = _cli(["--model=GRU4Rec"] + args, in_tmp)
    assert again.returncode == 2 and "already holds a model" in again.stderr and "drop --model, --dataset" in again.stderr
    # --model or --dataset alone, repeated from the training command, was refused for what it set up
    # first ("dataset 'ml-100k' not found", "retrain saves no model"; r10paths probe)
    for alone in ("--model=GRU4Rec", "--dataset=ml-tiny"):
        proc = _cli([alone, "--model_dir=m", "--forget=req.csv", f"--data_path={FIXTURES}", "--state=ERROR"], in_tmp)
        assert proc.returncode == 2 and (f"error: model_dir m already holds a model: to answer --forget with it, drop "
                                         f"{alone.split('=')[0]} (it answers") in proc.stderr, proc.stderr
    # the same from the API, and with model_dir in a config file (r11fixes probe): refused for what
    # they set up first
    from recbole_unlearn import run_recbole_unlearn
    from recbole_unlearn.cli import main
    from recbole_unlearn.utils.errors import UnlearnError

    before = snapshot(str(in_tmp / "m"))
    with pytest.raises(UnlearnError, match="^model_dir m already holds a model"):
        run_recbole_unlearn("GRU4Rec", config_dict={"model_dir": "m", "forget": "req.csv", "state": "ERROR"})
    (in_tmp / "md.yaml").write_text("model_dir: m\n")
    assert main(["--config_files=md.yaml", "--forget=req.csv", f"--data_path={FIXTURES}", "--dataset=ml-tiny",
                 "--state=ERROR"]) == 2
    assert "error: model_dir m already holds a model" in capsys.readouterr().err
    assert snapshot(str(in_tmp / "m")) == before
    answered = _cli(["--model_dir=m", "--forget=req.csv", "--state=ERROR"], in_tmp)
    assert answered.returncode == 0, answered.stderr
    # the run recorded the file's request in the folder: sent again, it is already final (it was
    # applied a second time, as already_forgotten, before the run's folder recorded its requests)
    assert "'skipped_already_final': 1" in answered.stdout


BAD_INPUTS = {
    "unknown user": (["--forget=req.csv"], "1\n424242\n", "unknown user token '424242'"),
    "unknown item": (["--forget=req.csv"], "1,424242\n", "unknown item token '424242'"),
    "malformed": (["--forget=req.csv"], "1,2,3\n", "expected 'user_token[,item_token]'"),
    "missing request file": (["--forget=nothere.csv"], None, "request file not found"),
    "unknown method": (["--unlearn_method=forgetall"], None, "unknown unlearning method 'forgetall'"),
    "unknown dataset": (["--dataset=no-such-data"], None, "dataset 'no-such-data' not found"),
    "bad key": (["--epoch=2"], None, "unknown config key 'epoch'"),
    "bad argument": (["epochs"], None, "unrecognised argument"),
    "nothing to forget, Retrain": (["--forget_protocol=none"], None, "'retrain' has nothing to do"),
    "nothing to forget, audit": (["--forget_protocol=none", "--unlearn_method=sisa", "--audit=True"], None,
                                 "audit needs held-out twins"),
    "nothing to forget, steps": (["--forget_protocol=none", "--unlearn_method=sisa", "--request_steps=2"], None,
                                 "request_steps splits the forget set"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_cli_bad_input_one_line_and_nothing_written(case, in_tmp):
    args, request_text, message = BAD_INPUTS[case]
    if request_text is not None:
        (in_tmp / "req.csv").write_text(request_text)
    before = sorted(os.listdir(in_tmp))
    base = ["--model=GRU4Rec", f"--data_path={FIXTURES}", "--epochs=1"]
    if not any(a.startswith("--dataset=") for a in args):
        base.append("--dataset=ml-tiny")
    proc = _cli(base + args, in_tmp)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], proc.stderr
    assert sorted(os.listdir(in_tmp)) == before


def test_api_bad_input_raises(in_tmp):
    with pytest.raises(UnlearnError, match="unknown unlearning method"):
        run_recbole_unlearn("SASRec", config_dict=tiny_dict(unlearn_method="nope"))
    assert os.listdir(in_tmp) == []


@pytest.mark.parametrize("model", ["GRU4Rec", "SASRec", "BERT4Rec"])
def test_cli_sisa_four_shards(model, in_tmp):
    proc = _cli([f"--model={model}", "--dataset=ml-tiny", f"--data_path={FIXTURES}", "--epochs=1",
                 "--state=ERROR", "--unlearn_method=sisa", "--n_shards=4"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    path = os.path.join(in_tmp, proc.stdout.strip().splitlines()[-1][len("results: "):])
    with open(path) as f:
        doc = json.load(f)
    rows = {r["method"]: r for r in doc["rows"]}
    assert list(rows) == ["original", "retrain", "sisa"]
    sisa = rows["sisa"]
    assert sisa["n_shards"] == 4 and sisa["initial_train_seconds"] > 0 and sisa["speedup"] > 0
    assert set(sisa["shards_retrained"]) <= {0, 1, 2, 3}
    assert set(sisa["utility_rem"]) == {"ndcg@10", "ndcg@20", "recall@10", "recall@20"}


def test_each_method_row_records_the_settings_it_ran_with(in_tmp):
    """results.json's settings are the run's base config: with ``--unlearn_method=sisa,sru`` they
    said ``partitioner: random, aggregator: mean, extra_deletion: none`` while SRU ran kmeans,
    attention and CED (``sru.yaml``), and nothing in the file said CED ran (found by probing)."""
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method=["sisa", "sru"], n_shards=2,
                                                               agg_epochs=1, shard_num_threads=1,
                                                               results_dir=str(in_tmp / "r")))
    rows = {row["method"]: row for row in doc["rows"]}
    assert doc["settings"]["extra_deletion"] == "none"  # the base config's
    sru, sisa = rows["sru"]["settings"], rows["sisa"]["settings"]
    assert (sru["partitioner"], sru["aggregator"], sru["extra_deletion"], sru["del_num"]) == ("kmeans", "attention",
                                                                                              "ced", 1)
    assert (sisa["partitioner"], sisa["aggregator"], sisa["extra_deletion"]) == ("random", "mean", "none")
    assert "epochs" not in sru  # a data key: the document's settings hold it, shared by every row
    with open(doc["results_path"]) as f:
        assert {row["method"]: row.get("settings") for row in json.load(f)["rows"]}["sru"] == sru


def test_a_second_api_call_in_one_process_logs_into_its_own_file_at_its_own_level(in_tmp):
    """In a notebook, the second call's log file stayed empty (its lines went to the first call's
    file) and its ``state`` was ignored (12 INFO lines with ``state: WARNING``): RecBole's
    ``init_logger`` calls ``logging.basicConfig``, a no-op once handlers exist (found by probing).
    Run in a process of its own: pytest's own log handlers would hide it."""
    script = (
        "import glob, json, os\n"
        "from recbole_unlearn import run_recbole_unlearn\n"
        f"base = dict(data_path={FIXTURES!r}, dataset='ml-tiny', epochs=1, unlearn_method='retrain')\n"
        "run_recbole_unlearn('GRU4Rec', config_dict=dict(base, results_dir='r1', state='INFO'), verbose=False)\n"
        "first = glob.glob('log/**/*.log', recursive=True)\n"
        "sizes = [os.path.getsize(p) for p in first]\n"
        "print('CALL2', flush=True)\n"
        "run_recbole_unlearn('GRU4Rec', config_dict=dict(base, results_dir='r2', state='WARNING'), verbose=False)\n"
        "second = [p for p in glob.glob('log/**/*.log', recursive=True) if p not in first]\n"
        "print(json.dumps({'first_grew': [os.path.getsize(p) for p in first] != sizes, 'second': len(second)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=600)  # one stream, in order
    assert out.returncode == 0, out.stdout
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"first_grew": False, "second": 1}, result
    after = out.stdout.split("CALL2", 1)[1]
    assert "INFO" not in after, after


def test_a_row_records_only_the_settings_its_method_runs_with(in_tmp):
    """A SCIF row recorded every ``sruga_*`` key, ``utility_floor``, ``n_shards`` and the
    partitioner; a SISA row SCIF's and SRUGA's keys (found by probing): a grid then reran every
    SISA and Retrain row when a SRUGA key changed. Each row now records its method's own."""
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method=["sisa", "scif"], n_shards=2,
                                                               shard_num_threads=1, results_dir=str(in_tmp / "r")),
                              verbose=False)
    rows = {row["method"]: row["settings"] for row in doc["rows"] if row["method"] != "original"}
    assert rows["retrain"] == {"unlearn_method": "retrain"}
    assert set(rows["scif"]) == {"unlearn_method"} | {k for k in rows["scif"] if k.startswith("scif_")}
    assert "scif_damping" in rows["scif"] and "n_shards" not in rows["scif"]
    assert "n_shards" in rows["sisa"] and not any(k.startswith(("scif_", "sruga_")) for k in rows["sisa"])
    assert "utility_floor" not in rows["sisa"]


def test_the_printed_table_shows_the_metrics_the_run_measured(in_tmp, capsys):
    """With ``utility_topk: [5]`` or ``utility_metrics: [MRR, Hit]`` every utility column of the
    printed table was ``-`` (its columns were fixed at NDCG/Recall @10/@20; found by probing)."""
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(results_dir=str(in_tmp / "r"), unlearn_method="retrain",
                                                         utility_topk=[5], utility_metrics=["MRR", "Hit"]))
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("method"))
    assert "MRR@5 raw" in header and "MRR@5 rem" in header, header
    retrain = next(line for line in out.splitlines() if line.startswith("retrain"))
    assert retrain.split()[1] != "-" and retrain.split()[2] != "-", out


def test_help_names_the_ways_to_run_and_where_the_keys_are(capsys):
    """``--help`` was ``error: unrecognised argument '--help'`` (found by probing): no way to learn
    the command line from the command line."""
    from recbole_unlearn.cli import main

    for flag in ("--help", "-h"):
        assert main([flag]) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage:") and "--model_dir=<folder> --forget=" in out and "docs/config-keys.md" in out


def test_a_training_run_whose_results_fail_after_its_forget_went_live_says_so(in_tmp, monkeypatch, capsys):
    """A training run forgetting a request file into a model folder, then failing to write
    results.json (a full disk), printed a bare OSError line, exit 1, while the folder's new version
    was live and its requests recorded (found by probing): exit 3 and a line that says so. Its
    requests the step had no sample of are named in a warning too (they were silent)."""
    from recbole_unlearn.cli import main
    from recbole_unlearn.quick_start import quick_start

    (in_tmp / "req.csv").write_text("3\n")
    args = [f"--data_path={FIXTURES}", "--dataset=ml-tiny", "--epochs=1", "--state=ERROR", "--model=GRU4Rec",
            "--forget=req.csv", "--unlearn_method=sisa", "--n_shards=2", "--include_retrain=False",
            "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}", "--save_model=False"]

    def full_disk(path, document):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(quick_start, "write_results", full_disk)
    assert main(args + ["--model_dir=m"]) == 3
    err = capsys.readouterr().err
    assert "went live" in err and "m" in err, err


def test_a_training_run_warns_of_file_requests_the_step_did_not_act_on(in_tmp, capsys):
    from recbole_unlearn.cli import main
    from conftest import load_model as load

    (in_tmp / "req.csv").write_text("3\n")
    base = [f"--data_path={FIXTURES}", "--dataset=ml-tiny", "--epochs=1", "--state=ERROR", "--model=GRU4Rec",
            "--include_retrain=False", "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}", "--save_model=False"]
    assert main(base + ["--unlearn_method=sisa", "--n_shards=2", "--forget=req.csv", "--model_dir=s"]) == 0
    model = load(str(in_tmp / "s"))
    rows = model.dataset.user_rows(5)
    first = rows[model.dataset.is_training[rows]][0]
    (in_tmp / "first.csv").write_text(f"{model.dataset.id2token('user_id', 5)},"
                                      f"{model.dataset.id2token('item_id', model.dataset.log_item[first])}\n")
    capsys.readouterr()
    assert main(base + ["--unlearn_method=kookmin", "--forget=first.csv", "--model_dir=k"]) == 0
    out = capsys.readouterr().out
    assert "warning: kookmin: 1 request" in out and "applied_without_change" in out, out


def test_the_cap_note_names_slice_epochs_and_the_audits_reference_models(in_tmp, capsys):
    """A probe: with ``slice_epochs`` the stages' cap is ``slice_epochs``, yet the note said
    "their cap (epochs 8) ... set --epochs higher", which changes nothing for them; and the
    audit's reference models, which ran all their epochs, were named nowhere (results.json held
    no epochs of theirs)."""
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        unlearn_method="sisa", n_shards=2, n_slices=2, slice_epochs=1, epochs=3, stopping_step=10,
        include_retrain=False, audit=True, audit_references=2, audit_bootstrap=100, shard_num_threads=1,
        results_dir=str(in_tmp / "r")))
    note = next(line for line in capsys.readouterr().out.splitlines() if "stopped at" in line)
    assert "slice_epochs 1" in note and "--slice_epochs" in note, note
    assert "audit's reference models" in note, note
    assert doc["audit"]["references_epochs_run"] == [3, 3]


def test_a_model_stopped_by_validation_on_its_last_allowed_epoch_did_not_hit_its_cap(in_tmp, capsys):
    """A probe: a model whose early stopping fired on the last epoch its cap allowed was recorded
    ``hit_cap`` and named in the note as stopped "at their cap ..., not by validation; set
    --epochs higher", which changes nothing (the check compared epochs run with the cap only).
    Run 1 finds the epochs validation stops the original, the shards and the aggregator at; run
    2 sets the caps to exactly those epochs: the same trainings, none at its cap."""
    settings = dict(unlearn_method="sru", n_shards=2, stopping_step=1, learning_rate=0.01, slice_epochs=30,
                    include_retrain=False, forget_protocol="none", shard_num_threads=1)
    first = run_recbole_unlearn("SASRec", config_dict=tiny_dict(
        epochs=30, agg_epochs=30, results_dir=str(in_tmp / "r1"), **settings))
    rows = {row["method"]: row for row in first["rows"]}
    epochs, aggregator = rows["original"]["epochs_run"], rows["sru"]["fit_training"]["aggregator"]
    assert epochs < 30 and aggregator["epochs"] < 30, (epochs, aggregator)  # stopped by validation
    capsys.readouterr()
    second = run_recbole_unlearn("SASRec", config_dict=tiny_dict(
        epochs=epochs, agg_epochs=aggregator["epochs"], results_dir=str(in_tmp / "r2"), **settings))
    out = capsys.readouterr().out
    rows = {row["method"]: row for row in second["rows"]}
    assert rows["original"]["epochs_run"] == epochs and rows["original"]["hit_cap"] is False, rows["original"]
    again = rows["sru"]["fit_training"]["aggregator"]
    assert again["epochs"] == aggregator["epochs"] and again["hit_cap"] is False, again
    assert "stopped at their cap" not in out, out
    from recbole_unlearn.utils.results import training_summary

    assert training_summary(rows["original"], epochs) == (f"{epochs} epochs", False)
    stages = [stage for shard in first["rows"][1]["fit_training"]["shards"].values() for stage in shard.values()]
    assert all(not stage["hit_cap"] for stage in stages), stages  # stopped by validation before 30


def test_an_eval_step_past_a_stage_s_or_aggregator_s_cap_still_validates(in_tmp):
    """RecBole's Trainer validates at least once (``eval_step`` is cut to ``epochs`` when it is
    built); a slice stage's and an aggregator's cap was set after, so ``eval_step: 3`` with caps
    of 2 never validated them: no best score, the last state kept, unsaid (a probe)."""
    doc = run_recbole_unlearn("SASRec", config_dict=tiny_dict(
        unlearn_method="sisa", n_shards=2, n_slices=2, aggregator="static", agg_epochs=2, epochs=4, eval_step=3,
        include_retrain=False, forget_protocol="none", shard_num_threads=1, results_dir=str(in_tmp / "r")))
    record = next(row for row in doc["rows"] if row["method"] == "sisa")["fit_training"]
    stages = [stage for shard in record["shards"].values() for stage in shard.values()]
    assert all(stage["cap"] == 2 and stage["best_valid_ndcg@10"] is not None for stage in stages), stages
    assert record["aggregator"]["best_valid_ndcg@10"] is not None, record["aggregator"]


def test_the_original_and_retrain_record_their_best_validation_score(in_tmp):
    """The README says the original, Retrain, every shard stage and every learned aggregator
    record ``best_valid_<valid_metric>``; the single models' rows had only ``epochs_run`` and
    ``hit_cap`` (r10baseline probe). The best state is kept, so the saved original scores it on
    the validation split."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.evaluator.metrics import full_ranking_metrics
    from recbole_unlearn.unlearn.experiment import Experiment

    settings = tiny_dict(unlearn_method="retrain", epochs=3, valid_metric="Recall@10", results_dir=str(in_tmp / "r"))
    doc = run_recbole_unlearn("SASRec", config_dict=settings)
    rows = {row["method"]: row for row in doc["rows"]}
    for method in ("original", "retrain"):
        score = rows[method].get("best_valid_recall@10")
        assert isinstance(score, float) and 0 < score <= 1, rows[method]
    experiment = Experiment(UnlearnConfig("SASRec", config_dict=settings))
    experiment.open(str(in_tmp / "check"), console=False)
    experiment.load_original(os.path.join(doc["run_dir"], "original.pth"), rows["original"])
    valid = full_ranking_metrics(experiment.original.model, experiment.suite.raw.valid, experiment.config,
                                 ["Recall"], [10])
    assert round(valid["recall@10"], 4) == rows["original"]["best_valid_recall@10"], valid


def test_request_steps_record_how_their_matched_retrains_trained(in_tmp, capsys):
    """Under ``request_steps`` each step's Retrain (trained on D_raw minus requests 1..k) kept
    only its metrics and seconds: no epochs, and the cap note never named it (a probe)."""
    doc = run_recbole_unlearn("SASRec", config_dict=tiny_dict(
        unlearn_method="sisa", n_shards=2, epochs=2, request_steps=2, shard_num_threads=1,
        results_dir=str(in_tmp / "r")))
    out = capsys.readouterr().out
    steps = next(row for row in doc["rows"] if row["method"] == "sisa")["steps"]
    for step in steps:
        assert step["retrain"]["epochs_run"] == 2 and step["retrain"]["hit_cap"] is True, step["retrain"]
    note = next(line for line in out.splitlines() if "stopped at their cap" in line)
    assert "the Retrains matched to requests 1, 2" in note, note


def test_the_cap_note_gives_a_slice_stages_own_cap_where_slice_epochs_is_not_set():
    """Without ``slice_epochs`` a slice stage's cap is ``ceil(epochs / n_slices)``: with
    ``--epochs=2 --n_slices=2`` every stage record says ``cap: 1``, yet the note said "stopped at
    their cap (epochs 2)" (found by probing). It says the stages' cap and where it comes from."""
    from recbole_unlearn.utils.results import cap_note

    stage = {"epochs": 1, "cap": 1, "hit_cap": True, "best_valid_ndcg@10": 0.1}
    row = {"method": "sisa", "fit_training": {"shards": {"0": {"0": stage, "1": stage}, "1": {"0": stage, "1": stage}}}}
    note = cap_note([row], epochs_cap=2, agg_epochs_cap=10)
    assert "sisa (fit: 4 shard stages) stopped at their cap (slice stages 1: epochs 2 over n_slices)" in note, note
    assert "set --epochs higher" in note, note


def test_every_row_says_how_many_forgotten_items_its_sru_inference_hit_measures(in_tmp):
    """SRU inference ranks each forgotten item given the user's remaining items before it; an
    item with none left is not measured. CED's extra deletions left 19 of 50 targets without
    history, so the ``sru`` row's Hit@10 was over 31 targets and Retrain's over 50, in one
    column, with no word of it (found by probing). Each row records its count."""
    doc = run_recbole_unlearn("SASRec", config_dict=tiny_dict(
        unlearn_method="sru", n_shards=2, agg_epochs=1, shard_num_threads=1, results_dir=str(in_tmp / "r")))
    rows = {row["method"]: row for row in doc["rows"]}
    retrain, sru = rows["retrain"]["sru_inference_samples"], rows["sru"]["sru_inference_samples"]
    assert retrain == doc["forget_set"]["forget_samples"], (retrain, doc["forget_set"])
    assert 0 < sru < retrain, (sru, retrain)  # CED's extras removed the whole history of some targets
    assert rows["original"]["sru_inference_samples"] == retrain


def test_the_cap_note_says_nothing_validates_where_eval_step_is_0():
    """With ``eval_step: 0`` nothing validates, so every model runs all its epochs; the note
    said "set --epochs higher to train to convergence", which cannot help (found by probing)."""
    from recbole_unlearn.utils.results import cap_note

    note = cap_note([{"method": "original", "epochs_run": 2}], epochs_cap=2, agg_epochs_cap=10, validates=False)
    assert "nothing validates (eval_step 0)" in note and "set --epochs higher" not in note, note


def test_the_cap_note_says_sub_models_do_not_validate_where_validate_submodels_is_off():
    """With ``validate_submodels: False`` shard stages and aggregators never stop by validation;
    the note still said to raise ``--epochs`` to train them to convergence (found by probing)."""
    from recbole_unlearn.utils.results import cap_note

    stage = {"epochs": 3, "cap": 3, "hit_cap": True}
    row = {"method": "sisa", "fit_training": {"shards": {"0": {"0": stage}, "1": {"0": stage}}}}
    note = cap_note([row], epochs_cap=3, agg_epochs_cap=10, submodels_validate=False)
    assert "shard stages and aggregators do not validate (validate_submodels False)" in note, note
    assert "--epochs higher" not in note, note
    assert "--epochs higher" in cap_note([row], epochs_cap=3, agg_epochs_cap=10)
    both = cap_note([{"method": "original", "epochs_run": 3}, row], epochs_cap=3, agg_epochs_cap=10,
                    submodels_validate=False)  # the probe's run: the original's cap, and shards that never stop
    assert "set --epochs higher to train to convergence (the single models); shard stages and aggregators do not " \
           "validate (validate_submodels False); set --validate_submodels=True" in both, both


def test_verbose_false_prints_nothing_and_still_logs_to_the_run_log(tmp_path):
    """``verbose=False`` left RecBole's console handler in place: the API's quiet calls wrote their
    log lines to stderr all the same (found by probing), and RecBole's and its libraries'
    FutureWarnings (16 lines; round 4), which the command line filters. The console is quiet;
    the log files hold the lines. Run as a notebook would, in a process of its own (this suite
    hides warnings)."""
    import subprocess
    import sys

    settings = tiny_dict(unlearn_method="sisa", n_shards=2, include_retrain=False, state="INFO",
                         results_dir=str(tmp_path / "r"), forget_protocol="none", model_dir=str(tmp_path / "m"))
    (tmp_path / "req.csv").write_text("1\n")
    script = (
        "import os\n"
        "from recbole_unlearn import run_recbole_unlearn\n"
        "from recbole_unlearn.quick_start import run_forget_requests\n"
        f"run_recbole_unlearn('GRU4Rec', config_dict={settings!r}, verbose=False)\n"
        f"doc = run_forget_requests({str(tmp_path / 'm')!r}, {str(tmp_path / 'req.csv')!r}, "
        "{'state': 'INFO'}, verbose=False)\n"
        "assert 'requests done' in open(os.path.join(doc['run_dir'], 'run.log')).read()\n"
        # run_verify prints nothing of its own (it returns the report): RecBole's pandas warnings
        # reading the dataset were its only output (a probe), where --verify=True printed none
        "from recbole_unlearn.quick_start.forget_requests import run_verify\n"
        f"assert run_verify({str(tmp_path / 'm')!r})['weights_checked']\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "" and done.stderr == "", done.stderr[-1000:]


def test_the_training_summary_names_capped_audit_references_and_matched_retrains():
    """A grid's ``training`` / ``cap_hit`` columns named no audit reference model and no Retrain
    matched to a request step that ran all its epochs, where a single run's cap note names them
    (a probe: ``references_hit_cap: [true, false]`` in the original row, "3 epochs", cap_hit
    False)."""
    from recbole_unlearn.utils.results import training_summary

    original = {"method": "original", "epochs_run": 3, "hit_cap": False,
                "audit": {"cost": {"references_epochs_run": [5, 3], "references_hit_cap": [True, False]}}}
    assert training_summary(original, 5) == ("3 epochs; audit references: 1 of 2 at cap", True)
    stepped = {"method": "sisa", "epochs_run": None, "steps": [
        {"step": 1, "retrain": {"epochs_run": 5, "hit_cap": True}},
        {"step": 2, "retrain": {"epochs_run": 4, "hit_cap": False}}],
        "fit_training": {"shards": {"0": {"0": {"epochs": 2, "cap": 5, "hit_cap": False}}}}}
    text, capped = training_summary(stepped, 5)
    assert capped is True and "Retrain matched to request 1 at cap" in text, text
    assert training_summary({"method": "original", "epochs_run": 3, "hit_cap": False}, 5) == ("3 epochs", False)


@pytest.mark.parametrize("value", ["retrain,sisa", "[retrain,sisa]", "['retrain', 'sisa']", " Retrain , SISA "])
def test_several_methods_on_the_command_line_as_recbole_writes_lists(value):
    """RecBole's command line writes a list as ``[a,b]``; a value its parser cannot evaluate
    (names without quotes) stays the string: the brackets are read as a list, not as part of the
    first and last names (``[retrain`` was an unknown method)."""
    from recbole_unlearn.config.configurator import method_names
    assert method_names(value) == ["retrain", "sisa"]


def test_show_progress_shows_every_models_training(in_tmp, monkeypatch):
    """``show_progress: True`` drew bars for the original and Retrain only: shard stages,
    aggregators and SRUGA's ascent trained without (configuration probe)."""
    from recbole_unlearn.trainer.trainer import UnlearnTrainer

    asked = []
    real_fit = UnlearnTrainer.fit

    def fit(self, *args, show_progress=False, **kwargs):
        asked.append(show_progress)
        return real_fit(self, *args, show_progress=show_progress, **kwargs)

    monkeypatch.setattr(UnlearnTrainer, "fit", fit)
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        unlearn_method="sru,sruga", n_shards=2, agg_epochs=1, include_retrain=False, save_model=False,
        show_progress=True, results_dir=str(in_tmp / "r")), verbose=False)
    assert len(asked) >= 5 and all(asked), asked  # original, 2 shards, the aggregator (fit, forget), SRUGA


def test_the_api_keeps_library_warnings_off_the_console_as_the_command_line_does(tmp_path):
    """With ``verbose=True`` (the default) the API printed RecBole's pandas and torch
    FutureWarnings (three multi-line warnings a run) that the command line filters (README
    probe). Run as a notebook would, in a process of its own (this suite hides warnings)."""
    import subprocess
    import sys

    settings = tiny_dict(unlearn_method="retrain", results_dir=str(tmp_path / "r"))
    script = ("from recbole_unlearn import run_recbole_unlearn\n"
              f"run_recbole_unlearn('SASRec', config_dict={settings!r})\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "results:" in done.stdout and "Warning" not in done.stderr, done.stderr[-1000:]
