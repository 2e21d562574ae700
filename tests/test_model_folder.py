"""A saved sharded model answers request files in a new process; bad input changes nothing."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from recbole_unlearn import run_recbole_unlearn
from recbole_unlearn.serving.request_files import file_digest
from recbole_unlearn.utils.errors import UnlearnError

from conftest import load_model, read_audit, read_manifest, snapshot, tiny_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    base = tmp_path_factory.mktemp("sisa")
    model_dir = str(base / "model")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
            unlearn_method="sisa", n_shards=2, n_slices=2, model_dir=model_dir, include_retrain=False,
            shard_num_threads=1, results_dir=str(base / "results")), verbose=False)
    finally:
        os.chdir(cwd)
    return base, model_dir, doc


def _cli(args, cwd):
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_recbole_unlearn.py"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def test_run_saves_a_versioned_model(saved):
    _, model_dir, doc = saved
    row = doc["rows"][-1]
    assert row["method"] == "sisa" and row["model_dir"] == model_dir
    version_dir, manifest = read_manifest(model_dir)
    assert os.path.basename(version_dir) == "v000002"  # v1 = trained, v2 = after the run's forget set
    assert manifest["shard_map"]["n_shards"] == 2 and manifest["n_forgotten"] == row["forgotten_interactions"]
    audit = read_audit(model_dir)
    assert len(audit) == 1 and audit[0]["shards_retrained"] == row["shards_retrained"]


def test_request_file_in_a_new_process(saved):
    base, model_dir, _ = saved
    version_dir, manifest = read_manifest(model_dir)
    owner = dict(zip(manifest["shard_map"]["users"], manifest["shard_map"]["shard"]))
    inodes = {name: os.stat(os.path.join(version_dir, name)).st_ino for name in manifest["files"]}
    (base / "req.csv").write_text("7\n8\n")
    proc = _cli([f"--model_dir={model_dir}", "--forget=req.csv", "--state=ERROR"], base)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("results: ")
    new_dir, new_manifest = read_manifest(model_dir)
    assert os.path.basename(new_dir) == "v000003"
    audit = read_audit(model_dir)
    assert len(audit) == 2 and audit[-1]["source"] == "requests:req.csv" and audit[-1]["version"] == "v000003"
    digest = file_digest(str(base / "req.csv"))  # request ids come from the file's content
    assert audit[-1]["request_ids"] == [f"{digest}:1", f"{digest}:2"]
    retrained = set(audit[-1]["shards_retrained"])
    assert retrained == {owner["7"], owner["8"]}
    # batched: each affected shard retrained once, untouched shards' files are hard links
    for shard in range(2):
        for stage in range(2):
            name = f"shard_{shard:02d}_stage_{stage:02d}.pth"
            linked = os.stat(os.path.join(new_dir, name)).st_ino == inodes[name]
            if shard not in retrained:
                assert linked
    model = load_model(model_dir)
    users = set(model.dataset.id2token("user_id", model.dataset.log_user[model.forgotten]).tolist())
    assert {"7", "8"} <= users
    # the same file again: its requests are already applied (by id), so nothing happens twice
    proc = _cli([f"--model_dir={model_dir}", "--forget=req.csv", "--state=ERROR"], base)
    assert proc.returncode == 0, proc.stderr
    assert os.path.basename(read_manifest(model_dir)[0]) == "v000003"
    assert len(read_audit(model_dir)) == 2
    assert "'skipped_already_final': 2" in proc.stdout
    # the same user asked again in a new file: reported as already forgotten, audited under its own id
    (base / "again.csv").write_text("7\n")
    proc = _cli([f"--model_dir={model_dir}", "--forget=again.csv", "--state=ERROR"], base)
    assert proc.returncode == 0, proc.stderr
    assert os.path.basename(read_manifest(model_dir)[0]) == "v000003"
    again_id = f"{file_digest(str(base / 'again.csv'))}:1"
    assert read_audit(model_dir)[-1]["interactions"] == 0
    assert read_audit(model_dir)[-1]["request_ids"] == [again_id]
    assert read_audit(model_dir)[-1]["already_forgotten"] == [again_id]
    assert "'already_forgotten': 1" in proc.stdout


@pytest.mark.parametrize("case", ["unknown user", "malformed", "fixed key", "misspelled key", "tampered", "no model"])
def test_bad_input_changes_nothing(saved, case):
    base, model_dir, _ = saved
    (base / "bad.csv").write_text({"unknown user": "7\n424242\n", "malformed": "7,1,2\n"}.get(case, "7\n"))
    args = [f"--model_dir={model_dir}", "--forget=bad.csv"]
    expected = {"unknown user": "unknown user token '424242'", "malformed": "expected 'user_token",
                "fixed key": "cannot change 'epochs' of a saved model", "tampered": "does not match its checksum",
                "misspelled key": "unknown config key 'epocs': not a RecBole or recbole_unlearn setting",
                "no model": "model folder not found"}[case]
    if case == "fixed key":
        args.append("--epochs=9")
    if case == "misspelled key":  # a typo is a typo, not a setting the model keeps
        args.append("--epocs=1")
    if case == "no model":
        args[0] = f"--model_dir={base / 'nothing-here'}"
    tampered = None
    if case == "tampered":
        version_dir, _ = read_manifest(model_dir)
        tampered = os.path.join(version_dir, "shard_00_stage_01.pth")
        os.chmod(tampered, 0o644)
        data = open(tampered, "rb").read()
        original = data
        with open(tampered, "r+b") as f:
            f.seek(len(data) // 2)
            f.write(bytes([data[len(data) // 2] ^ 0xFF]))
    before = snapshot(model_dir)
    proc = _cli(args, base)
    after = snapshot(model_dir)
    if tampered:
        with open(tampered, "wb") as f:
            f.write(original)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert before == after


def test_a_setting_given_as_the_saved_model_has_it_is_accepted(saved, tmp_path):
    """A pipeline that repeats the training command's settings on its request runs is not
    refused for them: only a value that differs from the saved model's is "cannot change"."""
    base, model_dir, _ = saved
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (tmp_path / "req.csv").write_text("# bytes of its own: another test's file may have been applied to the folder\n7\n")
    settings = read_manifest(str(copy))[1]["settings"]
    assert settings["n_shards"] == 2 and settings["epochs"] == 1
    proc = _cli([f"--model_dir={copy}", "--forget=req.csv", "--n_shards=2", "--epochs=1", "--state=ERROR"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "'queued': 1" in proc.stdout and "'rejected': 0" in proc.stdout, proc.stdout
    proc = _cli([f"--model_dir={copy}", "--verify=True", "--n_shards=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    # as the user gave them (RecBole's normalised form is what settings records: topk [10]), and
    # as the Python API takes them (a string, a NumPy number; probe)
    from recbole_unlearn.quick_start.forget_requests import run_verify

    config = read_manifest(str(copy))[1]["config"]
    assert config["epochs"] == 1
    run_verify(str(copy), {"n_shards": np.int64(2), "epochs": "1", "topk": settings["topk"]})
    with pytest.raises(UnlearnError, match="cannot change 'epochs'"):
        run_verify(str(copy), {"epochs": "2"})
    # the method as the training command gave it: any case, a list (config probe: "SISA" was refused)
    for method in ("SISA", ["sisa"], "[sisa]"):
        run_verify(str(copy), {"unlearn_method": method})
    for other in ("sru", 5, True, 1.5):  # a number ended in a TypeError traceback (round-2 probe)
        with pytest.raises(UnlearnError, match="cannot change 'unlearn_method'"):
            run_verify(str(copy), {"unlearn_method": other})


def test_ray_two_workers_match_one_worker(in_tmp):
    ray = pytest.importorskip("ray")
    common = dict(unlearn_method="sisa", n_shards=2, n_slices=1, include_retrain=False, shard_num_threads=1,
                  save_model=False, results_dir=str(in_tmp / "r"))
    one = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(num_workers=1, model_dir=str(in_tmp / "m1"), **common),
                              verbose=False)
    try:
        two = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(num_workers=2, model_dir=str(in_tmp / "m2"),
                                                                   **common), verbose=False)
    finally:
        ray.shutdown()
    assert read_manifest(str(in_tmp / "m1"))[1]["shard_map"] == read_manifest(str(in_tmp / "m2"))[1]["shard_map"]
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k and k not in ("model_dir", "speedup", "cpu_meter")}
                          for r in rows]
    assert strip(one["rows"]) == strip(two["rows"])


