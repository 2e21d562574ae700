"""Crash safety: a forget killed with SIGKILL at several points leaves a model folder that
loads and equals the state before or after; rerunning the same request finishes the job, and
the audit log lists the request exactly once."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from recbole_unlearn.serving.request_files import file_digest

from conftest import load_model, read_audit, verify_model
from recbole_unlearn.utils.faults import ENV

from conftest import train_saved_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POINTS = ["shard_retrained", "version_staged", "version_renamed", "version_switched", "current_switched",
          "audit_appended"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    model_dir = train_saved_model(base, n_shards=3, forget_user_ratio=0.05)
    # users of two different shards, so that the forget retrains two shards
    model = load_model(model_dir)
    shard_of = model.shard_map.user_shard
    users = []
    for shard in (0, 1):
        uid = next(u for u in range(1, model.dataset.user_num) if shard_of[u] == shard)
        users.append(str(model.dataset.id2token("user_id", uid)))
    (base / "req.csv").write_text("".join(f"{u}\n" for u in users))
    before = _weights(model_dir)
    reference = str(base / "reference")
    shutil.copytree(model_dir, reference)
    assert _forget(reference, base).returncode == 0
    return base, model_dir, before, _weights(reference)


def _forget(model_dir, cwd, kill_at=None):
    env = dict(os.environ)
    env.pop(ENV, None)
    if kill_at:
        env[ENV] = kill_at
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_recbole_unlearn.py"), f"--model_dir={model_dir}",
                           f"--forget={cwd / 'req.csv'}", "--state=ERROR"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _sisa_training_run(tmp_path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """The command training SISA (GRU4Rec, 2 shards, 1 epoch) on ml-tiny into ``tmp_path / "m"``,
    run in ``tmp_path`` with ``env`` (a fault point) and ``args`` (what it forgets)."""
    from conftest import FIXTURES, TEST_GPU

    return subprocess.run([sys.executable, os.path.join(ROOT, "run_recbole_unlearn.py"), "--model=GRU4Rec",
                           f"--data_path={FIXTURES}", "--dataset=ml-tiny", "--epochs=1", "--unlearn_method=sisa",
                           "--n_shards=2", "--state=ERROR", f"--use_gpu={TEST_GPU}", "--include_retrain=False",
                           "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}", *args,
                           f"--model_dir={tmp_path / 'm'}", f"--results_dir={tmp_path / 'r'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _weights(model_dir):
    model = load_model(model_dir)
    return {name: {k: v.clone() for k, v in state.items()} for name, state in model.weight_states().items()}, \
        sorted(model.forgotten.tolist())


def _same(a, b) -> bool:
    (wa, fa), (wb, fb) = a, b
    return fa == fb and wa.keys() == wb.keys() and all(
        wa[n].keys() == wb[n].keys() and all(torch.equal(wa[n][k], wb[n][k]) for k in wa[n]) for n in wa)


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_leaves_old_or_new_state_and_rerun_finishes_once(saved, tmp_path, point):
    base, original_dir, before, after = saved
    model_dir = str(tmp_path / "model")
    shutil.copytree(original_dir, model_dir)

    killed = _forget(model_dir, base, kill_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    state = _weights(model_dir)  # loads: every file present and matching its checksum
    assert _same(state, before) or _same(state, after)
    if point in ("shard_retrained", "version_staged", "version_renamed"):
        assert _same(state, before)
    else:
        assert _same(state, after)

    if point == "version_switched":  # killed between the switch and the removal of the version before it
        assert sorted(v for v in os.listdir(model_dir) if v.startswith("v")) == ["v000002", "v000003"]
    rerun = _forget(model_dir, base)
    assert rerun.returncode == 0, rerun.stderr
    assert _same(_weights(model_dir), after)
    ids = [rid for entry in read_audit(model_dir) for rid in entry.get("request_ids", [])]
    digest = file_digest(str(base / "req.csv"))
    assert sorted(ids) == [f"{digest}:1", f"{digest}:2"]  # exactly once
    with open(os.path.join(model_dir, "requests.jsonl")) as f:
        final = {}
        for line in f:
            event = json.loads(line)
            if event["status"] != "queued":
                final.setdefault(event["id"], []).append(event["status"])
    assert final == {f"{digest}:1": ["applied"], f"{digest}:2": ["applied"]}
    versions = sorted(v for v in os.listdir(model_dir) if v.startswith("v"))
    assert not [v for v in os.listdir(model_dir) if v.startswith(".v")]  # no staging left behind
    # the version before (trained on the data the request forgets) is gone: the next run removes
    # one a killed forget left behind, where earlier code kept it until the next forget; a
    # never-live v000003 (killed after its rename) keeps its name to itself
    assert versions == (["v000004"] if point == "version_renamed" else ["v000003"])
    verify_model(model_dir)


def test_verify_names_a_version_that_never_went_live_as_such(saved, tmp_path):
    """A forget killed after its rename and before its switch leaves a newer version that was
    never live. ``--verify`` listed it under ``older_versions`` ("models from before later
    forgets, trained on data they forgot"), which it is not: it is the stopped forget's model,
    trained without the requested data. Now it is ``never_live_versions``."""
    base, original_dir, before, after = saved
    model_dir = str(tmp_path / "model")
    shutil.copytree(original_dir, model_dir)
    assert _forget(model_dir, base, kill_at="version_renamed").returncode == -signal.SIGKILL
    report = verify_model(model_dir)
    assert report["version"] == "v000002"
    assert report["older_versions"] == []
    assert report["never_live_versions"] == ["v000003"]
    # the next run removes it and says what it was: its note called it "a model from before the
    # live version, trained on data forgotten since" (r10round4 probe)
    done = _forget(model_dir, base)
    assert done.returncode == 0, done.stderr
    assert (f"note: removed {os.path.join(model_dir, 'v000003')}: a version a forget staged and was stopped before it "
            "went live (never served") in done.stdout, done.stdout
    # and the run's own version is another name: it took v000003 again, the removed one's
    with open(os.path.join(model_dir, "CURRENT")) as f:
        assert f.read().strip() == "v000004"


def test_a_training_run_killed_during_its_request_files_forget_leaves_the_requests_waiting(tmp_path):
    """``--model=... --forget=<file> --model_dir=<new>`` killed while it forgot the file left a
    folder whose live version was trained on the requested users, with no ledger and no audit
    line: ``--verify`` said ``requests_not_final: 0`` and the requests were lost from sight
    (found by probing). The run now queues the file's requests in the folder's ledger before its
    forget, so they wait there and the next request run applies them, once."""
    from recbole_unlearn.quick_start import run_forget_requests
    from conftest import ledger_events

    (tmp_path / "req.csv").write_text("3\n7\n")
    model_dir = tmp_path / "m"
    env = dict(os.environ, **{ENV: "shard_retrained"})
    done = _sisa_training_run(tmp_path, env, f"--forget={tmp_path / 'req.csv'}")
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert verify_model(str(model_dir))["requests_not_final"] == 2
    # the next request run, on another file, applies them too (their queued lines keep their rows:
    # without them it said "give its file again", found by probing this change)
    (tmp_path / "other.csv").write_text("8\n")
    doc = run_forget_requests(str(model_dir), str(tmp_path / "other.csv"), {"state": "ERROR"}, verbose=False)
    assert doc["requests"]["resumed"] == 2 and doc["requests"]["applied"] == 3
    assert verify_model(str(model_dir))["requests_not_final"] == 0
    doc = run_forget_requests(str(model_dir), str(tmp_path / "req.csv"), {"state": "ERROR"}, verbose=False)
    assert doc["requests"]["skipped_already_final"] == 2
    ids = [rid for entry in read_audit(str(model_dir)) for rid in entry.get("request_ids", [])]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert [e["status"] for e in ledger_events(str(model_dir))].count("applied") == 3


def test_a_training_run_forgetting_a_request_file_records_its_requests_in_the_folder(tmp_path):
    """Finished, such a run's folder records the file's requests as a request run would: the ledger
    says ``applied`` and the audit line names them, so sending the file again applies nothing."""
    from recbole_unlearn import run_recbole_unlearn
    from recbole_unlearn.quick_start import run_forget_requests
    from conftest import ledger_events, tiny_dict

    (tmp_path / "req.csv").write_text("3\n7\n")
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        unlearn_method="sisa", n_shards=2, include_retrain=False, forget=str(tmp_path / "req.csv"),
        model_dir=str(tmp_path / "m"), results_dir=str(tmp_path / "r")), verbose=False)
    assert [e["status"] for e in ledger_events(str(tmp_path / "m"))] == ["queued", "queued", "applied", "applied"]
    assert len(read_audit(str(tmp_path / "m"))[-1]["request_ids"]) == 2
    doc = run_forget_requests(str(tmp_path / "m"), str(tmp_path / "req.csv"), {"state": "ERROR"}, verbose=False)
    assert doc["requests"]["skipped_already_final"] == 2 and doc["requests"]["batches"] == 0


def test_verify_names_a_live_version_whose_audit_line_is_pending(saved, tmp_path):
    """Killed between the switch and the audit append, the folder passed ``--verify`` with
    ``audit_entries: 0`` beside 56 forgotten interactions and said nothing of the audit line the
    live version holds for the next run (found by probing). ``--verify`` now names that version
    (``audit_pending``) and counts the forgotten interactions no audit line covers yet."""
    base, original_dir, _, _ = saved
    model_dir = str(tmp_path / "model")
    shutil.copytree(original_dir, model_dir)
    clean = verify_model(model_dir)
    assert clean["audit_pending"] is None and clean["forgotten_unaudited"] == 0
    assert _forget(model_dir, base, kill_at="current_switched").returncode == -signal.SIGKILL
    found = verify_model(model_dir)
    assert found["audit_pending"] == found["version"] and found["forgotten_unaudited"] > 0, found
    assert _forget(model_dir, base).returncode == 0
    done = verify_model(model_dir)
    assert done["audit_pending"] is None and done["forgotten_unaudited"] == 0, done


@pytest.mark.parametrize("method", ["sisa", "sruga"])
def test_a_training_run_killed_once_its_first_version_is_live_leaves_the_requests_waiting(tmp_path, method):
    """A probe (SIGTERM 0-5 ms after ``CURRENT`` appeared, 4 of 12 runs): the first version,
    trained on the request file's users, went live before the run queued the file's requests, so
    a stop in between left a valid folder with no trace of them (``requests_not_final: 0``; the
    next request run never applied them). The first version now goes live with them queued."""
    from conftest import FIXTURES, TEST_GPU

    (tmp_path / "req.csv").write_text("3\n7\n")
    model_dir = tmp_path / "m"
    env = dict(os.environ, **{ENV: "version_switched"})  # the first commit: the fit's version
    shards = ["--n_shards=2"] if method == "sisa" else []
    done = subprocess.run([sys.executable, os.path.join(ROOT, "run_recbole_unlearn.py"), "--model=GRU4Rec",
                           f"--data_path={FIXTURES}", "--dataset=ml-tiny", "--epochs=1", f"--unlearn_method={method}",
                           *shards, "--state=ERROR", f"--use_gpu={TEST_GPU}", "--include_retrain=False",
                           "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
                           f"--forget={tmp_path / 'req.csv'}", f"--model_dir={model_dir}",
                           f"--results_dir={tmp_path / 'r'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert open(model_dir / "CURRENT").read() == "v000001"
    assert verify_model(str(model_dir))["requests_not_final"] == 2


@pytest.mark.parametrize("point, applied, waiting", [("version_switched", 0, 2), ("audit_appended", 2, 0),
                                                     # the live version's audit line not in the log yet: the
                                                     # line said 0 applied, 2 waiting, --verify 0 waiting
                                                     # (r12trainkill probe)
                                                     ("current_switched", 2, 0)])
def test_a_training_run_stopped_once_its_folder_is_live_says_what_is_live_and_what_waits(
        tmp_path, point, applied, waiting):
    """A stop (SIGTERM) after a training run's first version went live (its file's requests
    queued), or after its forget went live (the ledger not updated yet), said only ``error:
    interrupted``: nothing told the user that ``model_dir`` now serves a model, nor that its
    requests wait there for the next request run (a request run stopped so says both)."""
    (tmp_path / "req.csv").write_text("3\n7\n")
    model_dir = tmp_path / "m"
    env = dict(os.environ, **{ENV: point, "RECBOLE_UNLEARN_KILL_SIGNAL": "SIGTERM"})
    done = _sisa_training_run(tmp_path, env, f"--forget={tmp_path / 'req.csv'}")
    assert done.returncode == 130, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: interrupted: {model_dir} is live at version v00000"), line
    assert f"of its 2 requests {applied} applied, 0 rejected, {waiting} waiting" in line, line
    assert "results.json was not written" in line, line
    assert verify_model(str(model_dir))["requests_not_final"] == waiting


def test_a_training_run_stopped_between_its_request_steps_says_how_many_went_live(tmp_path):
    """A ``request_steps`` run stopped after its first step went live said "of its 0 requests 0
    applied ... waiting in m/requests.jsonl", a ledger that does not exist, and nothing of the
    forget set's steps left undone in the live folder (r12trainkill probe)."""
    env = dict(os.environ, **{ENV: "audit_appended", "RECBOLE_UNLEARN_KILL_SIGNAL": "SIGTERM"})
    done = _sisa_training_run(tmp_path, env, "--request_steps=2", "--forget_user_ratio=0.2")
    assert done.returncode == 130, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    model_dir = tmp_path / "m"
    assert line.startswith(f"error: interrupted: {model_dir} is live at version v000002; 1 of the run's 2 request "
                           "steps went live there (the forget set's other steps are not forgotten in it)"), line
    assert "requests.jsonl" not in line and not (model_dir / "requests.jsonl").exists(), line


