"""A deletion request is never lost (issue: content-addressed requests, a locked model store, a
scrubbed partition, honest approximate audits). Each of the six failures reported on the
earlier code is reproduced here first, then the guarantees that replace it."""
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from recbole.utils import init_seed

from recbole_unlearn.quick_start import run_forget_requests
from recbole_unlearn.serving import jsonl
from recbole_unlearn.serving.batcher import StreamSummary
from recbole_unlearn.serving.lock import FolderLock
from recbole_unlearn.serving.request_files import file_digest
from recbole_unlearn.trainer import sruga_trainer
from recbole_unlearn.trainer.shard_trainer import SHARD_SEED_STRIDE
from recbole_unlearn.unlearnable.base import states_equal
from recbole_unlearn.utils.errors import UnlearnError

from conftest import (ledger_events, load_model, read_audit, read_manifest, snapshot, tiny_dict, train_saved_model,
                      verify_model)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = {"state": "ERROR"}


def _cli(args, cwd, env=None, timeout=600):
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_recbole_unlearn.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def _forgotten_pairs(model_dir):
    model = load_model(model_dir)
    ds = model.dataset
    return set(zip(ds.id2token("user_id", ds.log_user[model.forgotten]).tolist(),
                   ds.id2token("item_id", ds.log_item[model.forgotten]).tolist()))


@pytest.fixture(scope="module")
def sisa_trained(tmp_path_factory):
    """SISA, 2 shards, GRU4Rec on ml-tiny (the issue's reproduction), after the run's forget set."""
    return train_saved_model(tmp_path_factory.mktemp("sisa"))


@pytest.fixture
def sisa_copy(sisa_trained, in_tmp):
    target = str(in_tmp / "m")
    shutil.copytree(sisa_trained, target)
    return target


# --- 1. a new file with an old name --------------------------------------------------------
def test_a_new_request_file_with_an_old_name_is_applied(sisa_copy, in_tmp):
    (in_tmp / "a").mkdir()
    (in_tmp / "b").mkdir()
    (in_tmp / "a" / "requests.csv").write_text("2,292\n")
    (in_tmp / "b" / "requests.csv").write_text("2,303\n")
    assert not {("2", "292"), ("2", "303")} & _forgotten_pairs(sisa_copy)
    first = _cli([f"--model_dir={sisa_copy}", "--forget=a/requests.csv", "--state=ERROR"], in_tmp)
    assert first.returncode == 0, first.stderr
    second = _cli([f"--model_dir={sisa_copy}", "--forget=b/requests.csv", "--state=ERROR"], in_tmp)
    assert second.returncode == 0, second.stderr
    assert "'applied': 1" in second.stdout and "'skipped_already_final': 0" in second.stdout
    assert {("2", "292"), ("2", "303")} <= _forgotten_pairs(sisa_copy)
    # the same bytes sent again, under any name, are the same requests: skipped
    shutil.copy(in_tmp / "b" / "requests.csv", in_tmp / "resent.csv")
    again = _cli([f"--model_dir={sisa_copy}", "--forget=resent.csv", "--state=ERROR"], in_tmp)
    assert again.returncode == 0, again.stderr
    assert "'skipped_already_final': 1" in again.stdout and "'queued': 0" in again.stdout
    ids = [rid for e in read_audit(sisa_copy) for rid in e.get("request_ids", [])]
    assert ids == [f"{file_digest(str(in_tmp / d / 'requests.csv'))}:1" for d in ("a", "b")]


def test_a_request_for_rows_already_forgotten_is_reported_not_dropped(sisa_copy, in_tmp):
    (in_tmp / "one.csv").write_text("2,292\n")
    (in_tmp / "two.csv").write_text("# the same pair, asked again in another file\n2,292\n")
    run_forget_requests(sisa_copy, str(in_tmp / "one.csv"), QUIET, verbose=False)
    doc = run_forget_requests(sisa_copy, str(in_tmp / "two.csv"), QUIET, verbose=False)
    stream = doc["requests"]
    assert stream["queued"] == 1 and stream["already_forgotten"] == 1 and stream["applied"] == 0
    rid = f"{file_digest(str(in_tmp / 'two.csv'))}:2"
    final = [e for e in ledger_events(sisa_copy) if e["id"] == rid and e["status"] != "queued"]
    assert [(e["status"], e["already_forgotten"]) for e in final] == [("applied", True)]
    assert read_audit(sisa_copy)[-1]["already_forgotten"] == [rid]