def test_audit_hmacs_and_verify(saved):
    import json as jsonlib

    from recbole_unlearn.serving import AuditLog
    from recbole_unlearn.serving.audit import interaction_hmacs

    from conftest import verify_model
    from recbole_unlearn.utils.errors import UnlearnError

    base, model_dir, _ = saved
    model = load_model(model_dir)
    entries = read_audit(model_dir)
    hmacs = [h for e in entries for h in e["forgotten_hmac"]]
    assert len(hmacs) == sum(e["interactions"] for e in entries)
    key = AuditLog(model_dir).secret(create=False)
    assert len(key) == 32 and oct(os.stat(os.path.join(model_dir, "audit.key")).st_mode)[-3:] == "600"
    assert set(hmacs) == set(interaction_hmacs(key, model.dataset, model.forgotten))
    assert not any(tok in json_line for json_line in open(os.path.join(model_dir, "audit.jsonl"))
                   for tok in ('"user"', '"item"'))
    assert verify_model(model_dir)["forgotten"] == len(model.forgotten)
    proc = _cli([f"--model_dir={model_dir}", "--verify=True"], base)
    assert proc.returncode == 0 and proc.stdout.strip().startswith("verified:"), proc.stderr
    # an audit line naming a pair that is not forgotten fails verification
    audit = os.path.join(model_dir, "audit.jsonl")
    original = open(audit).read()
    with open(audit, "a") as f:
        f.write(jsonlib.dumps({"forgotten_hmac": ["0" * 64], "interactions": 1}) + "\n")  # (its count agrees)
    try:
        with pytest.raises(UnlearnError, match="of the interactions it forgot are not forgotten pairs of the model"):
            verify_model(model_dir)
    finally:
        with open(audit, "w") as f:
            f.write(original)