@pytest.mark.parametrize("folder, point", [("given", "current_switched"), ("default", "current_switched"),
                                           ("given", "version_switched")])
def test_a_training_run_stopped_after_its_sampled_forget_went_live_says_so(tmp_path, folder, point):
    """With a sampled forget set the line named an empty ledger ("of its 0 requests ... waiting in
    m/requests.jsonl"), and without ``--model_dir`` it was a bare ``error: interrupted`` while the
    method's folder in the run's was live (r12fixes probe)."""
    from conftest import FIXTURES, TEST_GPU

    env = dict(os.environ, **{ENV: point, "RECBOLE_UNLEARN_KILL_SIGNAL": "SIGTERM"})
    if folder == "given":
        done = _sisa_training_run(tmp_path, env, "--forget_user_ratio=0.2")
        model_dir = str(tmp_path / "m")
    else:
        done = subprocess.run([sys.executable, os.path.join(ROOT, "run_recbole_unlearn.py"), "--model=GRU4Rec",
                               f"--data_path={FIXTURES}", "--dataset=ml-tiny", "--epochs=1", "--unlearn_method=sisa",
                               "--n_shards=2", "--state=ERROR", f"--use_gpu={TEST_GPU}", "--include_retrain=False",
                               "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}", "--save_model=False",
                               f"--results_dir={tmp_path / 'r'}"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        (run,) = os.listdir(tmp_path / "r")
        model_dir = str(tmp_path / "r" / run / "sisa_model")
    assert done.returncode == 130, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    said = "v000002, its forget; " if point == "current_switched" else \
        "v000001, the fit (the run's forget did not go live); "  # (the first version: before the forget)
    assert line.startswith(f"error: interrupted: {model_dir} is live at version {said}"), line
    assert "requests.jsonl" not in line, line


def test_a_training_run_stopped_before_its_folder_went_live_says_so(tmp_path):
    """The same stop during the first commit, before ``CURRENT`` was written: nothing is live, and
    nothing of the stopped commit is left to block the same command."""
    model_dir = tmp_path / "m"
    env = dict(os.environ, **{ENV: "version_renamed", "RECBOLE_UNLEARN_KILL_SIGNAL": "SIGTERM"})
    done = _sisa_training_run(tmp_path, env, "--forget_protocol=none")
    assert done.returncode == 130, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: interrupted: no version of {model_dir} went live"), line
    assert not (model_dir / "CURRENT").exists()
    # the stopped first commit took back its version folder: the same command runs again (it was
    # refused, "holds v000001 without a CURRENT file")
    assert not (model_dir / "v000001").exists() and not (model_dir / "requests.jsonl").exists()
    env.pop(ENV)
    again = subprocess.run(done.args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert open(model_dir / "CURRENT").read() == "v000001"


def test_a_folder_a_stopped_training_run_left_with_only_its_lock_is_taken_as_new(tmp_path):
    """A probe: a training run stopped while writing its first version left ``model_dir``
    holding only ``.lock`` (its staging folder removed), and the same command was then refused:
    "model_dir ... is not empty". The lock file (and a staging folder a kill left) are the
    run's own leftovers, with nothing live: such a folder is new."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.unlearn.base import check_new_model_dir
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import tiny_dict

    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / ".lock").write_text("")
    (model_dir / ".lock.pid").write_text("123\n")
    (model_dir / ".v000001.tmp-0123abcd").mkdir()
    config = UnlearnConfig("GRU4Rec", config_dict=tiny_dict(unlearn_method="sisa", n_shards=2,
                                                            model_dir=str(model_dir))).for_method("sisa")
    check_new_model_dir(config)
    (model_dir / "v000001").mkdir()
    with pytest.raises(UnlearnError, match="not empty .*killed before its first version went live"):
        check_new_model_dir(config)


@pytest.mark.parametrize("method", ["sisa", "sruga"])
def test_a_request_run_between_a_training_runs_fit_and_its_forget_is_no_crash(tmp_path, monkeypatch, method):
    """A probe: once a training run's first version is live with the request file's requests
    queued, a request run on the folder before the training run's own forget applies them; the
    training run then died in ``SISA.forget`` (``TypeError``: no audit line of its own). Its row
    now says the requests were applied by another run, and forgot nothing itself."""
    from recbole_unlearn import run_recbole_unlearn
    from recbole_unlearn.quick_start import run_forget_requests
    from recbole_unlearn.unlearn.base import UnlearnMethod
    from conftest import tiny_dict

    (tmp_path / "req.csv").write_text("3\n7\n")
    (tmp_path / "other.csv").write_text("5\n")
    real_commit = UnlearnMethod.commit_first_version

    def commit_then_a_request_run(self, model):
        real_commit(self, model)
        run_forget_requests(self.model_dir(), str(tmp_path / "other.csv"), {"state": "ERROR"}, verbose=False)

    monkeypatch.setattr(UnlearnMethod, "commit_first_version", commit_then_a_request_run)
    monkeypatch.chdir(tmp_path)
    shards = {"n_shards": 2} if method == "sisa" else {}
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        unlearn_method=method, include_retrain=False, forget=str(tmp_path / "req.csv"),
        model_dir=str(tmp_path / "m"), results_dir=str(tmp_path / "r"), shard_num_threads=1, **shards), verbose=False)
    row = next(r for r in doc["rows"] if r["method"] == method)
    assert row["requests_applied_elsewhere"] == 2
    assert verify_model(str(tmp_path / "m"))["requests_not_final"] == 0


def test_a_first_commit_refuses_a_folder_another_runs_stopped_commit_left(tmp_path, monkeypatch):
    """A probe: run B started on an empty folder; run A, on the same folder, was stopped after its
    first commit wrote its queued ledger line and version folder but before ``CURRENT``; B then
    committed its first version there and took A's queued request over (the next request run
    forgot A's user from B's model). A first commit now refuses a folder holding another run's
    ledger or version folders, writing nothing."""
    from recbole_unlearn import run_recbole_unlearn
    from recbole_unlearn.unlearn.base import UnlearnMethod
    from recbole_unlearn.utils.errors import UnlearnError
    from conftest import tiny_dict

    real_commit = UnlearnMethod.commit_first_version
    model_dir = tmp_path / "m"

    def another_run_left_its_commit(self, model):
        (model_dir / "v000001").mkdir(parents=True)
        (model_dir / "requests.jsonl").write_text(json.dumps(
            {"id": "x:1", "file": "reqA.csv", "line": 1, "status": "queued", "time": "t", "rows": [5]}) + "\n")
        real_commit(self, model)

    monkeypatch.setattr(UnlearnMethod, "commit_first_version", another_run_left_its_commit)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnlearnError, match="another run"):
        run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
            unlearn_method="sisa", n_shards=2, include_retrain=False, forget_protocol="none",
            model_dir=str(model_dir), results_dir=str(tmp_path / "r"), shard_num_threads=1), verbose=False)
    assert not (model_dir / "CURRENT").exists()
    assert len((model_dir / "requests.jsonl").read_text().splitlines()) == 1 and os.listdir(model_dir / "v000001") == []