# --- a request that leaves a shard (or a slice) without training data ------------------------
@pytest.mark.parametrize("method, model, n_slices, emptied", [
    ("sisa", "GRU4Rec", 2, "slice 0 of shard 1"),
    ("sru", "SASRec", 1, "shard 1"),
])
def test_a_request_that_empties_a_shard_is_applied(in_tmp, method, model, n_slices, emptied):
    """Forgetting every user of a shard (or of a slice) used to crash the forget with a
    traceback from torch's sampler (no samples to draw), leaving the requests queued for ever
    and every later run crashing the same way. A stage with no training data is its seeded
    initialisation (what training on nothing gives), and the forget goes through."""
    model_dir = train_saved_model(in_tmp, model, unlearn_method=method, n_slices=n_slices,
                                  **({"agg_epochs": 1} if method == "sru" else {}))  # SISA's mean aggregator trains nothing
    manifest = read_manifest(model_dir)[1]
    shard_map = manifest["shard_map"]
    slices = shard_map.get("slice") or [0] * len(shard_map["users"])
    users = [u for u, k, r in zip(shard_map["users"], shard_map["shard"], slices) if k == 1 and r == 0]
    assert users
    (in_tmp / "empty.csv").write_text("\n".join(users) + "\n")
    proc = _cli([f"--model_dir={model_dir}", "--forget=empty.csv", "--state=ERROR"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    assert "'rejected': 0" in proc.stdout  # applied, or already forgotten by the run's forget set
    digest = file_digest(str(in_tmp / "empty.csv"))
    final = {e["id"]: e["status"] for e in ledger_events(model_dir) if e["id"].startswith(digest)}
    assert set(final.values()) == {"applied"} and len(final) == len(users)
    entry = read_audit(model_dir)[-1]
    assert entry["request_ids"] == [f"{digest}:{i + 1}" for i in range(len(users))]
    assert 1 in entry["shards_retrained"]
    assert entry["training"]["shards"]["1"]["0"]["epochs"] == 0
    assert all(t["epochs"] > 0 for r, t in entry["training"]["shards"]["1"].items() if r != "0")
    verify_model(model_dir)
    forgotten = load_model(model_dir)
    init_seed(forgotten.config["seed"] + SHARD_SEED_STRIDE * 2, forgotten.config["reproducibility"])
    untrained = forgotten.config.model_class(forgotten.config, forgotten.dataset).state_dict()
    assert states_equal(forgotten.stage_states[1][0], untrained)
    rows = forgotten.dataset.split_targets(forgotten.keep_mask())[0]
    assert not np.isin(forgotten.dataset.log_user[rows], forgotten.dataset.token2id("user_id", users)).any()
    doc = json.load(open(in_tmp / proc.stdout.strip().splitlines()[-1].removeprefix("results: ")))
    assert all(np.isfinite(v) for v in doc["rows"][-1]["utility_rem"].values())


@pytest.mark.parametrize("overrides", [
    dict(unlearn_method="sisa"),
    dict(model="SASRec", unlearn_method="sru"),
    dict(model="SASRec", unlearn_method="sruga", sruga_epochs=1),
    dict(unlearn_method="sisa", shard_unlearning="sruga", sruga_epochs=1),
    dict(model="SASRec", unlearn_method="sru", redraw_partition=True, partition_balance="interactions"),
], ids=["sisa", "sru", "sruga", "sisa-sruga", "sru-redrawn-by-interactions"])
def test_a_request_that_forgets_everyone_is_applied(in_tmp, overrides):
    """Forgetting every user's training data is a valid request: with nothing left to train on,
    every model (or shard) is its seeded initialisation, which is what retraining on nothing
    gives. It used to crash (an empty sampler in the aggregator, in SRUGA's D_rem batches and in
    the evaluation after the forget), leaving the requests queued or the report unwritten."""
    settings = dict(overrides)
    model_dir = train_saved_model(in_tmp, settings.pop("model", "GRU4Rec"), **settings)
    before = load_model(model_dir)
    users_before = set(before.dataset.id2token("user_id", before.dataset.log_user[before.forgotten]).tolist())
    first = read_audit(model_dir)[0]  # the run's own forget; a SRUGA step may have changed nothing
    per_shard = [r.get("changed") for r in (first.get("approximate") or {}).values() if isinstance(r, dict)]
    (in_tmp / "everyone.csv").write_text("\n".join(str(u) for u in range(1, 61)) + "\n")
    proc = _cli([f"--model_dir={model_dir}", "--forget=everyone.csv", "--state=ERROR"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    assert "'rejected': 0" in proc.stdout
    digest = file_digest(str(in_tmp / "everyone.csv"))
    final = {e["id"]: e["status"] for e in ledger_events(model_dir) if e["id"].startswith(digest)}
    assert len(final) == 60
    # every model (or shard) is reset for want of data by this forget: exact, so every request is
    # applied, also one with data the run's own forget left unchanged (r9round2 probe: it was
    # applied_without_change, the earlier forget looked at and the reset not)
    assert set(final.values()) == {"applied"}, (first["changed"], per_shard, users_before)
    assert read_audit(model_dir)[-1]["changed"] is True
    verify_model(model_dir)
    model = load_model(model_dir)
    assert len(model.dataset.split_targets(model.keep_mask())[0]) == 0
    config = model.config
    if hasattr(model, "stage_states"):
        for shard, stages in enumerate(model.stage_states):
            init_seed(config["seed"] + SHARD_SEED_STRIDE * (shard + 1), config["reproducibility"])
            assert states_equal(stages[0], config.model_class(config, model.dataset).state_dict())
    else:
        init_seed(config["seed"], config["reproducibility"])
        assert states_equal(model.model.state_dict(), config.model_class(config, model.dataset).state_dict())


@pytest.mark.parametrize("overrides", [
    dict(unlearn_method="sisa"),
    dict(model="SASRec", unlearn_method="sru"),
    dict(model="SASRec", unlearn_method="sruga"),
], ids=["sisa", "sru", "sruga"])
def test_a_model_saved_for_deployment_forgets_nothing_nobody_asked_for(in_tmp, overrides):
    """Every run that saved a model used to forget a sampled forget set first (10 % of the users
    by default, no way to turn it off: forget_user_ratio 0 is refused), so a model trained for a
    deletion pipeline started with deletions nobody asked for, logged as applied. With
    ``forget_protocol: none`` the fitted model is saved as it is, and requests are its only
    forgets."""
    settings = dict(overrides, forget_protocol="none")
    model_dir = train_saved_model(in_tmp, settings.pop("model", "GRU4Rec"), **settings)
    assert read_audit(model_dir) == []
    assert len(load_model(model_dir).forgotten) == 0
    assert os.path.basename(read_manifest(model_dir)[0]) == "v000001"
    (path,) = [os.path.join(r, "results.json") for r, _, names in os.walk(in_tmp / "results") if "results.json" in names]
    with open(path) as f:
        doc = json.load(f)
    assert doc["forget_set"] == {"source": "none", "interactions": 0, "users": 0, "forget_samples": 0}
    rows = {r["method"]: r for r in doc["rows"]}
    assert list(rows) == ["original", overrides["unlearn_method"]]
    deployed = rows[overrides["unlearn_method"]]
    assert deployed["forgotten_interactions"] == 0 and deployed["seconds"] == 0.0
    assert deployed["model_dir"] == model_dir and deployed["utility_rem"] == deployed["utility_raw"]
    if overrides["unlearn_method"] == "sruga":  # the deployed model is the original, untouched
        original = torch.load(os.path.join(os.path.dirname(path), "original.pth"), weights_only=True)
        assert states_equal(load_model(model_dir).model.state_dict(), original)
    (in_tmp / "req.csv").write_text("7\n")
    proc = _cli([f"--model_dir={model_dir}", "--forget=req.csv", "--state=ERROR"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    (entry,) = read_audit(model_dir)
    assert entry["version"] == "v000002" and entry["request_ids"] == [f"{file_digest(str(in_tmp / 'req.csv'))}:1"]
    assert {u for u, _ in _forgotten_pairs(model_dir)} == {"7"}
    verify_model(model_dir)


def test_a_forget_that_fails_leaves_its_requests_queued_and_says_why(sisa_copy, in_tmp, monkeypatch):
    """A forget that raises (a bug, memory, a setting the remaining data cannot meet) used to
    leave only 'queued' lines: the ledger did not say the batch had been tried, or why it
    failed. It now records 'failed' with the reason; the previous version stays live and the
    next run applies the requests, once."""
    from recbole_unlearn.unlearnable.sharded import ShardedUnlearnableModel

    (in_tmp / "req.csv").write_text("2,292\n3\n")
    version = read_manifest(sisa_copy)[0]
    real_forget = ShardedUnlearnableModel.forget

    def broken(self, rows):
        raise RuntimeError("out of memory while retraining\nsecond line")

    monkeypatch.setattr(ShardedUnlearnableModel, "forget", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_forget_requests(sisa_copy, str(in_tmp / "req.csv"), QUIET, verbose=False)
    assert read_manifest(sisa_copy)[0] == version
    digest = file_digest(str(in_tmp / "req.csv"))
    events = [e for e in ledger_events(sisa_copy) if e["id"].startswith(digest)]
    assert [e["status"] for e in events] == ["queued", "queued", "failed", "failed"]
    assert events[-1]["reason"] == "RuntimeError: out of memory while retraining second line"
    monkeypatch.setattr(ShardedUnlearnableModel, "forget", real_forget)
    # --verify tells a compliance check that two requests wait for a retry
    pending = verify_model(sisa_copy)
    assert pending["requests_not_final"] == 2 and pending["requests_failed"] == 2
    assert pending["oldest_not_final"] == events[0]["time"]
    doc = run_forget_requests(sisa_copy, str(in_tmp / "req.csv"), QUIET, verbose=False)
    assert doc["requests"]["applied"] == 2 and doc["requests"]["skipped_already_final"] == 0
    done = verify_model(sisa_copy)
    assert done["requests_not_final"] == 0 and done["requests_failed"] == 0 and done["oldest_not_final"] is None
    ids = [rid for e in read_audit(sisa_copy) for rid in e.get("request_ids", [])]
    assert ids.count(f"{digest}:1") == 1 and ids.count(f"{digest}:2") == 1


def test_summary_counts_must_add_up():
    summary = StreamSummary(queued=3)
    summary.outcomes["applied"] = 2
    with pytest.raises(UnlearnError, match="does not add up"):
        summary.check()
    summary.outcomes["rejected"] = 1
    summary.check()


# --- 2. a torn last line in a log ---------------------------------------------------------
def test_torn_audit_line_is_repaired_under_the_lock(sisa_copy, in_tmp):
    audit = os.path.join(sisa_copy, "audit.jsonl")
    complete = open(audit, "rb").read()
    with open(audit, "ab") as f:
        f.write(b'{"audit_id": "x", "tim')
    (in_tmp / "req.csv").write_text("2,292\n")
    proc = _cli([f"--model_dir={sisa_copy}", "--forget=req.csv", "--state=ERROR"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    data = open(audit, "rb").read()
    assert data.startswith(complete) and data.endswith(b"\n")
    assert [json.loads(line) for line in data.splitlines()]  # every line is a record again
    assert len(read_audit(sisa_copy)) == 2
    verify_model(sisa_copy)


def test_a_short_write_to_a_log_is_written_on_not_taken_as_done(tmp_path, monkeypatch):
    """``os.write`` may write fewer bytes than asked (a signal, a quota, a file-size limit);
    the logs' append took one call as the whole record, so the rest of the line was lost and
    the record with it, while the caller went on as if it were on disk."""
    real_write = jsonl.os.write
    monkeypatch.setattr(jsonl.os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    path = str(tmp_path / "log.jsonl")
    records = [{"id": f"r{i}", "status": "queued", "rows": list(range(i))} for i in range(5)]
    jsonl.append_records(path, records)
    monkeypatch.undo()
    assert jsonl.read_records(path) == records


def test_torn_ledger_line_is_repaired_the_same_way(sisa_copy, in_tmp):
    (in_tmp / "one.csv").write_text("2,292\n")
    run_forget_requests(sisa_copy, str(in_tmp / "one.csv"), QUIET, verbose=False)
    ledger = os.path.join(sisa_copy, "requests.jsonl")
    with open(ledger, "ab") as f:
        f.write(b'{"id": "abc:1", "sta')
    (in_tmp / "two.csv").write_text("2,303\n")
    run_forget_requests(sisa_copy, str(in_tmp / "two.csv"), QUIET, verbose=False)
    lines = open(ledger, "rb").read().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert sum(1 for e in ledger_events(sisa_copy) if e["status"] == "applied") == 2


def test_jsonl_reader_and_writer(tmp_path, caplog):
    caplog.set_level(logging.WARNING)  # an earlier run in this process may have set the root level higher
    path = str(tmp_path / "log.jsonl")
    jsonl.append_records(path, [{"a": 1}, {"a": 2}])
    with open(path, "ab") as f:
        f.write(b'{"a": 3}')  # complete record, newline lost
    assert [r["a"] for r in jsonl.read_records(path)] == [1, 2, 3]
    with open(path, "ab") as f:
        f.write(b'\n{"a": 4, "b')  # torn
    assert [r["a"] for r in jsonl.read_records(path)] == [1, 2, 3]  # read-only: left as it is
    assert open(path, "rb").read().endswith(b'"b')
    jsonl.append_records(path, [{"a": 5}])  # the writer repairs first
    assert [r["a"] for r in jsonl.read_records(path)] == [1, 2, 3, 5]
    assert "torn final line" in caplog.text
    with open(path, "r+b") as f:  # damage in the middle is corruption, named by line
        data = f.read().replace(b'{"a": 2}', b'{"a": 2')
        f.seek(0)
        f.truncate()
        f.write(data)
    with pytest.raises(UnlearnError, match=r"log.jsonl line 2 is not valid JSON"):
        jsonl.read_records(path, repair=True)


def _versions_on_disk(model_dir):
    return sorted(v for v in os.listdir(model_dir) if v.startswith("v") and v[1:].isdigit())


def test_a_forget_leaves_no_earlier_version_on_disk(sisa_copy, in_tmp):
    """The folder kept the version before each forget (a whole model trained on the data just
    forgotten) until the next forget, which the README did not say. Now only the live version
    stays, unless ``keep_previous_version`` asks for the one before; --verify lists any other."""
    user = _two_users_left(sisa_copy)
    (in_tmp / "a.csv").write_text(f"{user[0]}\n")
    proc = _cli([f"--model_dir={sisa_copy}", "--forget=a.csv", "--state=ERROR"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    assert _versions_on_disk(sisa_copy) == ["v000003"]
    assert verify_model(sisa_copy)["older_versions"] == []
    (in_tmp / "b.csv").write_text(f"{user[1]}\n")
    proc = _cli([f"--model_dir={sisa_copy}", "--forget=b.csv", "--state=ERROR", "--keep_previous_version=True"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    assert _versions_on_disk(sisa_copy) == ["v000003", "v000004"]
    assert verify_model(sisa_copy)["older_versions"] == ["v000003"]
    # said, not only done (probe): the run says what it kept, and the next run why it removes it
    assert "note: v000003 is kept (keep_previous_version)" in proc.stdout, proc.stdout
    assert read_audit(sisa_copy)[-1]["kept_version"] == "v000003"
    # a run that forgot nothing new keeps nothing "from before its forget" (it said so; probe)
    proc = _cli([f"--model_dir={sisa_copy}", "--forget=b.csv", "--state=ERROR", "--keep_previous_version=True"], in_tmp)
    assert proc.returncode == 0 and "is kept" not in proc.stdout, proc.stdout
    proc = _cli([f"--model_dir={sisa_copy}", "--forget=b.csv", "--state=WARNING"], in_tmp)
    assert proc.returncode == 0, proc.stderr
    assert _versions_on_disk(sisa_copy) == ["v000004"]
    results = re.search(r"results: (\S+)", proc.stdout).group(1)
    log = open(os.path.join(os.path.dirname(results), "run.log")).read()
    assert "removed v000003: kept by keep_previous_version" in log and "stopped" not in log, log


def test_a_run_stopped_while_it_removed_the_version_before_leaves_no_half_version(sisa_copy, in_tmp, monkeypatch):
    """A run stopped in the middle of removing the version before its new one left that version
    half removed under its own name (``v000002`` missing files: listed as a version, loadable by
    none). The version is renamed out of the versions' names first; what a stop leaves is a
    hidden folder that ``--verify`` lists (``left_behind_folders``) and the next run removes."""
    from recbole_unlearn.serving import store as store_module

    user = _two_users_left(sisa_copy)
    (in_tmp / "a.csv").write_text(f"{user[0]}\n")
    real_rmtree = shutil.rmtree

    def stopped_half_way(path, *args, **kwargs):
        if not os.path.basename(path).lstrip(".").startswith("v000002"):
            return real_rmtree(path, *args, **kwargs)
        files = sorted(os.path.join(root, n) for root, _, names in os.walk(path) for n in names)
        os.remove(files[0])
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module.shutil, "rmtree", stopped_half_way)
    with pytest.raises(KeyboardInterrupt):
        run_forget_requests(sisa_copy, str(in_tmp / "a.csv"), {"state": "ERROR"}, verbose=False)
    monkeypatch.setattr(store_module.shutil, "rmtree", real_rmtree)
    assert _versions_on_disk(sisa_copy) == ["v000003"]
    report = verify_model(sisa_copy)
    assert report["older_versions"] == [] and len(report["left_behind_folders"]) == 1, report
    assert report["left_behind_folders"][0].startswith(".v000002")
    (in_tmp / "b.csv").write_text(f"{user[1]}\n")
    run_forget_requests(sisa_copy, str(in_tmp / "b.csv"), {"state": "ERROR"}, verbose=False)
    assert [e for e in os.listdir(sisa_copy) if e.startswith(".v")] == []
    assert verify_model(sisa_copy)["left_behind_folders"] == []
    # a hidden folder of someone else's that starts with .v is neither listed nor removed (round 3
    # of probing: .vscode was listed as left behind, and the next forget removed it)
    (sisa_copy_path := os.path.join(sisa_copy, ".vscode")) and os.makedirs(sisa_copy_path)
    with open(os.path.join(sisa_copy_path, "settings.json"), "w") as f:
        f.write("{}")
    assert verify_model(sisa_copy)["left_behind_folders"] == []
    (in_tmp / "c.csv").write_text(f"{_two_users_left(sisa_copy)[0]}\n")
    run_forget_requests(sisa_copy, str(in_tmp / "c.csv"), {"state": "ERROR"}, verbose=False)
    assert os.path.isfile(os.path.join(sisa_copy_path, "settings.json"))


def _two_users_left(model_dir):
    """Two users with training data left, for requests."""
    model = load_model(model_dir)
    forgotten = set(model.dataset.log_user[model.forgotten].tolist())
    users = [u for u in range(1, model.dataset.user_num) if u not in forgotten][:2]
    return [str(model.dataset.id2token("user_id", u)) for u in users]


# --- 3. the lock ---------------------------------------------------------------------------
def test_a_busy_folder_fails_with_one_line_and_changes_nothing(sisa_copy, in_tmp):
    (in_tmp / "req.csv").write_text("2,292\n")
    before = snapshot(sisa_copy)
    lock = FolderLock(sisa_copy, 0)
    with lock.hold():
        proc = _cli([f"--model_dir={sisa_copy}", "--forget=req.csv", "--lock_timeout_s=0.5"], in_tmp)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"is busy (pid {os.getpid()})" in lines[0], proc.stderr
    assert snapshot(sisa_copy) == before


@pytest.mark.parametrize("value, verify", [("abc", False), ("abc", True), ("[1]", False), ("-5", False),
                                           ("-5", True)])
def test_a_bad_lock_timeout_is_one_line_before_the_lock_is_waited_for(sisa_copy, in_tmp, value, verify):
    """``lock_timeout_s`` was read before the settings were checked: ``abc`` or ``[1]`` ended in
    a traceback (request run and ``--verify``), and ``-5`` waited for a busy folder for ever
    (filelock's "no timeout"), never reaching the check (config probe)."""
    (in_tmp / "req.csv").write_text("2,292\n")
    before = snapshot(sisa_copy)
    with FolderLock(sisa_copy, 0).hold():  # busy: a run that got past the check would wait
        action = ["--verify=True"] if verify else ["--forget=req.csv"]
        proc = _cli([f"--model_dir={sisa_copy}", *action, f"--lock_timeout_s={value}"], in_tmp, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: config key 'lock_timeout_s' must be"), proc.stderr
    assert snapshot(sisa_copy) == before


def test_two_processes_answer_request_files_on_one_folder(sisa_copy, in_tmp):
    (in_tmp / "a.csv").write_text("2,292\n2,303\n")
    (in_tmp / "b.csv").write_text("5\n7\n")
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "run_recbole_unlearn.py"),
                               f"--model_dir={sisa_copy}", f"--forget={name}", "--state=ERROR"],
                              cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a.csv", "b.csv")]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    audit = read_audit(sisa_copy)
    ids = [rid for e in audit for rid in e.get("request_ids", [])]
    expected = {f"{file_digest(str(in_tmp / n))}:{i}" for n in ("a.csv", "b.csv") for i in (1, 2)}
    assert sorted(ids) == sorted(expected)  # every request exactly once
    assert [e["version"] for e in audit] == ["v000002", "v000003", "v000004"]  # consecutive
    assert os.path.basename(read_manifest(sisa_copy)[0]) == "v000004"
    final = [e["id"] for e in ledger_events(sisa_copy) if e["status"] == "applied"]
    assert sorted(final) == sorted(expected)
    assert {("2", "292"), ("2", "303")} <= _forgotten_pairs(sisa_copy)
    verify_model(sisa_copy)


def test_two_processes_watch_one_folder(sisa_copy, in_tmp):
    """Two watchers on one request folder (two replicas of a deletion service): every request is
    applied exactly once, both stop cleanly, and every file ends in processed/ once."""
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    files = {"a.csv": "2,292\n5\n", "b.csv": "7\n", "c.csv": "2,303\n9\n"}
    for name, text in files.items():
        (inbox / name).write_text(text)
    expected = {f"{file_digest(str(inbox / n))}:{i}" for n, text in files.items()
                for i in range(1, text.count("\n") + 1)}
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "run_recbole_unlearn.py"),
                               f"--model_dir={sisa_copy}", "--forget=inbox/", "--state=ERROR", "--max_wait_s=0",
                               "--watch_poll_s=0.05", "--watch_settle_s=0.2", "--watch_idle_s=3"],
                              cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    ids = [rid for e in read_audit(sisa_copy) for rid in e.get("request_ids", [])]
    assert sorted(ids) == sorted(expected)  # every request exactly once
    assert sorted(os.listdir(inbox / "processed")) == sorted(files)
    assert sorted(os.listdir(inbox)) == ["processed"]
    verify_model(sisa_copy)


# --- 4. scrubbed partitions -----------------------------------------------------------------
def test_similarity_partition_keeps_nothing_computed_from_forgotten_data(in_tmp):
    model_dir = train_saved_model(in_tmp, unlearn_method="sru", agg_epochs=1)
    version_dir, manifest = read_manifest(model_dir)
    assert "partition_embeddings.pth" not in manifest["files"]
    model = load_model(model_dir)
    n_users = model.dataset.user_num
    for name in manifest["files"]:
        if name.endswith(".pth"):
            state = torch.load(os.path.join(version_dir, name), weights_only=True)
            assert not any(t.dim() and t.shape[0] == n_users for t in state.values()), name  # no per-user table
    verify_model(model_dir)
    # a version written by the earlier code (pretrained vectors of every user kept) fails --verify
    legacy = os.path.join(version_dir, "partition_embeddings.pth")
    torch.save({"user_item_mean": torch.zeros(n_users, 4)}, legacy)
    manifest["files"]["partition_embeddings.pth"] = file_digest(legacy)
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(UnlearnError, match="partition_embeddings.pth"):
        verify_model(model_dir)


def test_redraw_partition_leaves_an_assignment_drawn_without_the_forgotten_data(in_tmp):
    """A similarity partition is pretrained on all training data and kept across forgets, and on
    converged GRU4Rec Video Games the audit sees the forget set through it (docs/benchmarks.md).
    With ``redraw_partition`` a forget leaves the model a fresh fit on the remaining data would
    be: the partition drawn without the forgotten interactions, every shard retrained."""
    from recbole_unlearn.unlearnable.sharded import ShardedUnlearnableModel

    settings = dict(unlearn_method="receraser", partitioner="inbp", n_shards=3, agg_epochs=1)
    (in_tmp / "kept").mkdir()
    kept_dir = train_saved_model(in_tmp / "kept", **settings)
    kept = load_model(kept_dir)
    refit = ShardedUnlearnableModel.train(kept.config, kept.dataset, forgotten=kept.forgotten)
    assert not np.array_equal(kept.shard_map.user_shard, refit.shard_map.user_shard)  # the kept one saw F

    (in_tmp / "redrawn").mkdir()
    redrawn_dir = train_saved_model(in_tmp / "redrawn", redraw_partition=True, **settings)
    redrawn = load_model(redrawn_dir)
    assert np.array_equal(redrawn.forgotten, kept.forgotten)
    assert np.array_equal(redrawn.shard_map.user_shard, refit.shard_map.user_shard)
    for shard in range(3):
        assert states_equal(redrawn.stage_states[shard][0], refit.stage_states[shard][0])
    entry = read_audit(redrawn_dir)[0]
    assert entry["shards_retrained"] == [0, 1, 2] and entry["slices_retrained"] == {"0": 0, "1": 0, "2": 0}
    assert entry["training"]["partition_redrawn"] is True
    verify_model(redrawn_dir)

    # the saved model answering a request file redraws too
    users = [u for u in redrawn.dataset.id2token("user_id", np.arange(1, redrawn.dataset.user_num))
             if not np.isin(redrawn.dataset.user_rows(redrawn.dataset.field2token_id["user_id"][u]),
                            redrawn.forgotten).any()]
    (in_tmp / "req.csv").write_text(f"{users[0]}\n")
    run_forget_requests(redrawn_dir, str(in_tmp / "req.csv"), QUIET, verbose=False)
    answered = load_model(redrawn_dir)
    again = ShardedUnlearnableModel.train(answered.config, answered.dataset, forgotten=answered.forgotten)
    assert len(answered.forgotten) > len(redrawn.forgotten)
    assert np.array_equal(answered.shard_map.user_shard, again.shard_map.user_shard)
    assert read_audit(redrawn_dir)[-1]["training"]["partition_redrawn"] is True
    verify_model(redrawn_dir)


@pytest.mark.parametrize("overrides, message", [
    (dict(unlearn_method="sisa"), "redraw_partition needs a partition drawn from the data"),
    (dict(unlearn_method="sru", shard_unlearning="sruga"), "needs shard_unlearning retrain"),
    # a partition balanced by interactions, drawn again after a forget, can leave a shard with fewer
    # users than slices: the saved folder then failed every request, its settings fixed (found by probing)
    (dict(unlearn_method="sisa", partition_balance="interactions", n_slices=2), "fewer users than slices")])
def test_redraw_partition_is_refused_where_it_cannot_apply(in_tmp, overrides, message):
    with pytest.raises(UnlearnError, match=message):
        train_saved_model(in_tmp, redraw_partition=True, **overrides)
    assert not (in_tmp / "model").exists()


def test_an_interaction_balanced_random_partition_is_redrawn_on_the_remaining_data(in_tmp):
    """``partition_balance: interactions`` deals users by their training interactions, forgotten
    ones included, so a random partition kept across forgets is not what a fit on the remaining
    data would draw (29 of ml-tiny's 60 users sat elsewhere), while ``redraw_partition`` was
    refused for it as "depending on the seed only" (found by probing). It is now allowed there."""
    from recbole_unlearn.unlearnable.sharded import ShardedUnlearnableModel

    settings = dict(unlearn_method="sisa", partition_balance="interactions", n_shards=3)
    (in_tmp / "kept").mkdir()
    kept = load_model(train_saved_model(in_tmp / "kept", **settings))
    refit = ShardedUnlearnableModel.train(kept.config, kept.dataset, forgotten=kept.forgotten)
    assert not np.array_equal(kept.shard_map.user_shard, refit.shard_map.user_shard)  # the kept one counted F

    (in_tmp / "redrawn").mkdir()
    redrawn_dir = train_saved_model(in_tmp / "redrawn", redraw_partition=True, **settings)
    redrawn = load_model(redrawn_dir)
    assert np.array_equal(redrawn.shard_map.user_shard, refit.shard_map.user_shard)
    for shard in range(3):
        assert states_equal(redrawn.stage_states[shard][0], refit.stage_states[shard][0])
    assert read_audit(redrawn_dir)[0]["training"]["partition_redrawn"] is True
    verify_model(redrawn_dir)


def test_ced_judges_a_target_with_a_shard_that_never_saw_its_user(in_tmp):
    model_dir = train_saved_model(in_tmp, unlearn_method="sru", agg_epochs=1)
    model = load_model(model_dir)
    for owner in range(model.shard_map.n_shards):
        judge = model.ced_shard(owner)
        assert judge != owner
        users = model.shard_map.shard_users(owner)
        judge_rows = model.shard_training_rows(judge)
        assert not np.isin(model.dataset.log_user[judge_rows], users).any()


def test_ced_does_not_judge_with_a_shard_whose_users_were_all_forgotten(in_tmp):
    """The next shard after the owner may have had every user forgotten: it is its seeded
    initialisation, and CED ranked the candidates by untrained embeddings (as good as random;
    edge probe). CED judges with the next shard that still trains on something."""
    model_dir = train_saved_model(in_tmp, unlearn_method="sru", agg_epochs=1, n_shards=3)
    model = load_model(model_dir)
    emptied = model.ced_shard(0)
    rows = np.concatenate([model.dataset.user_rows(u) for u in model.shard_map.shard_users(emptied)])
    model.forget(rows[model.dataset.is_training[rows]])
    assert len(model.shard_training_rows(emptied)) == 0
    judge = model.ced_shard(0)
    assert judge not in (0, emptied) and len(model.shard_training_rows(judge)) > 0


def test_a_shard_an_approximate_step_reset_is_checked_by_verify(in_tmp):
    """Under ``shard_unlearning`` a shard left with nothing to train on is reset to its seeded
    initialisation (exact, as retraining on nothing), yet ``--verify`` counted its file among
    ``weights_unchecked``, where SISA's emptied shards count as checked (edge probe): the reset
    is recorded as a training from the seeded weights on no samples."""
    model_dir = train_saved_model(in_tmp, unlearn_method="sisa", shard_unlearning="sruga", n_slices=1,
                                  sruga_epochs=1, n_shards=2)
    before = verify_model(model_dir)
    model = load_model(model_dir)
    users = model.dataset.id2token("user_id", model.shard_map.shard_users(1))
    (in_tmp / "req.csv").write_text("\n".join(users) + "\n")
    run_forget_requests(model_dir, str(in_tmp / "req.csv"), QUIET)
    after = verify_model(model_dir)  # shard 1's file was approximately unlearned by the run's own forget
    assert (after["weights_checked"], after["weights_unchecked"]) == (before["weights_checked"] + 1,
                                                                      before["weights_unchecked"] - 1), (before, after)
    assert load_model(model_dir).trained_on["shard_01_stage_00.pth"]["start"] == "seeded"


@pytest.mark.parametrize("settings", [dict(unlearn_method="sruga"),
                                      dict(unlearn_method="sisa", shard_unlearning="sruga", n_slices=1, n_shards=2)])
def test_a_request_on_weights_reset_for_want_of_data_is_applied_not_unchanged(in_tmp, settings):
    """A model (or shard) an approximate step had reset to its seeded initialisation, every
    training sample forgotten, answered a later request with ``applied_without_change`` and the
    warning to escalate: its weights could not change, yet a seeded initialisation trained on
    nothing holds no influence of anything (approximate-family probe). It is applied, exactly."""
    model_dir = train_saved_model(in_tmp, forget_protocol="none", sruga_epochs=1, **settings)
    model = load_model(model_dir)
    data = model.dataset
    rows = np.flatnonzero(data.is_training & (data.log_position > 0))  # all but each user's first item
    pairs = zip(data.id2token("user_id", data.log_user[rows]), data.id2token("item_id", data.log_item[rows]))
    (in_tmp / "a.csv").write_text("".join(f"{u},{i}\n" for u, i in pairs))
    run_forget_requests(model_dir, str(in_tmp / "a.csv"), dict(QUIET, max_batch=100000))  # one forget
    (last,) = read_audit(model_dir)
    steps = last["approximate"]
    assert steps.get("stopped_by") == "nothing_remains" or all(
        shard["stopped_by"] == "nothing_remains" for shard in steps.values() if isinstance(shard, dict)), steps
    first = np.flatnonzero(data.log_user == 1)[0]  # user 1's first item: on no sample
    (in_tmp / "b.csv").write_text(f"{data.id2token('user_id', 1)},{data.id2token('item_id', data.log_item[first])}\n")
    doc = run_forget_requests(model_dir, str(in_tmp / "b.csv"), QUIET)
    assert doc["requests"]["applied"] == 1 and doc["requests"]["applied_without_change"] == 0, doc["requests"]
    assert verify_model(model_dir)["applied_without_change"] == 0  # nor counted so by --verify


def test_a_row_left_unchanged_then_reset_for_want_of_data_is_no_longer_left(in_tmp):
    """A request naming a row an earlier forget had left unchanged is ``applied_without_change``
    (the model may still hold it); once a later forget reset the model to its seeded
    initialisation for want of data, nothing of it is left, yet the rule still named it (it
    looked for no later forget; approximate-family probe, round 2 of this fix)."""
    model_dir = train_saved_model(in_tmp, unlearn_method="sruga", forget_protocol="none", sruga_epochs=2,
                                  sruga_learning_rate=1.0, utility_floor=1.0, sruga_floor_restarts=0)
    data = load_model(model_dir).dataset
    user = data.id2token("user_id", 1)
    rows = np.flatnonzero(data.log_user == 1)
    (in_tmp / "a.csv").write_text(f"{user},{data.id2token('item_id', data.log_item[rows[2]])}\n")
    assert run_forget_requests(model_dir, str(in_tmp / "a.csv"), QUIET)["requests"]["applied_without_change"] == 1
    rest = np.flatnonzero(data.is_training & (data.log_position > 0) & (np.arange(len(data.log_user)) != rows[2]))
    pairs = zip(data.id2token("user_id", data.log_user[rest]), data.id2token("item_id", data.log_item[rest]))
    (in_tmp / "b.csv").write_text("".join(f"{u},{i}\n" for u, i in pairs))
    run_forget_requests(model_dir, str(in_tmp / "b.csv"), dict(QUIET, max_batch=100000))
    assert read_audit(model_dir)[-1]["approximate"]["stopped_by"] == "nothing_remains"
    (in_tmp / "c.csv").write_text(f"{user}\n")  # its first item, and the row the first forget left
    doc = run_forget_requests(model_dir, str(in_tmp / "c.csv"), QUIET)
    assert doc["requests"]["applied"] == 1 and doc["requests"]["applied_without_change"] == 0, doc["requests"]


@pytest.mark.parametrize("settings", [dict(unlearn_method="sruga"),
                                      dict(unlearn_method="sisa", shard_unlearning="sruga", n_slices=1, n_shards=2)])
def test_a_row_left_unchanged_then_reset_by_its_own_request_s_forget_is_applied(in_tmp, settings):
    """A request naming a row an earlier forget left unchanged, answered by the very forget that
    resets the weights for want of data, was still ``applied_without_change`` and counted so by
    ``--verify``: only a *later* reset was looked for (r9round2 probe)."""
    model_dir = train_saved_model(in_tmp, forget_protocol="none", sruga_epochs=1, **settings)
    data = load_model(model_dir).dataset
    first = np.flatnonzero(data.log_user == 1)[0]  # user 1's first item: on no sample, left unchanged
    (in_tmp / "a.csv").write_text(f"{data.id2token('user_id', 1)},{data.id2token('item_id', data.log_item[first])}\n")
    assert run_forget_requests(model_dir, str(in_tmp / "a.csv"), QUIET)["requests"]["applied_without_change"] == 1
    users = data.id2token("user_id", np.unique(data.log_user))
    (in_tmp / "b.csv").write_text("".join(f"{u}\n" for u in users))  # everyone: nothing remains
    doc = run_forget_requests(model_dir, str(in_tmp / "b.csv"), dict(QUIET, max_batch=100000))
    last = read_audit(model_dir)[-1]
    assert last["unchanged_request_ids"] == [], last["unchanged_request_ids"]
    assert doc["requests"]["applied_without_change"] == 0, doc["requests"]
    assert verify_model(model_dir)["applied_without_change"] == 1  # the first request's line alone


def test_a_single_model_reset_for_want_of_data_is_checked_by_verify(in_tmp):
    """A single approximate model with nothing left to train on is its seeded initialisation
    (exact), yet ``--verify`` counted it among ``weights_unchecked`` (edge probe): it is checked
    against a freshly seeded one, and other weights there are an error."""
    import torch

    model_dir = train_saved_model(in_tmp, unlearn_method="sruga", forget_protocol="none", sruga_epochs=1)
    assert (verify_model(model_dir)["weights_checked"], verify_model(model_dir)["weights_unchecked"]) == (0, 1)
    data = load_model(model_dir).dataset
    (in_tmp / "all.csv").write_text("".join(f"{u}\n" for u in data.id2token("user_id", np.arange(1, data.user_num))))
    run_forget_requests(model_dir, str(in_tmp / "all.csv"), dict(QUIET, max_batch=100000))
    report = verify_model(model_dir)
    assert (report["weights_checked"], report["weights_unchecked"]) == (1, 0), report
    model = load_model(model_dir)
    with torch.no_grad():
        next(model.model.parameters()).add_(1.0)
    random_state = torch.random.get_rng_state()
    checked, unchecked, stale = model.check_trained_on()
    assert (checked, unchecked) == (1, 0) and stale and "model.pth" in stale[0]
    assert torch.equal(torch.random.get_rng_state(), random_state)  # the check left the random state as it was


def test_an_audit_line_made_to_claim_a_reset_for_want_of_data_is_caught(in_tmp):
    """A reset for want of data makes a line's unchanged requests plain ``applied``; a line edited
    to claim one (``stopped_by: nothing_remains``, its unchanged list emptied, the ledger to match)
    passed ``--verify``, though training samples remained and a later line's step ran (round 3 of
    probing): a reset claimed where samples remain, or followed by a step, is an edit."""
    import json

    model_dir = train_saved_model(in_tmp, unlearn_method="sruga", forget_protocol="none", sruga_epochs=2,
                                  sruga_learning_rate=1.0, utility_floor=1.0, sruga_floor_restarts=0)
    data = load_model(model_dir).dataset
    for k in (1, 2, 3):
        (in_tmp / f"{k}.csv").write_text(f"{data.id2token('user_id', k)}\n")
        run_forget_requests(model_dir, str(in_tmp / f"{k}.csv"), QUIET)
    audit_path, ledger_path = os.path.join(model_dir, "audit.jsonl"), os.path.join(model_dir, "requests.jsonl")
    lines = [json.loads(line) for line in open(audit_path)]
    (rid,) = lines[1]["unchanged_request_ids"]
    lines[1]["approximate"]["stopped_by"] = "nothing_remains"
    lines[1]["unchanged_request_ids"] = []
    with open(audit_path, "w") as f:
        f.write("".join(json.dumps(line) + "\n" for line in lines))
    events = [json.loads(line) for line in open(ledger_path)]
    for event in events:
        if event["id"] == rid and event["status"] == "applied_without_change":
            event["status"] = "applied"
    with open(ledger_path, "w") as f:
        f.write("".join(json.dumps(event) + "\n" for event in events))
    with pytest.raises(UnlearnError, match="reset the model for want of data"):
        verify_model(model_dir)


def test_an_audit_line_whose_unchanged_list_was_deleted_is_caught(in_tmp):
    """A request line's ``unchanged_request_ids`` key deleted, with the ledger edited to match,
    passed ``--verify`` (a line without it was read as one saved before the key; round 3 of
    probing): a request line after one that holds the key must hold it too."""
    import json

    model_dir = train_saved_model(in_tmp, unlearn_method="sruga", forget_protocol="none", sruga_epochs=2,
                                  sruga_learning_rate=1.0, utility_floor=1.0, sruga_floor_restarts=0)
    data = load_model(model_dir).dataset
    for k in (1, 2, 3):  # line 2 is not the live line (whose own copy the version holds)
        (in_tmp / f"{k}.csv").write_text(f"{data.id2token('user_id', k)}\n")
        run_forget_requests(model_dir, str(in_tmp / f"{k}.csv"), QUIET)
    audit_path = os.path.join(model_dir, "audit.jsonl")
    lines = [json.loads(line) for line in open(audit_path)]
    del lines[1]["unchanged_request_ids"]
    with open(audit_path, "w") as f:
        f.write("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(UnlearnError, match="holds no unchanged_request_ids, which line 1 holds"):
        verify_model(model_dir)


# --- 5. honest approximate audits ---------------------------------------------------------
def test_an_approximate_forget_that_changed_nothing_says_so(in_tmp, capsys):
    # a learning rate that wrecks validation NDCG at once and a floor of 1.0: SRUGA restores the
    # starting weights at its first check (no restart at a smaller rate, which may rise above it)
    model_dir = train_saved_model(in_tmp, model="SASRec", unlearn_method="sruga", sruga_learning_rate=1.0,
                                  utility_floor=1.0, sruga_epochs=2, sruga_floor_restarts=0)
    audit = read_audit(model_dir)
    assert audit[0]["changed"] is False and audit[0]["approximate"]["stopped_by"] == "utility_floor"
    assert audit[0]["approximate"]["forget_hit@10_after"] == audit[0]["approximate"]["forget_hit@10_before"]
    model = load_model(model_dir)
    users = [u for u in model.dataset.id2token("user_id", np.arange(1, model.dataset.user_num))
             if not np.isin(model.dataset.user_rows(model.dataset.field2token_id["user_id"][u]), model.forgotten).any()]
    (in_tmp / "req.csv").write_text(f"{users[0]}\n")
    capsys.readouterr()
    doc = run_forget_requests(model_dir, str(in_tmp / "req.csv"), QUIET)
    assert doc["requests"]["applied_without_change"] == 1 and doc["requests"]["applied"] == 0
    # the output said so only inside the counts' dict; now in a line of its own
    out = capsys.readouterr().out
    assert "warning: 1 request was recorded as forgotten, but the model did not change" in out, out
    entry = read_audit(model_dir)[-1]
    assert entry["changed"] is False and entry["interactions"] > 0
    assert set(entry["approximate"]) >= {"epochs_run", "stopped_by", "forget_hit@10_before", "forget_hit@10_after"}
    statuses = [e["status"] for e in ledger_events(model_dir) if e["status"] != "queued"]
    assert statuses == ["applied_without_change"]
    assert verify_model(model_dir)["applied_without_change"] == 2
    # a request for a pair the training run's unchanged forget recorded as forgotten: not plain applied
    row = model.forgotten[model.dataset.is_training[model.forgotten]][0]
    pair = (model.dataset.id2token("user_id", model.dataset.log_user[row]),
            model.dataset.id2token("item_id", model.dataset.log_item[row]))
    (in_tmp / "again.csv").write_text("%s,%s\n" % pair)
    doc = run_forget_requests(model_dir, str(in_tmp / "again.csv"), QUIET, verbose=False)
    assert doc["requests"]["applied_without_change"] == 1 and doc["requests"]["applied"] == 0
    last = [e for e in ledger_events(model_dir) if e["status"] != "queued"][-1]
    assert last["status"] == "applied_without_change" and last["already_forgotten"] is True


def test_a_run_whose_approximate_forget_changed_nothing_says_so_under_its_table(in_tmp, capsys):
    """A run's row whose SRUGA step stopped before its first kept update (``changed: false`` in
    ``results.json``) was printed like any forget, with no word under the table (found by
    probing; SPEC section 6: never reported as an ordinary forget). It now gets a warning line."""
    from recbole_unlearn import run_recbole_unlearn

    doc = run_recbole_unlearn("SASRec", config_dict=tiny_dict(
        unlearn_method="sruga", sruga_learning_rate=1.0, utility_floor=1.0, sruga_epochs=2, sruga_floor_restarts=0,
        include_retrain=False, results_dir=str(in_tmp / "r")))
    row = next(r for r in doc["rows"] if r["method"] == "sruga")
    assert row["changed"] is False
    out = capsys.readouterr().out
    assert "warning: sruga (stopped_by: utility_floor) did not change the model" in out, out


@contextmanager
def _stopped_after_the_audit_line(monkeypatch):
    """Within the block, a forget stops (``KeyboardInterrupt``) right after its audit line is
    appended, before its ledger lines: as a process stopped or killed there."""
    from recbole_unlearn.serving import apply

    real_fault_point = apply.fault_point

    def stop_after_the_audit_line(name):
        real_fault_point(name)
        if name == "audit_appended":
            raise KeyboardInterrupt

    monkeypatch.setattr(apply, "fault_point", stop_after_the_audit_line)
    try:
        yield
    finally:
        monkeypatch.setattr(apply, "fault_point", real_fault_point)


@pytest.mark.parametrize("next_file", ["the same file", "another file"])
def test_a_recovered_ledger_line_says_the_forget_changed_nothing(in_tmp, monkeypatch, next_file):
    """A run stopped after its audit line went in and before its ledger line: the next run writes
    the ledger line (``recovered``) from the audit log, and wrote ``applied`` where the forget
    changed nothing (the audit line says ``changed: false``; found by probing). It now writes
    ``applied_without_change``, as the run itself would have."""
    from recbole_unlearn.serving.stream import RequestsInterrupted

    model_dir = train_saved_model(in_tmp, model="SASRec", unlearn_method="sruga", sruga_learning_rate=1.0,
                                  utility_floor=1.0, sruga_epochs=2, sruga_floor_restarts=0)
    model = load_model(model_dir)
    users = [u for u in model.dataset.id2token("user_id", np.arange(1, model.dataset.user_num))
             if not np.isin(model.dataset.user_rows(model.dataset.field2token_id["user_id"][u]), model.forgotten).any()]
    (in_tmp / "a.csv").write_text(f"{users[0]}\n")
    (in_tmp / "b.csv").write_text(f"{users[1]}\n")
    with _stopped_after_the_audit_line(monkeypatch), pytest.raises(RequestsInterrupted):
        run_forget_requests(model_dir, str(in_tmp / "a.csv"), QUIET)
    assert read_audit(model_dir)[-1]["changed"] is False
    run_forget_requests(model_dir, str(in_tmp / ("a.csv" if next_file == "the same file" else "b.csv")), QUIET)
    last = {}
    for event in ledger_events(model_dir):
        last[(os.path.basename(event["file"]), event["line"])] = event
    recovered = last[("a.csv", 1)]
    assert recovered.get("recovered") is True and recovered["status"] == "applied_without_change", recovered
    assert verify_model(model_dir)["requests_not_final"] == 0


# --- 6. SRUGA histories across requests ---------------------------------------------------
@pytest.mark.parametrize("method", ["sruga", "sisa-sruga"])
def test_sruga_histories_exclude_rows_forgotten_by_earlier_requests(in_tmp, monkeypatch, method):
    settings = dict(sruga_epochs=1)
    if method == "sisa-sruga":
        settings.update(unlearn_method="sisa", shard_unlearning="sruga", n_slices=1)
    else:
        settings.update(unlearn_method="sruga")
    model_dir = train_saved_model(in_tmp, model="SASRec", **settings)
    model = load_model(model_dir)
    ds = model.dataset
    user = next(u for u in range(1, ds.user_num)
                if ds.is_training[ds.user_rows(u)].sum() >= 8 and not np.isin(ds.user_rows(u), model.forgotten).any())
    rows = ds.user_rows(user)[ds.is_training[ds.user_rows(user)]]
    early, late = int(rows[3]), int(rows[6])
    token = lambda field, ids: str(ds.id2token(field, ids))
    user_token = token("user_id", user)
    (in_tmp / "first.csv").write_text(f"{user_token},{token('item_id', ds.log_item[early])}\n")
    (in_tmp / "second.csv").write_text(f"{user_token},{token('item_id', ds.log_item[late])}\n")
    seen = []
    original = sruga_trainer.ascent_samples

    def recording(dataset, forget_set, history_keep=None):
        samples = original(dataset, forget_set, history_keep)
        seen.append((forget_set.targets.copy(), samples))
        return samples

    monkeypatch.setattr(sruga_trainer, "ascent_samples", recording)
    for name in ("first.csv", "second.csv"):
        run_forget_requests(model_dir, str(in_tmp / name), QUIET, verbose=False)
    targets, samples = seen[-1]
    assert targets.tolist() == [late]
    history = samples["item_id_list"][0][: int(samples["item_length"][0])].tolist()
    assert int(ds.log_item[early]) not in history  # forgotten by the first request
    assert int(ds.log_item[int(rows[5])]) in history  # a kept item is still there


# --- layout and entry points ----------------------------------------------------------------
def test_python_m_runs_the_cli(in_tmp):
    proc = subprocess.run([sys.executable, "-m", "recbole_unlearn", "--unlearn_method=nope"], cwd=in_tmp,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: unknown unlearning method")


LAYERS = {  # package -> layer; a module may import only its own layer or lower ones
    "cli": 6, "__main__": 6, "quick_start": 5, "benchmark": 5, "unlearn": 4, "serving": 4,
    "unlearnable": 3, "model": 2, "trainer": 2, "data": 2, "evaluator": 2, "config": 2,
    "utils": 1, "version": 1, "compat": 1,
}


def test_imports_only_run_downwards():
    import ast

    package = os.path.join(ROOT, "recbole_unlearn")
    offenders = []
    for folder, _, names in os.walk(package):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, package)
            top = rel.split(os.sep)[0].removesuffix(".py")
            if top == "__init__":
                continue  # the package root re-exports the public API
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                modules = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    modules = [node.module]
                elif isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                for module in modules:
                    parts = module.split(".")
                    if parts[0] == "recbole_unlearn" and len(parts) > 1 and parts[1] in LAYERS:
                        if LAYERS[parts[1]] > LAYERS[top]:
                            offenders.append(f"{rel} imports {module}")
    assert not offenders, offenders


# --- extra deletions and what was forgotten before (found by probing) -----------------------
def _pair_lines(model, rows) -> str:
    dataset = model.dataset
    return "".join(f"{dataset.id2token('user_id', dataset.log_user[r])},{dataset.id2token('item_id', dataset.log_item[r])}\n"
                   for r in rows)


def _user_with_distinct_items(model, n: int):
    """A user with at least ``n`` training rows whose items are all distinct; their training rows."""
    dataset = model.dataset
    for user in range(1, dataset.user_num):
        rows = dataset.user_rows(user)
        rows = rows[dataset.is_training[rows]]
        items = dataset.log_item[rows]
        if len(rows) >= n and len(np.unique(items)) == len(items):
            return rows
    raise AssertionError("no such user in ml-tiny")


@pytest.fixture(scope="module")
def ned_deployed(tmp_path_factory):
    base = tmp_path_factory.mktemp("ned")
    return train_saved_model(base, unlearn_method="sisa", extra_deletion="ned", del_num=1, forget_protocol="none")


def test_extra_deletions_never_pick_rows_forgotten_earlier(ned_deployed, in_tmp):
    """NED picked a row an earlier request had already forgotten, so two requests sent one at a
    time forgot fewer rows than the same requests in one file (and the audit line counted the
    stale pick in ``extra_deleted``); and a request for an already-forgotten row, recorded
    ``already_forgotten``, still forgot another row of the user and made a new version (found by
    probing). Candidates now leave out every row forgotten before, and a target forgotten before
    gets no extras."""
    one_by_one, together = str(in_tmp / "a"), str(in_tmp / "b")
    shutil.copytree(ned_deployed, one_by_one)
    shutil.copytree(ned_deployed, together)
    rows = _user_with_distinct_items(load_model(ned_deployed), 6)
    # the second request's target is just after the first's: the row before it is forgotten
    model = load_model(ned_deployed)
    (in_tmp / "r1.csv").write_text(_pair_lines(model, [rows[-2]]))
    (in_tmp / "r2.csv").write_text(_pair_lines(model, [rows[-1]]))
    (in_tmp / "r12.csv").write_text(_pair_lines(model, [rows[-2], rows[-1]]))
    run_forget_requests(one_by_one, str(in_tmp / "r1.csv"), QUIET, verbose=False)
    run_forget_requests(one_by_one, str(in_tmp / "r2.csv"), QUIET, verbose=False)
    run_forget_requests(together, str(in_tmp / "r12.csv"), QUIET, verbose=False)
    expected = sorted(int(r) for r in rows[-4:])  # both targets and the two remaining rows before them
    assert sorted(load_model(together).forgotten.tolist()) == expected
    assert sorted(load_model(one_by_one).forgotten.tolist()) == expected
    assert [e["extra_deleted"] for e in read_audit(one_by_one)] == [1, 1]

    # the row the first request removed as an extra, requested on its own: nothing new to forget
    versions = sorted(os.listdir(one_by_one))
    (in_tmp / "r3.csv").write_text(_pair_lines(model, [rows[-3]]))
    doc = run_forget_requests(one_by_one, str(in_tmp / "r3.csv"), QUIET, verbose=False)
    assert doc["requests"]["already_forgotten"] == 1
    assert sorted(load_model(one_by_one).forgotten.tolist()) == expected
    assert sorted(os.listdir(one_by_one)) == versions  # no new version
    entry = read_audit(one_by_one)[-1]
    assert entry["interactions"] == 0 and entry["extra_deleted"] == 0
    verify_model(one_by_one)


def test_ced_judges_a_batch_with_shards_that_hold_none_of_its_rows_where_there_is_one(in_tmp):
    """CED judged a target of shard k with shard k+1's live sub-model even when that shard held
    rows forgotten in the same batch, so the extras of one user were chosen by a model that had
    seen another user's forgotten interactions, and the result depended on how requests were
    batched (found by probing). The judge is now the first shard after k holding no row of the
    batch; only a batch that touches every shard falls back to k+1 (README)."""
    model_dir = train_saved_model(in_tmp, unlearn_method="sisa", n_shards=3, extra_deletion="ced", del_num=1,
                                  forget_protocol="none")
    model = load_model(model_dir)
    dataset = model.dataset

    def last_training_row(shard):
        rows = dataset.user_rows(model.shard_map.shard_users(shard)[0])
        return rows[dataset.is_training[rows]][-1:]

    rows = np.concatenate([last_training_row(0), last_training_row(1)])
    judged = []
    real = model.shard_item_embeddings
    model.shard_item_embeddings = lambda shard: judged.append(shard) or real(shard)
    from recbole_unlearn.data.forget import ForgetSet
    model.expand(ForgetSet(rows, source="test"))
    assert judged == [2]  # shard 1 holds the batch's other target

    judged.clear()
    every = np.concatenate([rows, last_training_row(2)])
    model.expand(ForgetSet(every, source="test"))
    assert sorted(judged) == [0, 1, 2]  # no shard is free of the batch: each owner's next one


def test_a_forgets_seconds_include_choosing_its_extra_deletions(sisa_copy, in_tmp, monkeypatch):
    """A forget's ``seconds`` (the audit line's and a row's) started after the extra deletions
    were chosen (found by probing: README says ``seconds`` is the wall time to produce the
    state, and CED's choice grows with the forget set). They now count."""
    from recbole_unlearn.unlearnable.sharded import ShardedUnlearnableModel

    real = ShardedUnlearnableModel.expand

    def slow_expand(self, forget_set):
        time.sleep(3.0)
        return real(self, forget_set)

    monkeypatch.setattr(ShardedUnlearnableModel, "expand", slow_expand)
    (in_tmp / "r.csv").write_text(f"{load_model(sisa_copy).dataset.id2token('user_id', 5)}\n")
    run_forget_requests(sisa_copy, str(in_tmp / "r.csv"), QUIET, verbose=False)
    entry = read_audit(sisa_copy)[-1]
    assert entry["interactions"] > 0 and entry["seconds"] >= 3.0


def _watched_requests(model, path):
    from recbole_unlearn.serving.request_files import file_requests

    return file_requests(str(path), model.dataset, 1000, 1000, strict=False)[1]


def test_a_watcher_learns_what_other_processes_finished_and_queues_and_rejects_in_one_append(sisa_copy, in_tmp,
                                                                                             monkeypatch):
    """A watcher read the folder's finished requests once, at its start. Given the same file
    after another process had answered it, it queued both requests again, rejected the bad one a
    second time and, for the applied one, left its ledger ending in ``queued`` after ``applied``
    (found by probing). It also wrote every rejection as an append of its own after the queued
    lines: a stop in between left bad lines queued for good, and 20,000 bad lines took 85 s. A
    watcher now reads what is final before it queues a file, and writes a file's queued and
    rejected lines in one append."""
    from recbole_unlearn.serving import open_store
    from recbole_unlearn.serving.batcher import RequestBatcher
    from recbole_unlearn.serving.ledger import FINAL_STATUSES

    model = load_model(sisa_copy)
    watcher = RequestBatcher(open_store(sisa_copy), load_model(sisa_copy), 10, 0.0, "requests:inbox")
    (in_tmp / "x.csv").write_text(f"{model.dataset.id2token('user_id', 5)}\n99999\n")
    other = RequestBatcher(open_store(sisa_copy), load_model(sisa_copy), 10, 0.0, "requests:other")
    other.submit(_watched_requests(model, in_tmp / "x.csv"))
    other.pump(drain=True)
    assert other.summary.outcomes["applied"] == 1 and other.summary.outcomes["rejected"] == 1
    before = ledger_events(sisa_copy)

    watcher.submit(_watched_requests(model, in_tmp / "x.csv"))
    assert watcher.summary.skipped == 2 and watcher.pending == 0
    assert ledger_events(sisa_copy) == before

    from recbole_unlearn.serving import jsonl
    appends = []
    real_append = jsonl.append_records
    monkeypatch.setattr(jsonl, "append_records", lambda path, records: appends.append(list(records)) or
                        real_append(path, appends[-1]))
    (in_tmp / "y.csv").write_text("".join(f"9999{i}\n" for i in range(5)) + f"{model.dataset.id2token('user_id', 6)}\n")
    watcher.submit(_watched_requests(model, in_tmp / "y.csv"))
    assert len(appends) == 1 and [e["status"] for e in appends[0]] == ["queued"] * 6 + ["rejected"] * 5
    watcher.pump(drain=True)
    last = {}
    for event in ledger_events(sisa_copy):
        last[event["id"]] = event["status"]
    assert all(status in FINAL_STATUSES for status in last.values()), last
    verify_model(sisa_copy)


@pytest.mark.parametrize("below", ["", "sub"])
def test_a_request_run_refuses_a_results_dir_that_is_a_file_before_it_forgets(sisa_copy, in_tmp, below):
    """With ``--results_dir`` a file (or below one) a request run applied its requests, made the
    new version live, and then ended in ``error: [Errno 17] File exists`` (found by probing; the
    README lists it among the bad input refused before anything is written)."""
    (in_tmp / "victim.txt").write_text("important")
    (in_tmp / "r.csv").write_text(f"{load_model(sisa_copy).dataset.id2token('user_id', 5)}\n")
    before = snapshot(sisa_copy)
    with pytest.raises(UnlearnError, match="is a file, not a folder"):
        run_forget_requests(sisa_copy, str(in_tmp / "r.csv"),
                            dict(QUIET, results_dir=os.path.join(str(in_tmp / "victim.txt"), below)), verbose=False)
    assert snapshot(sisa_copy) == before and (in_tmp / "victim.txt").read_text() == "important"


def test_the_lock_never_writes_through_a_link_in_the_folder(sisa_copy, in_tmp):
    """Taking the folder's lock wrote its pid through a symlinked ``.lock.pid``: ``--verify`` on a
    folder from someone else overwrote any file the user could write (found by probing)."""
    from recbole_unlearn.serving.lock import LOCK_PID

    (in_tmp / "victim.txt").write_text("important data")
    os.symlink(str(in_tmp / "victim.txt"), os.path.join(sisa_copy, LOCK_PID))
    verify_model(sisa_copy)
    assert (in_tmp / "victim.txt").read_text() == "important data"


def test_a_line_that_is_not_utf8_is_rejected_on_its_own_in_a_watched_file(sisa_copy, in_tmp):
    """One byte that was not UTF-8, even in a comment, rejected a whole watched file as one
    pseudo-request, its valid lines never recorded (found by probing; README: in a watched
    folder a bad line is rejected on its own and the others go on). Comments are skipped
    undecoded; a request line that is not UTF-8 is rejected alone. A file given with --forget
    is still all or nothing, its error naming the line."""
    model = load_model(sisa_copy)
    user = model.dataset.id2token("user_id", 5)
    (in_tmp / "w.csv").write_bytes(b"# requested by Jos\xe9\n" + f"{user}\n".encode() + b"caf\xe9\n")
    requests = _watched_requests(model, in_tmp / "w.csv")
    assert [(r.line, r.error is None) for r in requests] == [(2, True), (3, False)]
    assert requests[1].error == "request w.csv:3 is not UTF-8 text"
    with pytest.raises(UnlearnError, match=r"line 3: is not UTF-8 text"):
        run_forget_requests(sisa_copy, str(in_tmp / "w.csv"), QUIET, verbose=False)


def test_max_batch_one_gives_each_shard_group_one_request_per_version_in_order(sisa_copy, in_tmp):
    """README said ``max_batch=1`` applies requests one by one in order; with two shards a
    version took one request of each shard group, so a later line could go live before an
    earlier one (found by probing). The README now says what it does, which this checks."""
    model = load_model(sisa_copy)
    shard_users = [model.shard_map.shard_users(shard) for shard in (0, 1)]
    tokens = [model.dataset.id2token("user_id", int(u)) for u in (shard_users[0][0], shard_users[0][1], shard_users[1][0])]
    (in_tmp / "r.csv").write_text("".join(f"{t}\n" for t in tokens))  # shard 0, shard 0, shard 1
    run_forget_requests(sisa_copy, str(in_tmp / "r.csv"), dict(QUIET, max_batch=1), verbose=False)
    lines = [sorted(int(rid.split(":")[1]) for rid in e["request_ids"]) for e in read_audit(sisa_copy)
             if "request_ids" in e]
    assert lines == [[1, 3], [2]]


def test_an_error_naming_a_path_with_a_newline_stays_one_line(sisa_copy, in_tmp, capsys):
    """A request file whose path held a newline split the ``error:`` line in two (found by
    probing). Control characters in an error are now written escaped."""
    from recbole_unlearn.cli import main

    capsys.readouterr()
    assert main([f"--model_dir={sisa_copy}", f"--forget={in_tmp}/nl\nname.csv", "--state=ERROR"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "nl\\nname.csv" in err, err


def test_a_watcher_picks_up_requests_another_run_left_queued_when_it_reads_a_file(sisa_copy, in_tmp):
    """A run killed after queuing its requests left them for the next run to start; a watcher
    already running applied later files but never those, so they waited behind newer requests
    until the service restarted (found by probing). A watcher now queues them again whenever it
    reads a new file."""
    from recbole_unlearn.serving import open_store
    from recbole_unlearn.serving.batcher import RequestBatcher

    model = load_model(sisa_copy)
    watcher = RequestBatcher(open_store(sisa_copy), load_model(sisa_copy), 10, 0.0, "requests:inbox")
    (in_tmp / "killed.csv").write_text(f"{model.dataset.id2token('user_id', 7)}\n")
    killed = RequestBatcher(open_store(sisa_copy), load_model(sisa_copy), 10, 0.0, "requests:killed.csv")
    killed.submit(_watched_requests(model, in_tmp / "killed.csv"))  # queued, then the run is killed
    (in_tmp / "new.csv").write_text(f"{model.dataset.id2token('user_id', 8)}\n")
    watcher.submit(_watched_requests(model, in_tmp / "new.csv"))
    assert watcher.summary.resumed == 1 and watcher.pending == 2
    watcher.pump(drain=True)
    last = {}
    for event in ledger_events(sisa_copy):
        last[event["id"]] = event["status"]
    assert list(last.values()).count("queued") == 0, last
    assert verify_model(sisa_copy)["requests_not_final"] == 0


def test_a_request_runs_results_say_what_its_forget_metrics_were_measured_on(sisa_copy, in_tmp):
    """A request run's ``results.json`` held ``{"source": "r.csv", "forgotten_total": n}``, not
    README's ``forget_set`` (source ``requests:<file>``, interactions, users, forget samples), so a
    forget Hit@10 of 1.0 on one sample could not be told from one on many (found by probing)."""
    model = load_model(sisa_copy)
    (in_tmp / "r.csv").write_text(f"{model.dataset.id2token('user_id', 5)}\n")
    doc = run_forget_requests(sisa_copy, str(in_tmp / "r.csv"), QUIET, verbose=False)
    after = load_model(sisa_copy)
    facts = doc["forget_set"]
    assert facts["source"] == "requests:r.csv"
    assert facts["interactions"] == facts["forgotten_total"] == len(after.forgotten)
    assert facts["users"] == len(np.unique(after.dataset.log_user[after.forgotten]))
    assert facts["forget_samples"] > 0


def test_a_request_run_refuses_a_results_dir_it_cannot_write_before_it_forgets(sisa_copy, in_tmp):
    """A results_dir name too long for the file system (or on a read-only mount) failed after the
    forget went live, with only an OSError line (found by probing today's results_dir check,
    which covered a file only). The folder is now tried before anything is forgotten."""
    (in_tmp / "r.csv").write_text(f"{load_model(sisa_copy).dataset.id2token('user_id', 5)}\n")
    before = snapshot(sisa_copy)
    with pytest.raises(UnlearnError, match="cannot be written"):
        run_forget_requests(sisa_copy, str(in_tmp / "r.csv"), dict(QUIET, results_dir=str(in_tmp / ("a" * 300))),
                            verbose=False)
    assert snapshot(sisa_copy) == before
    assert "a" * 300 not in os.listdir(in_tmp)


def test_a_side_file_added_to_the_dataset_folder_is_refused_before_anything_is_forgotten(in_tmp):
    """A ``.item`` file added beside the unchanged ``.inter`` (RecBole loads it and drops the rows
    of items it does not list) passed the ``.inter`` SHA-256 check, and the folder's recorded
    forgotten rows then named other interactions: a forgotten pair was trained on again (found
    by probing). Every atomic file RecBole reads is now recorded, and a change is refused."""
    data = in_tmp / "data"
    from conftest import FIXTURES

    shutil.copytree(os.path.join(FIXTURES, "ml-tiny"), data / "ml-tiny")
    model_dir = train_saved_model(in_tmp, data_path=str(data), load_col=None, forget_protocol="none")
    model = load_model(model_dir)
    items = model.dataset.id2token("item_id", np.arange(2, model.dataset.item_num)).tolist()  # all but one
    (data / "ml-tiny" / "ml-tiny.item").write_text("item_id:token\n" + "".join(f"{i}\n" for i in items))
    (in_tmp / "r.csv").write_text(f"{model.dataset.id2token('user_id', 5)}\n")
    before = snapshot(model_dir)
    with pytest.raises(UnlearnError, match="ml-tiny.item"):
        run_forget_requests(model_dir, str(in_tmp / "r.csv"), QUIET, verbose=False)
    assert snapshot(model_dir) == before


def test_the_results_dir_try_covers_the_run_folders_name_and_leaves_nothing(sisa_copy, in_tmp):
    """Probing the try found two gaps: a results_dir whose path left room for the try's file but
    not for the run folder written at the end (PATH_MAX) still failed after the forget went live;
    and ``a/b/../../res`` left ``a/b`` behind after a refused run."""
    (in_tmp / "r.csv").write_text(f"{load_model(sisa_copy).dataset.id2token('user_id', 5)}\n")
    deep = in_tmp
    while len(str(deep)) < 4096 - 60 - 251:
        deep = deep / ("d" * 250)
    deep.mkdir(parents=True)
    deep = deep / ("d" * (4096 - 40 - len(str(deep))))  # room for a short file name, not for the run folder
    before = snapshot(sisa_copy)
    with pytest.raises(UnlearnError, match="cannot be written"):
        run_forget_requests(sisa_copy, str(in_tmp / "r.csv"), dict(QUIET, results_dir=str(deep)), verbose=False)
    assert snapshot(sisa_copy) == before

    (in_tmp / "bad.csv").write_text("no-such-user\n")
    with pytest.raises(UnlearnError, match="unknown user"):
        run_forget_requests(sisa_copy, str(in_tmp / "bad.csv"),
                            dict(QUIET, results_dir=str(in_tmp / "a" / "b" / ".." / ".." / "res")), verbose=False)
    assert not (in_tmp / "a").exists() and not (in_tmp / "res").exists()


def test_a_redraw_that_would_leave_a_shard_too_small_keeps_the_partition_and_still_forgets(in_tmp, monkeypatch):
    """A folder saved before redraw_partition with interaction balance needed n_slices 1 failed
    every request once a redraw left a shard with fewer users than slices, and its settings could
    not be changed (found by probing). Such a forget now keeps the partition (said in the audit
    line and a warning) and forgets by retraining the owning shards, as without redraw."""
    from recbole_unlearn.data.partition import ShardTooSmall
    from recbole_unlearn.unlearnable.sharded import ShardedUnlearnableModel

    model_dir = train_saved_model(in_tmp, unlearn_method="sisa", partition_balance="interactions",
                                  redraw_partition=True, forget_protocol="none")
    kept = load_model(model_dir).shard_map.user_shard.copy()

    def too_small(*args, **kwargs):
        raise ShardTooSmall("shard 1 holds 3 users, fewer than n_slices = 4")

    monkeypatch.setattr(ShardedUnlearnableModel, "train", classmethod(too_small))
    (in_tmp / "r.csv").write_text(f"{load_model(model_dir).dataset.id2token('user_id', 5)}\n")
    doc = run_forget_requests(model_dir, str(in_tmp / "r.csv"), QUIET, verbose=False)
    assert doc["requests"]["applied"] == 1
    entry = read_audit(model_dir)[-1]
    assert entry["training"]["partition_redrawn"] is False and "fewer than n_slices" in entry["training"]["partition_kept"]
    assert len(entry["shards_retrained"]) == 1
    assert np.array_equal(load_model(model_dir).shard_map.user_shard, kept)
    verify_model(model_dir)


def test_no_other_process_records_a_request_between_its_audit_line_and_its_ledger_line(sisa_copy, in_tmp,
                                                                                     monkeypatch):
    """A batch appended its audit line and released the folder's lock before writing its ledger
    lines; a process starting in between recorded the same requests ``applied`` (recovered from the
    audit log), and then the first wrote them again: two ``applied`` lines per request (found when
    two processes answered files on one folder in CI). The ledger lines are now written under the
    same hold as the audit line, so the other process waits."""
    from recbole_unlearn.serving import batcher as batcher_module
    from recbole_unlearn.serving.store import open_store

    real_apply = batcher_module.apply_forget
    other = []

    def another_process_starts_in_between(*args, **kwargs):
        outcome = real_apply(*args, **kwargs)
        store = open_store(sisa_copy, {"lock_timeout_s": 0.2})
        try:
            batcher_module.RequestBatcher(store, store.load(), 100, 3600, "requests:other")
            other.append("started")
        except UnlearnError as e:
            other.append(str(e))
        return outcome

    monkeypatch.setattr(batcher_module, "apply_forget", another_process_starts_in_between)
    (in_tmp / "a.csv").write_text("2,292\n")
    run_forget_requests(sisa_copy, str(in_tmp / "a.csv"), QUIET, verbose=False)
    applied = [e["id"] for e in ledger_events(sisa_copy) if e["status"] == "applied"]
    assert len(applied) == len(set(applied)) == 1, applied
    assert other and "is busy" in other[0], other


def test_a_forget_says_which_remaining_rows_only_forgotten_lines_kept_past_a_count_filter(tmp_path, capsys):
    """RecBole's count filters count every line of the file, forgotten ones too: a remaining row
    kept only because a forgotten line lifted its user's count over ``user_inter_num_interval``
    stays trained on (README), but nothing said when that happened. User 34 has exactly 20
    interactions; with ``[20,inf)`` forgetting one leaves 19 that a fit on the file without it
    would drop, 17 of them trained on (2 are validation and test targets, which a probe found
    counted): the request run warns and the audit line counts them. Forgetting a whole user
    leaves only that user's targets: no warning."""
    model_dir = train_saved_model(tmp_path, forget_protocol="none", user_inter_num_interval="[20,inf)")
    model = load_model(model_dir)
    item = model.dataset.id2token("item_id", model.dataset.log_item[model.dataset.user_rows(
        model.dataset.token2id("user_id", "34"))[0]])
    (tmp_path / "req.csv").write_text(f"34,{item}\n")
    run_forget_requests(model_dir, str(tmp_path / "req.csv"), {"state": "ERROR", "results_dir": str(tmp_path / "r")})
    assert read_audit(model_dir)[-1]["kept_by_count_filters"] == 17
    out = capsys.readouterr().out
    assert "warning: 17 remaining interactions are trained on only because forgotten lines" in out, out
    assert verify_model(model_dir)["kept_by_count_filters"] == 17
    (tmp_path / "req2.csv").write_text("36\n")  # a whole user (also 20 interactions)
    run_forget_requests(model_dir, str(tmp_path / "req2.csv"), {"state": "ERROR", "results_dir": str(tmp_path / "r")})
    assert read_audit(model_dir)[-1]["kept_by_count_filters"] == 17  # user 34's rows still; none of 36's


def test_every_row_of_a_run_says_how_many_rows_only_forgotten_lines_kept(tmp_path, capsys):
    """The count-filter warning above reached the audit line and the request run's output, but no
    row of ``results.json`` carried it: a training run's rows (every method's, Retrain's too: it
    trains on the same remaining rows) and a request run's row now hold ``kept_by_count_filters``,
    and a training run prints the warning once."""
    from recbole_unlearn import run_recbole_unlearn
    from recbole_unlearn.data.utils import create_unlearn_dataset
    from recbole_unlearn.config import UnlearnConfig

    settings = tiny_dict(user_inter_num_interval="[20,inf)")
    dataset = create_unlearn_dataset(UnlearnConfig("GRU4Rec", config_dict=settings))
    item = dataset.id2token("item_id", dataset.log_item[dataset.user_rows(dataset.token2id("user_id", "34"))[0]])
    (tmp_path / "req.csv").write_text(f"34,{item}\n")
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        user_inter_num_interval="[20,inf)", unlearn_method="sisa", n_shards=2, forget=str(tmp_path / "req.csv"),
        model_dir=str(tmp_path / "m"), shard_num_threads=1, results_dir=str(tmp_path / "r")))
    out = capsys.readouterr().out
    forgetting = {r["method"]: r for r in doc["rows"] if r["method"] in ("retrain", "sisa")}
    assert set(forgetting) == {"retrain", "sisa"}
    assert all(r["kept_by_count_filters"] == 17 for r in forgetting.values()), forgetting
    assert "original" in {r["method"] for r in doc["rows"]}
    assert all("kept_by_count_filters" not in r for r in doc["rows"] if r["method"] == "original")
    assert out.count("warning: 17 remaining interactions are trained on only because forgotten lines") == 1, out
    (tmp_path / "req2.csv").write_text("36\n")
    doc = run_forget_requests(str(tmp_path / "m"), str(tmp_path / "req2.csv"),
                              {"state": "ERROR", "results_dir": str(tmp_path / "r")}, verbose=False)
    assert doc["rows"][0]["kept_by_count_filters"] == 17


def test_a_request_run_writes_curves_of_a_forget_only_when_it_asks(tmp_path, monkeypatch):
    """A folder trained with ``--tensorboard=True`` recorded the key, and every later request run
    wrote ``log_tensorboard/`` into its working directory unasked: curves of a forget (SRUGA's
    ascent loss on the forgotten targets, a retrained shard's losses) computed from the data
    being forgotten (probe). Where a run's curves go is that run's choice, as
    ``keep_previous_version`` is: the folder does not hand it on (nor ``log_wandb``)."""
    key = "tensorboard"
    train = tmp_path / "train"
    train.mkdir()
    model_dir = train_saved_model(train, forget_protocol="none", **{key: True})
    assert read_manifest(model_dir)[1]["config"][key] is True
    serve = tmp_path / "serve"
    serve.mkdir()
    monkeypatch.chdir(serve)
    (serve / "req.csv").write_text("7\n")
    doc = run_forget_requests(model_dir, str(serve / "req.csv"), {"state": "ERROR", "results_dir": str(serve / "r")},
                              verbose=False)
    assert doc["requests"]["applied"] == 1
    assert doc["settings"][key] is False
    assert sorted(os.listdir(serve)) == ["r", "req.csv"]


def test_a_watcher_that_finds_its_requests_applied_by_a_process_that_died_writes_their_ledger_lines(sisa_copy,
                                                                                                     in_tmp,
                                                                                                     monkeypatch):
    """Two watchers queued the same file; one applied it and was killed after its audit line,
    before its ledger lines. The other then found the requests in the audit log, counted them
    ``applied_elsewhere`` ("the process that applied it wrote its ledger line") and moved the file
    to ``processed/``, leaving the ledger at ``queued`` until some later run started (found by
    probing). It writes the dead process's lines (``recovered``)."""
    from recbole_unlearn.serving import open_store
    from recbole_unlearn.serving.batcher import RequestBatcher

    model = load_model(sisa_copy)
    (in_tmp / "x.csv").write_text(f"{model.dataset.id2token('user_id', 5)}\n")
    survivor = RequestBatcher(open_store(sisa_copy), load_model(sisa_copy), 10, 0.0, "requests:inbox")
    survivor.submit(_watched_requests(model, in_tmp / "x.csv"))
    killed = RequestBatcher(open_store(sisa_copy), load_model(sisa_copy), 10, 0.0, "requests:inbox")
    killed.submit(_watched_requests(model, in_tmp / "x.csv"))
    with _stopped_after_the_audit_line(monkeypatch), pytest.raises(KeyboardInterrupt):
        killed.pump(drain=True)
    survivor.pump(drain=True)
    assert survivor.summary.outcomes["applied_elsewhere"] == 1
    last = [e for e in ledger_events(sisa_copy)][-1]
    assert last["status"] == "applied" and last.get("recovered") is True, last
    verify_model(sisa_copy)


def test_no_file_a_forget_writes_in_the_model_folder_is_readable_by_other_users(sisa_copy, in_tmp):
    """The ledger and the audit log name what was forgotten (their request ids are unkeyed
    digests of small request files; ledger rows with the dataset name the pairs): like the
    weights, ``forgotten.json`` and ``audit.key``, they are the owner's only (they were created
    0644 while every other file was 0600)."""
    (in_tmp / "requests.csv").write_text("2,292\n")
    run_forget_requests(sisa_copy, str(in_tmp / "requests.csv"), QUIET, verbose=False)
    assert "applied" in {e["status"] for e in ledger_events(sisa_copy)} and read_audit(sisa_copy)
    open_to_others = []
    for folder, _, names in os.walk(sisa_copy):
        for name in names:
            path = os.path.join(folder, name)
            if name != ".lock" and os.stat(path).st_mode & 0o077:
                open_to_others.append((os.path.relpath(path, sisa_copy), oct(os.stat(path).st_mode & 0o777)))
    assert not open_to_others
    with FolderLock(sisa_copy, 0.0).hold():  # the holder's pid file, while a run holds the lock (round 2)
        assert not os.stat(os.path.join(sisa_copy, ".lock.pid")).st_mode & 0o077