def test_a_model_folder_moved_with_its_data_answers_requests_there(tmp_path):
    """A model trained in one place (a training job, another host) is served where its dataset
    lives elsewhere. The folder recorded the training run's absolute ``data_path`` and refused
    ``--data_path`` ("cannot change 'data_path' of a saved model"), so a moved folder could not
    answer a single request. Now ``data_path`` may point at the dataset's new folder: its file
    must have the SHA-256 recorded at training, or nothing changes."""
    import shutil

    from recbole_unlearn.quick_start import run_forget_requests
    from recbole_unlearn.quick_start.forget_requests import run_verify
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import FIXTURES, train_saved_model

    shutil.copytree(FIXTURES, tmp_path / "train_data")
    train_saved_model(tmp_path, data_path=str(tmp_path / "train_data"), forget_protocol="none")
    serve = tmp_path / "serve"
    shutil.copytree(tmp_path / "model", serve / "model")
    shutil.copytree(tmp_path / "train_data", serve / "data")
    shutil.rmtree(tmp_path / "train_data")
    model_dir, requests = str(serve / "model"), tmp_path / "req.csv"
    requests.write_text("3\n")
    before = snapshot(model_dir)
    with pytest.raises(UnlearnError, match=r"dataset file is missing: .*train_data.*--data_path"):
        run_forget_requests(model_dir, str(requests), {"state": "ERROR"}, verbose=False)
    tampered = serve / "tampered"
    shutil.copytree(serve / "data", tampered)
    with open(tampered / "ml-tiny" / "ml-tiny.inter", "a") as f:
        f.write("3\t1\t999999999\n")
    with pytest.raises(UnlearnError, match="changed since the model was trained"):
        run_forget_requests(model_dir, str(requests), {"state": "ERROR", "data_path": str(tampered)}, verbose=False)
    assert snapshot(model_dir) == before
    doc = run_forget_requests(model_dir, str(requests), {"state": "ERROR", "data_path": str(serve / "data")},
                              verbose=False)
    assert doc["requests"]["applied"] == 1
    version_dir, manifest = read_manifest(model_dir)
    assert manifest["config"]["data_path"] == str(serve / "data")  # the next request needs no --data_path
    assert run_verify(model_dir)["forgotten"] > 0


def test_verify_finds_weights_a_forget_left_as_they_were(tmp_path, monkeypatch):
    """``--verify`` checked that no shard's training *data* held a forgotten interaction, which
    holds by construction (the data is derived from the forgotten list), not that the *weights*
    were retrained on it: a forget that skipped the owning shard (here a plan that leaves it out,
    as a bug in the shard map or the planner would) passed ``--verify``. Every shard stage now
    records the digest of the samples it trained and validated on, the aggregator the data it
    was trained under, and ``--verify`` recomputes both from the remaining data."""
    from recbole_unlearn.quick_start import run_forget_requests
    from recbole_unlearn.unlearnable.sharded import ShardedUnlearnableModel
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import train_saved_model, verify_model

    model_dir = train_saved_model(tmp_path, n_slices=2, forget_protocol="none")
    assert verify_model(model_dir)["weights_checked"] == 2 * 2 + 1
    shard_map = read_manifest(model_dir)[1]["shard_map"]
    users = {shard: [u for u, s in zip(shard_map["users"], shard_map["shard"]) if s == shard] for shard in (0, 1)}
    (tmp_path / "ok.csv").write_text(f"{users[0][0]}\n")
    run_forget_requests(model_dir, str(tmp_path / "ok.csv"), {"state": "ERROR"}, verbose=False)
    report = verify_model(model_dir)
    assert report["weights_checked"] == 5 and report["weights_unchecked"] == 0

    planned = ShardedUnlearnableModel.plan
    monkeypatch.setattr(ShardedUnlearnableModel, "plan",
                        lambda self, rows: {k: v for k, v in planned(self, rows).items() if k != 1})
    (tmp_path / "skipped.csv").write_text(f"{users[1][0]}\n")
    run_forget_requests(model_dir, str(tmp_path / "skipped.csv"), {"state": "ERROR"}, verbose=False)
    monkeypatch.undo()
    with pytest.raises(UnlearnError, match=r"shard_01_stage_\d\d\.pth \(shard 1, slice stage \d\).* was trained on "
                                           r"other samples than its remaining data gives now"):
        verify_model(model_dir)


def test_verify_finds_an_aggregator_trained_with_other_shard_weights(tmp_path):
    """The aggregator records what it was trained with: the remaining data and every shard's
    final weights. Shard weights that changed after it was trained (a forget that retrained a
    shard but not the aggregator after it) are stale for it."""
    from recbole_unlearn.trainer.trainer import state_digest
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import open_folder, train_saved_model, verify_model

    model_dir = train_saved_model(tmp_path, forget_protocol="none", unlearn_method="sru", agg_epochs=1)
    verify_model(model_dir)
    store = open_folder(model_dir)
    model = store.load()
    state = model.final_states()[0]
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] += 1.0
    # the shard's own record as a retraining would leave it: only the aggregator is stale
    model.trained_on["shard_00_stage_00.pth"] = dict(model.trained_on["shard_00_stage_00.pth"],
                                                     weights=state_digest(state))
    store.commit(model)
    with pytest.raises(UnlearnError, match=r"aggregator\.pth was trained on other"):
        verify_model(model_dir)


@pytest.mark.parametrize("method", ["sru", "receraser"])
def test_verify_finds_aggregator_weights_that_are_not_the_ones_its_training_produced(tmp_path, method):
    """The aggregator's record held only what it was trained with, never the weights it
    produced: an aggregator file from a version before a forget (trained with the forgotten
    user), copied into the live version and rehashed, passed ``--verify`` as a checked file
    (found by probing). The record now binds its weights too."""
    import torch
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import open_folder, train_saved_model, verify_model

    model_dir = train_saved_model(tmp_path, forget_protocol="none", unlearn_method=method, agg_epochs=1)
    verify_model(model_dir)
    store = open_folder(model_dir)
    model = store.load()
    state = model.ensemble.aggregator.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point())
    with torch.no_grad():
        state[name] += 1.0  # a view: the live aggregator's weights change, as a swapped file's would
    store.commit(model)
    with pytest.raises(UnlearnError, match=r"aggregator\.pth holds other weights than its training produced"):
        verify_model(model_dir)


def test_verify_finds_slice_weights_that_are_not_the_ones_their_training_produced(tmp_path):
    """A slice stage's record was the digest of its samples alone, tied to no weights: a stage
    before the last one holding other weights than its training produced (the stage's file from
    before a forget, its checksum updated: a stale file carried forward) passed ``--verify``, and
    a later stage retrained from it brought the forgotten data back unseen. Only the last stage
    was covered, through the aggregator's record. Each stage's record now also binds the weights
    it started from and those it produced."""
    from recbole_unlearn.trainer.trainer import state_digest
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import open_folder, train_saved_model, verify_model

    model_dir = train_saved_model(tmp_path, n_slices=2, forget_protocol="none")
    assert verify_model(model_dir)["weights_checked"] == 2 * 2 + 1
    store = open_folder(model_dir)
    model = store.load()
    first = model.stage_states[0][0]
    name = next(k for k, v in first.items() if v.is_floating_point())
    first[name] += 1.0
    store.commit(model)
    with pytest.raises(UnlearnError, match=r"shard_00_stage_00\.pth \(shard 0, slice stage 0\) holds other "
                                           r"weights than its training produced"):
        verify_model(model_dir)
    # the first stage's record made to match its weights (as if it alone had been retrained):
    # the second stage was trained from other weights than the first stage holds now
    record = dict(model.trained_on["shard_00_stage_00.pth"], weights=state_digest(first))
    model.trained_on["shard_00_stage_00.pth"] = record
    store.commit(model)
    with pytest.raises(UnlearnError, match=r"shard_00_stage_01\.pth \(shard 0, slice stage 1\) was trained from "
                                           r"other weights than slice stage 0 holds"):
        verify_model(model_dir)


def test_verify_reads_stage_records_saved_before_weights_were_recorded(tmp_path):
    """A version saved when a stage's record was its samples digest alone still verifies (its
    samples are checked; nothing can be said about its weights beyond the aggregator's record)."""
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import open_folder, train_saved_model, verify_model

    model_dir = train_saved_model(tmp_path, n_slices=2, forget_protocol="none")
    store = open_folder(model_dir)
    model = store.load()
    model.trained_on = {name: record["samples"] for name, record in model.trained_on.items()}
    store.commit(model)
    assert verify_model(model_dir)["weights_checked"] == 2 * 2 + 1
    model.trained_on["shard_01_stage_00.pth"] = "0" * 64
    store.commit(model)
    with pytest.raises(UnlearnError, match=r"shard_01_stage_00\.pth .* was trained on other samples"):
        verify_model(model_dir)


# --- found by trying the folder's lifecycle as a deployment would (each failed before its fix) ---
def test_a_training_run_never_writes_over_a_model_another_run_saved_meanwhile(tmp_path, monkeypatch):
    """Two training runs into one new ``model_dir``: the check that the folder is new ran before
    training, so the slower run committed its model as the next version of the other's folder;
    after a request was applied in between, the live model was one trained on the forgotten data
    again (``--verify``: audited pairs not forgotten). The first version is now created only in a
    folder that holds no model when it commits."""
    from recbole_unlearn.serving.store import ModelStore
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import snapshot, train_saved_model

    model_dir = tmp_path / "model"
    real_commit = ModelStore.commit
    state = {"other": False}

    def commit_after_another_run(self, model, *args, **kwargs):
        if not state["other"]:  # while this run trained, another one saved its model in the folder
            state["other"] = True
            train_saved_model(tmp_path / "other" if (tmp_path / "other").mkdir() is None else None,
                              forget_protocol="none", model_dir=str(model_dir))
        return real_commit(self, model, *args, **kwargs)

    monkeypatch.setattr(ModelStore, "commit", commit_after_another_run)
    (tmp_path / "slow").mkdir()
    with pytest.raises(UnlearnError, match="already holds a model"):
        train_saved_model(tmp_path / "slow", forget_protocol="none", model_dir=str(model_dir))
    monkeypatch.undo()
    assert sorted(v for v in os.listdir(model_dir) if v.startswith("v")) == ["v000001"]


@pytest.mark.parametrize("kind", ["file", "folder without CURRENT"])
def test_a_model_dir_that_is_no_new_folder_is_refused_before_training(tmp_path, kind):
    """A ``model_dir`` that is a file failed after training with a FileExistsError traceback; a
    folder that lost its ``CURRENT`` (its versions, audit log and ledger still there) was taken
    for a new one, and the run inherited the old logs."""
    from recbole_unlearn import run_recbole_unlearn
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import tiny_dict

    target = tmp_path / "m"
    if kind == "file":
        target.write_text("")
    else:
        target.mkdir()
        (target / "audit.jsonl").write_text("")
    with pytest.raises(UnlearnError, match="model_dir .* (is a file|is not empty)"):
        run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="sisa", n_shards=2, forget_protocol="none",
                                                             model_dir=str(target), results_dir=str(tmp_path / "r")),
                            verbose=False)
    assert not os.path.exists(tmp_path / "r")


def test_runtime_settings_given_to_answer_requests_are_not_kept_by_the_next_version(tmp_path):
    """Runtime overrides (``num_workers``, ``keep_previous_version``, ...) given to one run that
    answers requests were written into the next version's settings, so every later run used them:
    Ray started without being asked, and earlier versions (weights from before a deletion) stayed
    on disk after the run that asked to keep one."""
    from recbole_unlearn.quick_start import run_forget_requests
    from conftest import train_saved_model

    model_dir = train_saved_model(tmp_path, forget_protocol="none", keep_previous_version=True, state="WARNING")
    trained_with = read_manifest(model_dir)[1]["settings"]
    # nor does the resolved record, "settings" (r12keys probe: it held each run's overrides, and a
    # training run's keep_previous_version, which "a folder never records")
    assert "keep_previous_version" not in trained_with
    users = [u for u in read_manifest(model_dir)[1]["shard_map"]["users"]][:2]
    # (state: RecBole's own key, dropped where our overall.yaml had no default; r12round2 probe)
    from recbole_unlearn.config.configurator import default_setting

    assert default_setting("state") == "INFO" and default_setting("max_batch") is not None
    runtime = {"keep_previous_version": True, "lock_timeout_s": 5, "max_batch": 1, "busy_cpu_share": 0.9,
               "state": "ERROR"}
    for n, (user, override) in enumerate(zip(users, [runtime, {}])):
        (tmp_path / f"{n}.csv").write_text(f"{user}\n")
        run_forget_requests(model_dir, str(tmp_path / f"{n}.csv"), dict(override, state="ERROR"), verbose=False)
        manifest = read_manifest(model_dir)[1]
        config = manifest["config"]
        assert config.get("keep_previous_version") in (None, False) and config.get("lock_timeout_s") != 5
        for key in runtime:
            assert manifest["settings"].get(key) == trained_with.get(key), (key, manifest["settings"].get(key))
    assert sorted(v for v in os.listdir(model_dir) if v.startswith("v")) == ["v000003"]
    # a version whose settings hold an override (written so by earlier code) is not copied: the
    # model's own value is recorded (r12fixes probe)
    path = os.path.join(read_manifest(model_dir)[0], "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    manifest["settings"]["max_batch"] = 64
    with open(path, "w") as f:
        json.dump(manifest, f)
    user = [u for u in read_manifest(model_dir)[1]["shard_map"]["users"]][2]
    (tmp_path / "2.csv").write_text(f"{user}\n")
    run_forget_requests(model_dir, str(tmp_path / "2.csv"), {"state": "ERROR", "max_batch": 32}, verbose=False)
    assert read_manifest(model_dir)[1]["settings"]["max_batch"] == trained_with["max_batch"] != 64


def test_a_relative_results_dir_is_the_training_runs_for_every_later_request_run(tmp_path, monkeypatch):
    """The README: a request run writes under "the results_dir the model folder recorded (the
    training run's ...)". A relative one was recorded as given and read from the request run's
    working directory, so a request run started elsewhere wrote its results there (found by
    probing). It is recorded absolute, as data_path is."""
    from recbole_unlearn import run_recbole_unlearn
    from recbole_unlearn.quick_start import run_forget_requests
    from conftest import tiny_dict

    trained_in, answered_in = tmp_path / "train", tmp_path / "elsewhere"
    trained_in.mkdir()
    answered_in.mkdir()
    monkeypatch.chdir(trained_in)
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="sisa", n_shards=2, include_retrain=False,
                                                         forget_protocol="none", save_model=False,
                                                         model_dir=str(tmp_path / "model"), results_dir="res",
                                                         shard_num_threads=1), verbose=False)
    monkeypatch.chdir(answered_in)
    (answered_in / "r.csv").write_text("3\n")
    doc = run_forget_requests(str(tmp_path / "model"), str(answered_in / "r.csv"), {"state": "ERROR"}, verbose=False)
    assert os.path.dirname(os.path.dirname(os.path.abspath(doc["results_path"]))) == str(trained_in / "res")
    assert not (answered_in / "res").exists()


def test_a_device_saved_by_earlier_code_is_dropped_and_a_new_one_refused(saved, tmp_path):
    """``device`` is derived (``use_gpu``, ``gpu_id``) and now refused as a setting; earlier code
    accepted it (RecBole then replaced it) and saved it with the folder's settings."""
    import json

    model_dir = str(tmp_path / "model")
    shutil.copytree(saved[1], model_dir)
    version_dir, manifest = read_manifest(model_dir)
    manifest["config"]["device"] = "cuda:3"
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    assert str(load_model(model_dir).config["device"]) == ("cuda" if tiny_dict()["use_gpu"] else "cpu")
    with pytest.raises(UnlearnError, match="'device' is set from use_gpu and gpu_id"):
        load_model(model_dir, {"device": "cpu"})


def test_a_checkpoint_dir_saved_by_earlier_code_is_dropped(saved, tmp_path):
    """``checkpoint_dir`` is now refused as a setting (the run's folder replaced it); earlier code
    accepted it and saved it with the folder's settings, so such a folder refused every request
    and ``--verify`` with the new refusal (round 2 of probing)."""
    import json

    from recbole_unlearn.serving import open_store, verify_model

    model_dir = str(tmp_path / "model")
    shutil.copytree(saved[1], model_dir)
    version_dir, manifest = read_manifest(model_dir)
    manifest["config"]["checkpoint_dir"] = str(tmp_path / "ck")
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    load_model(model_dir)
    verify_model(open_store(model_dir), {})
    with pytest.raises(UnlearnError, match="'checkpoint_dir' is set by the run"):
        load_model(model_dir, {"checkpoint_dir": "x"})


def test_a_saved_gpu_id_does_not_choose_the_serving_processs_devices(saved, tmp_path, monkeypatch):
    """A folder trained with ``--gpu_id=0`` kept it in its settings, and every later process
    loading it set ``CUDA_VISIBLE_DEVICES`` back to 0 as if its user had given it: one started
    with ``CUDA_VISIBLE_DEVICES=`` saw GPU 0 again (round-2 probe). ``gpu_id`` and ``use_gpu``
    are the serving run's own choice."""
    import json

    model_dir = str(tmp_path / "model")
    shutil.copytree(saved[1], model_dir)
    version_dir, manifest = read_manifest(model_dir)
    manifest["config"].update(gpu_id="0", use_gpu=True)
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    model = load_model(model_dir)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "" and str(model.config["device"]) == "cpu"


def test_a_folder_of_the_bundled_ml_100k_is_served_from_this_installations_copy(tmp_path):
    """A folder trained on RecBole's bundled ml-100k recorded that installation's
    ``dataset_example`` path; read as given once ``data_path`` was honoured for ml-100k, so the
    folder failed ("dataset file is missing") after a new virtual environment (round-2 probe).
    Another installation's bundled copy is replaced by this one's (its SHA-256 is still checked)."""
    from recbole_unlearn.serving.store import _without_other_installations_bundle

    gone = os.path.join("/gone", "venv", "site-packages", "recbole", "config", "..", "dataset_example")
    assert "data_path" not in _without_other_installations_bundle({"dataset": "ml-100k"}, {"data_path": gone}, {})
    # a user's own folder of that name that is still there is read (round 3: it was replaced)
    own = os.path.join(str(tmp_path), "own", "recbole", "dataset_example")
    os.makedirs(own)
    for manifest, config, overrides in (({"dataset": "ml-100k"}, {"data_path": gone}, {"data_path": "/d"}),
                                        ({"dataset": "beauty"}, {"data_path": gone}, {}),
                                        ({"dataset": "ml-100k"}, {"data_path": "/data"}, {}),
                                        ({"dataset": "ml-100k"}, {"data_path": own}, {})):
        assert _without_other_installations_bundle(manifest, config, overrides) == config


def test_a_saved_runtime_setting_todays_bounds_refuse_is_not_handed_on(saved, tmp_path):
    """A folder saved with ``ray_connect_timeout_s: 100000`` (accepted before its bound of a day)
    refused every request and ``--verify`` once the bound came (upgrade probe), though it never
    used Ray: a runtime setting is the serving run's, and one today refuses is left out."""
    import json

    model_dir = str(tmp_path / "model")
    shutil.copytree(saved[1], model_dir)
    version_dir, manifest = read_manifest(model_dir)
    manifest["config"].update(ray_connect_timeout_s=100000, shard_num_threads=1100)
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    config = load_model(model_dir).config
    assert config["ray_connect_timeout_s"] != 100000 and config["shard_num_threads"] != 1100
    with pytest.raises(UnlearnError, match="ray_connect_timeout_s"):  # given by the run: refused, as ever
        load_model(model_dir, {"ray_connect_timeout_s": 100000})


def test_a_dataset_that_loads_ties_in_another_order_than_its_forgets_recorded_is_refused(tmp_path, monkeypatch):
    """Forgotten rows are recorded as (user token, position). Earlier code loading with
    ``rm_dup_inter`` sorted tied times in an order that depends on the CPU: on another machine
    the folder's position 0 of user 1 held another item, and the next forget retrained its shard
    on the forgotten (1, 168) while dropping (1, 172), which nobody asked to forget; ``--verify``
    there only said "audited pairs are not forgotten" (r9data probe). A load in another order
    is refused before anything is applied, by a request run and by ``--verify``."""
    from conftest import train_saved_model
    from recbole_unlearn.data.dataset import UnlearnSequentialDataset
    from recbole_unlearn.quick_start import run_forget_requests
    from recbole_unlearn.serving import open_store, verify_model

    model_dir = train_saved_model(tmp_path, forget_protocol="none")
    (tmp_path / "first.csv").write_text("1,168\n")  # ml-tiny: user 1's 168 and 172 share a time, in this order
    run_forget_requests(model_dir, str(tmp_path / "first.csv"), {"results_dir": str(tmp_path / "r")}, verbose=False)
    model = load_model(model_dir)
    assert model.dataset.id2token(model.dataset.iid_field, model.dataset.log_item[model.forgotten]).tolist() == ["168"]
    before = snapshot(model_dir)

    index_log = UnlearnSequentialDataset._index_log

    def ties_reversed(self):  # another machine's load: every run of tied (user, time) reversed
        users = self.inter_feat[self.uid_field].numpy()
        times = self.inter_feat[self.time_field].numpy()
        self.inter_feat = self.inter_feat[np.lexsort((-np.arange(len(users)), times, users))]
        index_log(self)

    monkeypatch.setattr(UnlearnSequentialDataset, "_index_log", ties_reversed)
    (tmp_path / "second.csv").write_text("2\n")
    with pytest.raises(UnlearnError, match="line 1: 1 of the interactions it forgot are not forgotten pairs"):
        run_forget_requests(model_dir, str(tmp_path / "second.csv"), {"results_dir": str(tmp_path / "r2")},
                            verbose=False)
    with pytest.raises(UnlearnError, match="loads in another order than when they were forgotten"):
        verify_model(open_store(model_dir))
    assert snapshot(model_dir) == before


def test_a_folder_whose_saved_settings_today_s_checks_refuse_says_to_train_a_new_one(tmp_path):
    """A folder saved by earlier code with a malformed filter interval was refused with the
    check's advice, to give another value, which no run may do for a saved model ("cannot change
    ... of a saved model"; r9upgrade probe). The refusal names the folder's saved settings and
    what to do; an override of the run at fault is still named as such."""
    import json as jsonlib
    from conftest import train_saved_model
    from recbole_unlearn.quick_start import run_forget_requests

    model_dir = train_saved_model(tmp_path, forget_protocol="none")
    version_dir, manifest = read_manifest(model_dir)
    manifest["config"]["user_inter_num_interval"] = "[0,inf"  # as code before the interval check saved it
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        jsonlib.dump(manifest, f)
    before = snapshot(model_dir)
    (tmp_path / "r.csv").write_text("3\n")
    with pytest.raises(UnlearnError, match=r"manifest.json: the settings this model was saved with are refused by "
                                           r"this code: user_inter_num_interval '\[0,inf'.*train a new model folder"):
        run_forget_requests(model_dir, str(tmp_path / "r.csv"), {"results_dir": str(tmp_path / "out")}, verbose=False)
    assert snapshot(model_dir) == before
    with pytest.raises(UnlearnError, match=r"saved with are refused by this code: user_inter_num_interval '\[0,inf'"):
        run_forget_requests(model_dir, str(tmp_path / "r.csv"), {"worker": -1}, verbose=False)  # the folder's, first
    # a refusal by the dataset files' checks, on the files the model was trained on, is the saved
    # settings' too (r9round4 probe: a number for a float field's val_interval, saved before
    # those checks, got the check's advice alone)
    manifest["config"]["user_inter_num_interval"] = None
    for recorded in ("config", "settings"):  # as earlier code saved it
        manifest[recorded]["val_interval"] = {"timestamp": [30]}
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        jsonlib.dump(manifest, f)
    with pytest.raises(UnlearnError, match=r"trained on, as its saved settings load them, are refused by this code: "
                                           r"val_interval timestamp \[30\]: '\[30\]' is not an interval.*train a new"):
        run_forget_requests(model_dir, str(tmp_path / "r.csv"), verbose=False)
    files = manifest.pop("data_files")  # saved before every file was recorded: the check's own line
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        jsonlib.dump(manifest, f)
    with pytest.raises(UnlearnError, match=r"^val_interval timestamp \[30\]: '\[30\]' is not an interval"):
        run_forget_requests(model_dir, str(tmp_path / "r.csv"), verbose=False)
    # a value of no form (a number, an unload_col string) is the saved settings' alone, whatever the
    # files: it got the check's own line where the files were not recorded, whose advice (give
    # another value) no run may follow (r10round6 probe)
    for key, value, said in (("val_interval", {"timestamp": 30}, "val_interval timestamp 30: '30' is not an interval"),
                             ("unload_col", {"inter": "rating"}, "unload_col {'inter': 'rating'}: give")):
        for recorded in ("config", "settings"):
            manifest[recorded]["val_interval"] = None
            manifest[recorded][key] = value
        if key == "unload_col":
            manifest["config"]["load_col"] = manifest["settings"]["load_col"] = None
        for with_files in (False, True):
            manifest.pop("data_files", None)
            if with_files:
                manifest["data_files"] = files
            with open(os.path.join(version_dir, "manifest.json"), "w") as f:
                jsonlib.dump(manifest, f)
            with pytest.raises(UnlearnError, match=f"saved with are refused by this code: {re.escape(said)}.*train a "
                                                   "new model folder"):
                run_forget_requests(model_dir, str(tmp_path / "r.csv"), verbose=False)
    for recorded in ("config", "settings"):
        manifest[recorded]["unload_col"] = None
        manifest[recorded]["load_col"] = {"inter": ["user_id", "item_id", "timestamp"]}
    manifest["data_files"] = files
    manifest["config"].pop("val_interval")
    manifest["settings"]["val_interval"] = None
    # the run's own bad value is its own, also beside a saved runtime value today's bounds refuse,
    # which a run drops unless it overrides the key (r9round3 probe: the folder was blamed)
    manifest["config"].pop("user_inter_num_interval")
    manifest["config"]["ray_connect_timeout_s"] = 100000
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        jsonlib.dump(manifest, f)
    for overrides in ({"lock_timeout_s": -5}, {"ray_connect_timeout_s": 5, "worker": -1}, {"ray_connect_timeout_s": -1}):
        with pytest.raises(UnlearnError, match="^config key '(lock_timeout_s|worker|ray_connect_timeout_s)'"):
            run_forget_requests(model_dir, str(tmp_path / "r.csv"), overrides, verbose=False)


def test_a_folder_saved_with_names_recbole_ignores_is_served_with_a_warning(tmp_path, caplog):
    """Earlier code took ``load_col`` / ``unload_col`` naming a file or field that does not exist,
    which RecBole ignores (the model trained as without them); today's check of those names
    refused such folders for good, every request and ``--verify`` (r10round2 probe). They are
    served, with a warning naming the setting; a new run is still refused it."""
    import json as jsonlib
    import logging
    from conftest import train_saved_model, verify_model
    from recbole_unlearn.quick_start import run_forget_requests

    model_dir = train_saved_model(tmp_path, forget_protocol="none")
    version_dir, manifest = read_manifest(model_dir)
    for recorded in ("config", "settings"):  # as code before the check saved it
        manifest[recorded]["load_col"] = {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]}
        # (and a union of count filters, the same rows, which RecBole warns of as it loads them)
        manifest[recorded]["user_inter_num_interval"] = "[1,inf);[1,inf)"
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        jsonlib.dump(manifest, f)
    (tmp_path / "r.csv").write_text("3\n")
    with caplog.at_level(logging.WARNING):
        doc = run_forget_requests(model_dir, str(tmp_path / "r.csv"), {"results_dir": str(tmp_path / "out"),
                                                                          "state": "WARNING"}, verbose=False)
    assert doc["requests"]["applied"] == 1
    assert "load_col 'item': RecBole's sequential dataset reads no ml-tiny.item file here" in caplog.text
    assert "the model is served as trained" in caplog.text
    # and in the run's own log (logged before it began: it was on the console only)
    with open(os.path.join(os.path.dirname(doc["results_path"]), "run.log")) as f:
        run_log = f.read()
    assert run_log.count("load_col 'item': RecBole's sequential dataset reads no ml-tiny.item file here") == 1
    # RecBole's own warnings of the load too (ours alone were; r11round3 probe)
    assert "More than one interval of interaction number are given!" in run_log
    verify_model(model_dir)
