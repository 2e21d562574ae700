"""A model folder changed behind the lock's back (its lock file removed, its CURRENT rolled back by
hand, its audit key lost, an old version that cannot be removed): a forget never undoes a
recorded deletion, and says what it found (failures found by probing the folder under adverse
filesystem conditions)."""
import json
import os
import shutil

import numpy as np
import pytest

from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.quick_start import run_forget_requests
from recbole_unlearn.serving import store as store_module
from recbole_unlearn.serving.apply import apply_forget
from recbole_unlearn.serving.lock import LOCK
from recbole_unlearn.serving.store import CURRENT, open_store
from recbole_unlearn.utils.errors import UnlearnError, WentLiveError

from conftest import load_model, read_audit, read_manifest, snapshot, train_saved_model

QUIET = {"state": "ERROR"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("integrity")
    return train_saved_model(base, forget_protocol="none")


@pytest.fixture
def folder(trained, tmp_path):
    target = str(tmp_path / "model")
    shutil.copytree(trained, target)
    return target


def _user(model_dir: str, k: int) -> str:
    return load_model(model_dir).dataset.id2token("user_id", k)


def _request(tmp_path, name: str, *users: str) -> str:
    path = tmp_path / name
    path.write_text("".join(f"{u}\n" for u in users))
    return str(path)


def _versions(model_dir: str):
    return sorted(e for e in os.listdir(model_dir) if e.startswith("v") and e[1:].isdigit())


def test_a_forget_whose_lock_file_was_removed_meanwhile_commits_nothing(folder):
    """An operator removed the "stale" lock of a forget that was still running; a second process
    took a new lock and applied its requests; the first then committed over them, and their
    deletions were undone while the audit log held them as applied. A commit now checks that the
    lock file it holds is still the folder's."""
    store = open_store(folder)
    model = store.load()
    rows = model.dataset.user_rows(3)
    before = snapshot(folder)
    with store.lock.hold():
        os.unlink(os.path.join(folder, LOCK))  # removed by hand while this process holds it
        with pytest.raises(UnlearnError, match="lock file .* was removed or replaced"):
            apply_forget(store, model, ForgetSet(rows[model.dataset.is_training[rows]], source="test"), "sisa")
    after = snapshot(folder)
    assert {k: v for k, v in after.items() if not k.startswith(".lock")} == \
        {k: v for k, v in before.items() if not k.startswith(".lock")}


def test_a_commit_refuses_a_model_loaded_from_a_version_that_is_no_longer_current(folder, tmp_path):
    """The compare-and-swap under the lock: a model loaded from v000001 is never written as the
    version after a v000002 it never saw (whose deletions it would undo)."""
    store = open_store(folder)
    stale = store.load()
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    assert store.current_version() == "v000002"
    stale.forget(stale.dataset.user_rows(4)[stale.dataset.is_training[stale.dataset.user_rows(4)]])
    with pytest.raises(UnlearnError, match="v000002 is live, not v000001"):
        store.commit(stale)
    assert store.current_version() == "v000002" and _versions(folder) == ["v000002"]


def test_a_current_rolled_back_by_hand_is_refused_and_the_newer_version_kept(folder, tmp_path):
    """CURRENT set back by hand to the kept previous version: the next forget deleted the newer
    version (the one that forgot the first request) and wrote its own in that name, so a deletion
    the audit log held as applied was undone. The forget is now refused, and no version is ever
    deleted to make room for a new one."""
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)),
                        dict(QUIET, keep_previous_version=True), verbose=False)
    assert _versions(folder) == ["v000001", "v000002"]
    with open(os.path.join(folder, CURRENT), "w") as f:
        f.write("v000001")
    before = snapshot(folder)
    with pytest.raises(UnlearnError, match="audit.jsonl line 1 records v000002.*CURRENT names v000001"):
        run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    assert snapshot(folder) == before


def test_a_commit_never_deletes_a_version_folder_to_reuse_its_name(folder):
    """A version folder beyond CURRENT (left by a forget killed after its rename, before its
    switch, or by a hand-edited CURRENT) was deleted so that the new version could take its name;
    the new version now takes the next free number."""
    store = open_store(folder)
    model = store.load()
    shutil.copytree(os.path.join(folder, "v000001"), os.path.join(folder, "v000002"))
    rows = model.dataset.user_rows(3)
    apply_forget(store, model, ForgetSet(rows[model.dataset.is_training[rows]], source="test"), "sisa")
    assert store.current_version() == "v000003"
    assert read_audit(folder)[-1]["version"] == "v000003"


def test_a_lost_audit_key_is_refused_not_replaced(folder, tmp_path):
    """The audit key (mode 0600, so a copy made by another user skips it) was missing: --verify
    refused, but a forget made a new key, after which every earlier audit line failed the check
    for good ("audited pairs are not forgotten", which was false)."""
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    os.unlink(os.path.join(folder, "audit.key"))
    before = snapshot(folder)
    with pytest.raises(UnlearnError, match="audit.key is missing"):
        run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    assert snapshot(folder) == before


def test_an_old_version_that_cannot_be_removed_is_reported_not_claimed_removed(folder, tmp_path, monkeypatch):
    """The version before a forget (a whole model trained on the data it forgot) could not be
    removed (a read-only folder): the forget said nothing, and the next run said it had removed
    it while it stayed on disk. Both now say it is still there."""
    real_rename = os.rename

    def refuse_v1(source, target, *args, **kwargs):  # a version is renamed out of the way before its removal
        if os.path.basename(source) == "v000001":
            raise PermissionError(13, "Permission denied", source)
        return real_rename(source, target, *args, **kwargs)

    monkeypatch.setattr(store_module.os, "rename", refuse_v1)
    warnings = []
    monkeypatch.setattr(store_module, "_warn", warnings.append)
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    assert _versions(folder) == ["v000001", "v000002"]
    assert any("could not remove v000001" in w and "Permission denied" in w for w in warnings), warnings
    store = open_store(folder)
    with store.lock.hold():
        assert store.remove_left_behind(keep_previous=False) == []
    assert any(w.count("could not remove v000001") for w in warnings[1:]), warnings


def test_an_old_version_renamed_but_not_removed_is_warned_of_by_every_run(folder, tmp_path, monkeypatch, capsys):
    """The version before a forget was renamed out of the versions' names and then could not be
    removed (a file another process holds on NFS, an immutable file): the only word was a
    logger line naming ``v000001``, no longer there under that name, hidden by ``state: ERROR``;
    later runs said nothing while ``.v000001.removing-*`` held a loadable model trained on data
    forgotten since (privacy probe). Every run answering requests prints a ``warning:`` line
    naming the folder, and records it in its results."""
    real_rmtree = shutil.rmtree

    def refuse_removing(path, *args, **kwargs):
        if ".v000001.removing-" in str(path):
            raise PermissionError(1, "Operation not permitted", path)
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(store_module.shutil, "rmtree", refuse_removing)
    for name, k in (("a.csv", 3), ("b.csv", 4)):
        doc = run_forget_requests(folder, _request(tmp_path, name, _user(folder, k)), QUIET)
        left = [e for e in os.listdir(folder) if e.startswith(".v000001.removing-")]
        assert len(left) == 1, os.listdir(folder)
        out = capsys.readouterr().out
        assert f"warning: {os.path.join(folder, left[0])} could not be removed" in out, out
        assert doc["requests"]["not_removed"] == left


def test_a_forget_live_without_its_audit_line_is_not_recorded_failed(folder, tmp_path, monkeypatch):
    """The audit append failed after the switch (a full disk, a read-only log): the ledger said
    ``failed`` ("the previous version stays live") while the new version was live. The requests
    now stay queued, as after a process killed there, and the next run records them applied."""
    from recbole_unlearn.serving.audit import AuditLog
    from conftest import ledger_events, verify_model

    real_append = AuditLog.append

    def full_disk(self, entry):
        raise OSError(27, "File too large")

    monkeypatch.setattr(AuditLog, "append", full_disk)
    with pytest.raises(WentLiveError, match="went live as v000002, but its audit line could not be written"):
        run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    assert open_store(folder).current_version() == "v000002"
    assert [e["status"] for e in ledger_events(folder)] == ["queued"]
    monkeypatch.setattr(AuditLog, "append", real_append)
    run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    last = {}
    for event in ledger_events(folder):
        last[os.path.basename(event["file"])] = event
    assert last["a.csv"]["status"] == "applied" and last["a.csv"].get("recovered") is True
    assert verify_model(folder)["requests_not_final"] == 0


def test_a_full_disk_while_saving_weights_is_the_os_error_it_is(tmp_path):
    """A full disk while writing weights ended in torch's ``RuntimeError: [enforce fail at
    inline_container.cc] ... unexpected pos`` (a traceback that names no disk); it is now the
    ``OSError`` (here EFBIG, from a file-size limit), which the command prints as one line."""
    import subprocess
    import sys

    script = (
        "import resource, signal, torch\n"
        "from recbole_unlearn.utils.atomic import save_weights\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000))\n"
        "try:\n"
        f"    save_weights({str(tmp_path / 'w.pth')!r}, {{'w': torch.zeros(1000000)}})\n"
        "except BaseException as e:\n"
        "    print(type(e).__name__, getattr(e, 'errno', None))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "OSError 27", out.stdout + out.stderr
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


@pytest.mark.parametrize("method", ["sruga", "sisa-sruga"])
def test_a_saved_model_keeps_every_setting_of_how_it_forgets(tmp_path, method):
    """A saved SRUGA model (or SISA forgetting its shards by SRUGA) kept only the keys its method
    file sets, so ``sruga_*`` and ``utility_floor`` were read from the installed defaults at every
    load: a new default changed how a deployed model forgets (found by probing). The folder now
    records every fit, aggregate and forget setting as resolved."""
    from recbole_unlearn.config.keys import METHOD_PHASES, settings_of
    from conftest import read_manifest

    extra = dict(unlearn_method="sisa", shard_unlearning="sruga", n_slices=1) if method == "sisa-sruga" \
        else dict(unlearn_method="sruga")
    model_dir = train_saved_model(tmp_path, forget_protocol="none", **extra)
    _, manifest = read_manifest(model_dir)
    model = load_model(model_dir)
    wanted = settings_of(model.config.settings(), *METHOD_PHASES)
    assert {"sruga_learning_rate", "utility_floor", "sruga_floor_restarts"} <= set(wanted)
    missing = {k: v for k, v in wanted.items() if manifest["config"].get(k, "missing") != v}
    assert not missing, missing


def _insert_line(path: str, number: int, line: str) -> None:
    with open(path) as f:
        lines = f.read().splitlines(keepends=True)
    lines.insert(number - 1, line + "\n")
    with open(path, "w") as f:
        f.write("".join(lines))


def _verify_and_a_request_run_refuse(folder: str, tmp_path, naming: str) -> None:
    """``--verify`` and a request run each refuse ``folder`` with one error naming ``naming``
    (a file, and maybe its line), and nothing in it changes."""
    from conftest import verify_model

    before = snapshot(folder)
    with pytest.raises(UnlearnError, match=naming.replace(".", r"\.")):
        verify_model(folder)
    with pytest.raises(UnlearnError, match=naming.replace(".", r"\.")):
        run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    assert snapshot(folder) == before


@pytest.mark.parametrize("edit", ["ledger {}", "ledger without status", "audit request_ids null",
                                  "manifest without files", "manifest without config", "manifest a list",
                                  # it named manifest.json without its folder (r10round6 probe)
                                  "manifest data_files a list",
                                  # lists of the wrong items, a non-string id, an approximate entry that
                                  # is no mapping: each a TypeError / AttributeError traceback (round 6)
                                  'audit {"audit_id": [1]}', 'audit {"request_ids": [{"a": 1}]}',
                                  'audit {"unchanged_request_ids": [[1]]}', 'audit {"forgotten_hmac": [[1]]}',
                                  'audit {"approximate": "x"}', 'ledger {"id": "x:1", "status": "queued", "rows": [[60]]}'])
def test_a_hand_edited_log_line_or_manifest_is_one_error_naming_it(folder, tmp_path, edit):
    """Valid JSON of the wrong shape (a line without ``id``, ``request_ids: null``, a manifest
    without ``files``) ended ``--verify`` and a forget in a ``KeyError`` / ``TypeError`` traceback
    (found by probing); each is now one error naming the file (and line), and nothing changes."""
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    version_dir = os.path.join(folder, open_store(folder).current_version())
    manifest_path = os.path.join(version_dir, "manifest.json")
    manifest = json.load(open(manifest_path))
    if edit == "ledger {}":
        _insert_line(os.path.join(folder, "requests.jsonl"), 2, "{}")
    elif edit == "ledger without status":
        _insert_line(os.path.join(folder, "requests.jsonl"), 2, '{"id": "x:1"}')
    elif edit == "audit request_ids null":
        _insert_line(os.path.join(folder, "audit.jsonl"), 1, '{"request_ids": null}')
    elif edit.startswith(("audit {", "ledger {\"")):
        name, line = edit.split(" ", 1)
        _insert_line(os.path.join(folder, "audit.jsonl" if name == "audit" else "requests.jsonl"),
                     1 if name == "audit" else 2, line)
    else:
        if edit == "manifest a list":
            manifest = []
        elif edit == "manifest data_files a list":
            manifest["data_files"] = []
        else:
            manifest.pop("files" if edit == "manifest without files" else "config")
        with open(manifest_path, "w") as f:
            json.dump(manifest, f)
    where = {"ledger": "requests.jsonl line 2", "audit": "audit.jsonl line 1",
             "manifest": os.path.join(os.path.dirname(manifest_path), "manifest.json")}
    pattern = where[edit.split()[0]]
    _verify_and_a_request_run_refuse(folder, tmp_path, pattern)


def test_a_folder_that_recorded_keep_previous_version_keeps_no_version_from_before_a_forget(folder, tmp_path):
    """Grid-made folders of earlier code recorded the runner's ``keep_previous_version: True`` in
    their settings, and served by today's code they still kept the version from before every
    forget, a model trained on the data it forgot (found by probing). The key is a run's own: it
    is never taken from the folder."""
    from conftest import read_manifest

    version_dir, manifest = read_manifest(folder)
    manifest["config"]["keep_previous_version"] = True  # as such a folder recorded it
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    assert _versions(folder) == ["v000002"]
    assert "keep_previous_version" not in read_manifest(folder)[1]["config"]
    run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)),
                        dict(QUIET, keep_previous_version=True), verbose=False)
    assert _versions(folder) == ["v000002", "v000003"]  # asked for by that run


def test_a_kept_previous_version_removed_by_the_next_run_is_said_whatever_the_log_level(folder, tmp_path, capsys):
    """The next run without ``keep_previous_version`` removed the kept version with a log line
    alone, which the folder's ``state: ERROR`` hid (r10docs probe): a ``note:`` line names it, and
    ``results.json``'s ``requests.removed_versions``."""
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)),
                        dict(QUIET, keep_previous_version=True), verbose=False)
    assert _versions(folder) == ["v000001", "v000002"]
    doc = run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET)
    out = capsys.readouterr().out
    assert _versions(folder) == ["v000003"]
    assert doc["requests"]["removed_versions"] == [{"version": "v000001", "why": "kept_by_keep_previous_version"}]
    assert (f"note: removed {os.path.join(folder, 'v000001')}: kept by keep_previous_version for the run that set it: "
            "a model from before that run's forgets, trained on data forgotten since") in out, out
    # a version another run kept, removed by a forget's commit (a watcher's, or a run keeping its
    # own previous one), went with a log line alone (round 4)
    run_forget_requests(folder, _request(tmp_path, "c.csv", _user(folder, 5)),
                        dict(QUIET, keep_previous_version=True), verbose=False)
    assert _versions(folder) == ["v000003", "v000004"]
    doc = run_forget_requests(folder, _request(tmp_path, "d.csv", _user(folder, 6)),
                              dict(QUIET, keep_previous_version=True))
    assert _versions(folder) == ["v000004", "v000005"]
    assert doc["requests"]["removed_versions"] == [{"version": "v000003", "why": "kept_by_keep_previous_version"}]
    assert f"note: removed {os.path.join(folder, 'v000003')}: kept by keep_previous_version" in capsys.readouterr().out


def test_a_never_live_version_a_commit_removes_is_said_to_be_one(folder, tmp_path, monkeypatch):
    """Another process's forget stopped after its version's rename, before its switch, while this
    run waited (a watcher): this run's commit removed that never-live version and reported it
    ``left_behind``, "trained on data forgotten since", where it was trained without what it
    forgot; the same folder at a run's start is reported ``never_live`` (r11fixes probe)."""
    from recbole_unlearn.serving import batcher

    apply_forget = batcher.apply_forget

    def another_forget_stopped_first(*args, **kwargs):  # a folder after CURRENT, as such a stop leaves
        shutil.copytree(os.path.join(folder, "v000001"), os.path.join(folder, "v000002"))
        monkeypatch.setattr(batcher, "apply_forget", apply_forget)
        return apply_forget(*args, **kwargs)

    monkeypatch.setattr(batcher, "apply_forget", another_forget_stopped_first)
    doc = run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    assert _versions(folder) == ["v000003"]
    assert doc["requests"]["removed_versions"] == [{"version": "v000002", "why": "never_live"}]


def test_a_never_live_versions_name_is_never_taken_again(folder, tmp_path):
    """A never-live version removed at one run's start kept its name from that run's own next
    version only (in memory): a run stopped after the removal, or any later process, took it
    again, one name reported removed and then live (r11round4 probe). The names are kept in
    ``retired_versions.json`` before the folders go."""
    shutil.copytree(os.path.join(folder, "v000001"), os.path.join(folder, "v000002"))  # as a stopped forget leaves
    store = open_store(folder)
    with store.lock.hold():  # a run that removed it at its start, then stopped before any forget
        assert store.remove_left_behind(keep_previous=False) == ["v000002"]
    assert json.load(open(os.path.join(folder, "retired_versions.json"))) == ["v000002"]
    doc = run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    assert doc["requests"]["versions"] == ["v000003"] and _versions(folder) == ["v000003"]


def test_a_ledger_of_earlier_code_without_file_and_line_is_served(folder, tmp_path):
    """Ledger lines written by earlier code (23 November) named no file and line; a request run on
    such a folder whose audit log held a request its ledger left ``queued`` (a kill after the
    audit line) ended in a ``KeyError: 'file'`` traceback, every time (r11round2 probe)."""
    from conftest import ledger_events, verify_model

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    path = os.path.join(folder, "requests.jsonl")
    lines = [json.loads(line) for line in open(path)]
    lines = [{k: v for k, v in line.items() if k not in ("file", "line")} for line in lines if line["status"] == "queued"]
    with open(path, "w") as f:  # as that code wrote them, killed before its applied line
        f.writelines(json.dumps(line) + "\n" for line in lines)
    doc = run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    assert doc["requests"]["applied"] == 1
    recovered = [e for e in ledger_events(folder) if e.get("recovered")]
    assert len(recovered) == 1 and recovered[0]["status"] == "applied" and recovered[0]["line"] == 1
    verify_model(folder)


# --- found by probing crash safety (each failed before its fix) ----------------------------------
def test_a_failure_after_the_requests_went_live_says_they_were_applied(folder, tmp_path, monkeypatch):
    """results.json could not be written (a full disk that still let the empty-file check pass):
    the command printed ``error: [Errno 28] No space left on device``, exit 1, the README's "the
    folder as it was", while v000002 was live and both requests were applied. It now says what
    went live, with exit status 3."""
    from recbole_unlearn.cli import main
    from recbole_unlearn.quick_start import forget_requests
    from conftest import ledger_events

    def full_disk(path, document):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(forget_requests, "write_results", full_disk)
    path = _request(tmp_path, "a.csv", _user(folder, 3), _user(folder, 4))
    code = main([f"--model_dir={folder}", f"--forget={path}", "--state=ERROR", f"--results_dir={tmp_path / 'r'}"],
                restore_signals=True)
    assert code == 3
    assert open_store(folder).current_version() == "v000002"
    assert [e["status"] for e in ledger_events(folder)][-2:] == ["applied", "applied"]


def test_a_ledger_that_cannot_be_written_after_the_forget_went_live_is_not_a_plain_failure(folder, tmp_path,
                                                                                          monkeypatch, capsys):
    """The ledger's ``applied`` lines failed to append (a full disk) after the version went live and
    its audit line was written: a bare OSError line, exit 1. It now says the forget went live and the
    next run records the requests, which it does."""
    from recbole_unlearn.cli import main
    from recbole_unlearn.serving.ledger import RequestLedger
    from conftest import ledger_events, verify_model

    real_append = RequestLedger.record
    calls = []

    def full_on_second(self, events):
        events = list(events)
        calls.append([e["status"] for e in events])
        if any(e["status"] == "applied" for e in events):  # after queuing them: recording them applied
            raise OSError(28, "No space left on device")
        return real_append(self, events)

    monkeypatch.setattr(RequestLedger, "record", full_on_second)
    path = _request(tmp_path, "a.csv", _user(folder, 3))
    code = main([f"--model_dir={folder}", f"--forget={path}", "--state=ERROR", f"--results_dir={tmp_path / 'r'}"])
    err = capsys.readouterr().err
    assert code == 3 and "went live as v000002" in err, (err, calls)
    monkeypatch.setattr(RequestLedger, "record", real_append)
    assert verify_model(folder)["requests_not_final"] == 0  # the audit line holds it
    run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    assert [e["status"] for e in ledger_events(folder) if e["file"].endswith("a.csv")][-1] == "applied"


def test_a_stop_during_the_evaluation_after_the_requests_went_live_says_they_were_applied(folder, tmp_path,
                                                                                          monkeypatch):
    """SIGTERM or Ctrl-C while the model was evaluated after its requests went live printed a bare
    ``error: interrupted``, though the README promises the line naming what was applied."""
    from recbole_unlearn.quick_start import forget_requests
    from recbole_unlearn.serving.stream import RequestsInterrupted

    class StoppedSuite:
        def __init__(self, *args, **kwargs):
            raise KeyboardInterrupt

    monkeypatch.setattr(forget_requests, "EvaluationSuite", StoppedSuite)
    with pytest.raises(RequestsInterrupted, match="^1 request applied, 0 rejected"):
        run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)


def test_a_temporary_file_a_killed_write_left_is_removed_by_the_next_request_run(folder, tmp_path):
    """A process killed between writing and renaming ``audit.key`` (or ``CURRENT``) left
    ``.tmp-XXXXaudit.key``, 32 random key bytes outside ``audit.key``, for good: no run removed it
    (found by probing). The next run answering requests removes such files, as it removes staging
    folders."""
    left = os.path.join(folder, ".tmp-abcd1234audit.key")
    with open(left, "wb") as f:
        f.write(os.urandom(32))
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    assert not [name for name in os.listdir(folder) if name.startswith(".tmp-")]


def test_a_failure_after_a_run_that_applied_nothing_new_is_not_called_live(folder, tmp_path, monkeypatch):
    """Every request of the file already forgotten (no new version), then results.json failed:
    it said "0 requests of this run went live (v000001)", exit 3 (found by probing)."""
    from recbole_unlearn.cli import main
    from recbole_unlearn.quick_start import forget_requests

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)

    def full_disk(path, document):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(forget_requests, "write_results", full_disk)
    (tmp_path / "again.csv").write_text(f"{_user(folder, 3)}\n# the same user again\n")
    code = main([f"--model_dir={folder}", f"--forget={tmp_path / 'again.csv'}", "--state=ERROR",
                 f"--results_dir={tmp_path / 'r'}"])
    assert code == 1


def test_a_saved_model_keeps_its_training_settings_when_the_installed_defaults_change(folder, tmp_path):
    """A saved model recorded only the user's keys and the method's fit, aggregate and forget
    keys; everything else (learning rate, batch size, layers, ``MAX_ITEM_LIST_LENGTH``) came from
    the installed ``properties/`` at every load, so a new default retrained shards with other
    settings and wrote them into the next version as if the model had them (found by probing
    with an edited ``overall.yaml``; a changed ``MAX_ITEM_LIST_LENGTH`` ended in a traceback).
    A default change is simulated by the recorded settings holding other values than today's:
    the model is rebuilt with what it recorded."""
    from conftest import read_manifest

    version_dir, manifest = read_manifest(folder)
    assert manifest["settings"]["learning_rate"] != 0.0123
    manifest["settings"].update(learning_rate=0.0123, train_batch_size=17)
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    model = open_store(folder).load()
    assert (model.config["learning_rate"], model.config["train_batch_size"]) == (0.0123, 17)
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    _, after = read_manifest(folder)
    assert (after["settings"]["learning_rate"], after["settings"]["train_batch_size"]) == (0.0123, 17)
    assert (after["config"]["learning_rate"], after["config"]["train_batch_size"]) == (0.0123, 17)


def _append_ledger(folder: str, *lines: dict) -> None:
    with open(os.path.join(folder, "requests.jsonl"), "a") as f:
        f.write("".join(json.dumps(line) + "\n" for line in lines))


@pytest.mark.parametrize("edit", ["forged applied", "forged rejected", "audit line removed", "rolled back",
                                  "rolled back, audit emptied", "applied version edited"])
def test_verify_checks_the_ledger_against_the_audit_log_and_the_live_version(folder, tmp_path, edit):
    """``--verify`` read the ledger only for requests still waiting (found by probing): a forged
    ``applied`` (or ``rejected``) line after a valid request's ``queued`` line made that request
    vanish from ``requests_not_final`` while its rows stayed in the model (and the next request
    run never applied it); an audit line removed, or CURRENT set back to a kept older version
    (with the audit log emptied too), passed as ``verified``. Each is now one error naming what
    contradicts what; a request run refuses the last two as a rolled-back folder already."""
    from conftest import verify_model

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 5)), dict(QUIET, keep_previous_version=True),
                        verbose=False)
    verify_model(folder)
    model = load_model(folder)
    rows = [int(r) for r in model.dataset.user_rows(4)[:2]]
    request = {"id": "f" * 16 + ":1", "file": "c.csv", "line": 1, "time": "t"}
    queued = dict(request, status="queued", rows=rows)
    if edit == "forged applied":
        _append_ledger(folder, queued, dict(request, status="applied", version="v000003", already_forgotten=False))
        pattern = r"requests\.jsonl line \d+: request f+:1 is applied .*no audit line holds it"
    elif edit == "forged rejected":
        _append_ledger(folder, queued, dict(request, status="rejected", reason="x"))
        pattern = r"requests\.jsonl line \d+: request f+:1 is rejected, yet it was queued with its 2 log rows"
    elif edit == "applied version edited":  # (passed: the ledger's version was not compared; r11fixes probe)
        path = os.path.join(folder, "requests.jsonl")
        lines = [json.loads(line) for line in open(path)]
        lines = [dict(line, version="v000003") if line.get("version") == "v000002" else line for line in lines]
        open(path, "w").write("".join(json.dumps(line) + "\n" for line in lines))
        pattern = r"requests\.jsonl line \d+: request .* is applied as v000003, yet audit\.jsonl records it applied as v000002"
    elif edit == "audit line removed":
        path = os.path.join(folder, "audit.jsonl")
        lines = open(path).read().splitlines(keepends=True)
        open(path, "w").write("".join(lines[1:]))
        pattern = r"requests\.jsonl line \d+: request .* is applied .*no audit line holds it"
    else:
        with open(os.path.join(folder, CURRENT), "w") as f:
            f.write("v000002")
        if edit == "rolled back, audit emptied":
            open(os.path.join(folder, "audit.jsonl"), "w").close()
            pattern = r"requests\.jsonl line \d+ records v000003, yet CURRENT names v000002: the folder was rolled back"
        else:
            pattern = r"audit\.jsonl line 2 records v000003, yet CURRENT names v000002: the folder was rolled back"
    before = snapshot(folder)
    with pytest.raises(UnlearnError, match=pattern):
        verify_model(folder)
    assert snapshot(folder) == before


def test_a_request_run_with_log_wandb_but_no_wandb_is_one_error_and_changes_nothing(folder, tmp_path):
    """``log_wandb`` is a runtime key, so a saved model accepts it; a training run refused it
    without the wandb package, a request run queued its requests, marked them ``failed`` and
    ended in RecBole's ``ImportError`` traceback (found by probing)."""
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed")
    before = snapshot(folder)
    with pytest.raises(UnlearnError, match="log_wandb: True .*needs the wandb package"):
        run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), dict(QUIET, log_wandb=True),
                            verbose=False)
    assert snapshot(folder) == before


def test_an_exact_folder_with_some_weight_records_removed_fails_verify(folder, tmp_path):
    """A shard file from before a forget (trained on the forgotten user) copied into the live
    version, rehashed, with its own training record set to null, passed ``--verify`` as
    ``weights_unchecked`` (found by probing): only approximately unlearned shards and versions
    saved before the records have none. In a folder whose shards are retrained exactly, a
    version holding other records has no reason to lack one."""
    from conftest import read_manifest, verify_model
    from recbole_unlearn.utils.digests import file_sha256

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), dict(QUIET, keep_previous_version=True),
                        verbose=False)
    version_dir, manifest = read_manifest(folder)
    shard = next(name for name in manifest["trained_on"]
                 if not os.path.samefile(os.path.join(version_dir, name), os.path.join(folder, "v000001", name)))
    os.remove(os.path.join(version_dir, shard))
    shutil.copy(os.path.join(folder, "v000001", shard), os.path.join(version_dir, shard))
    manifest["files"][shard] = file_sha256(os.path.join(version_dir, shard))
    manifest["trained_on"][shard] = None
    manifest["aggregator_trained_on"] = None  # its record names the live shard weights
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(UnlearnError, match=f"{shard} .* has no training record, while the version records others"):
        verify_model(folder)
    # the same with the version's records_complete turned off (one more field, no recomputing)
    # passed: the audit line of the forget that made it says the shard was retrained exactly,
    # and the code that writes records records every file it retrains (round 6)
    manifest["records_complete"] = False
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(UnlearnError, match=f"{shard}( .and 1 more.)? has no training record, yet the audit line of the "
                                           "forget that made the live version says it was retrained exactly"):
        verify_model(folder)
    del manifest["trained_on"]  # as a version saved before records were kept looks (round 3)
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(UnlearnError, match="has no training record, yet the audit line"):
        verify_model(folder)


@pytest.mark.parametrize("edit", ["shard_map without slice", "shard_map users short", "trained_on a list",
                                  "record without weights", "held_out a string", "forgotten pair short",
                                  "forgotten position past the user"])
def test_a_manifest_or_forgotten_list_of_the_wrong_shape_is_one_error(folder, tmp_path, edit):
    """Valid JSON of the wrong shape in a version's manifest (shard map, training records, twins)
    or ``forgotten.json`` ended ``--verify`` and a request run in a ``KeyError`` / ``TypeError`` /
    ``ValueError`` traceback; a position past the user's interactions silently named another
    user's row (found by probing). Each is one error naming the file, and nothing changes."""
    from conftest import read_manifest
    from recbole_unlearn.utils.digests import file_sha256

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    version_dir, manifest = read_manifest(folder)
    forgotten_path = os.path.join(version_dir, "forgotten.json")
    forgotten = json.load(open(forgotten_path))
    first_record = sorted(manifest["trained_on"])[0]
    if edit == "shard_map without slice":
        manifest["shard_map"].pop("slice")
    elif edit == "shard_map users short":
        manifest["shard_map"]["users"] = manifest["shard_map"]["users"][:-1]
    elif edit == "trained_on a list":
        manifest["trained_on"] = list(manifest["trained_on"])
    elif edit == "record without weights":
        manifest["trained_on"][first_record].pop("weights")
    elif edit == "held_out a string":
        manifest["held_out"] = "3"
    elif edit == "forgotten pair short":
        forgotten[0] = forgotten[0][:1]
    else:
        forgotten[0] = [forgotten[0][0], 500]
    if edit.startswith("forgotten"):
        with open(forgotten_path, "w") as f:
            json.dump(forgotten, f)
        manifest["files"]["forgotten.json"] = file_sha256(forgotten_path)
        where = "forgotten.json"
    else:
        where = "manifest.json"
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    _verify_and_a_request_run_refuse(folder, tmp_path, where)


def test_an_audit_key_replaced_by_another_folders_is_refused_by_name(folder, tmp_path):
    """Another folder's ``audit.key`` copied over this one's: ``--verify`` said "29 audited pairs
    are not forgotten" (false: the key was wrong), and request runs went on, adding lines whose
    HMACs no key checks together with the earlier ones (found by probing). Each line now names
    its key (``key_id``); a different key is refused by name, and nothing changes."""
    from conftest import verify_model

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    assert read_audit(folder)[-1]["key_id"]
    with open(os.path.join(folder, "audit.key"), "wb") as f:
        f.write(os.urandom(32))
    before = snapshot(folder)
    for attempt in (lambda: verify_model(folder),
                    lambda: run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET,
                                                verbose=False)):
        with pytest.raises(UnlearnError, match=r"audit\.key is not the key audit\.jsonl line 1 was made with"):
            attempt()
    assert snapshot(folder) == before


def test_a_folder_rolled_back_with_its_audit_log_emptied_is_refused_by_a_request_run(folder, tmp_path):
    """CURRENT set back to the kept older version and the audit log emptied too: a request run
    saw no newer version in the audit log, removed the newer version folder and wrote its own in
    that name, a model that never forgot the first request, which the ledger held as applied
    (found by probing). The ledger's lines name their versions too: refused, nothing changes."""
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), dict(QUIET, keep_previous_version=True),
                        verbose=False)
    with open(os.path.join(folder, CURRENT), "w") as f:
        f.write("v000001")
    open(os.path.join(folder, "audit.jsonl"), "w").close()
    before = snapshot(folder)
    with pytest.raises(UnlearnError, match=r"requests\.jsonl line \d+ records v000002, yet CURRENT names v000001"):
        run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    assert snapshot(folder) == before


def test_a_folder_saved_with_a_display_only_decimal_setting_still_loads(folder, tmp_path):
    """``metric_decimal_place`` was a runtime display key, stored in a folder's ``config`` when
    given; it is now a recorded setting of at least 4, and a folder saved before with 2 could be
    neither served nor verified (``error: config key 'metric_decimal_place' must be ...``, naming
    a key the user never gave this run; found by probing). Such a folder, whose settings never
    recorded the key, loads with today's default (its retrained shards now validate at 4 places)."""
    from conftest import read_manifest, verify_model

    version_dir, manifest = read_manifest(folder)
    manifest["config"]["metric_decimal_place"] = 2
    manifest["settings"].pop("metric_decimal_place", None)
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    assert open_store(folder).load().config["metric_decimal_place"] == 4
    verify_model(folder)


def test_a_folder_saved_before_weight_records_passes_verify_after_a_forget(folder, tmp_path):
    """A folder saved before weight records were kept, then forgotten from (records for the
    retrained shard only; the untouched shard's stays null), failed ``--verify`` with "has no
    training record, while the version records others (removed by hand?)" (found by probing
    folders of earlier code). Only a version whose records were once complete must keep them."""
    from conftest import read_manifest, verify_model

    version_dir, manifest = read_manifest(folder)  # as saved before the records: none at all
    manifest["trained_on"] = {}
    manifest["aggregator_trained_on"] = None
    manifest.pop("records_complete", None)
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    model = load_model(folder)
    shard_of = model.shard_map.user_shard
    user = next(u for u in range(1, model.dataset.user_num) if shard_of[u] == 0)
    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, user)), QUIET, verbose=False)
    done = verify_model(folder)
    assert done["weights_unchecked"] >= 1 and done["weights_checked"] >= 1, done


def _stop_before_ledger_lines(monkeypatch, status: str) -> None:
    """Make the first ledger append holding a ``status`` line stop the run (Ctrl-C or SIGTERM
    landing just before it is written)."""
    from recbole_unlearn.serving.batcher import RequestBatcher
    real_record = RequestBatcher._record

    def record(self, events):
        if any(e["status"] == status for e in events):
            raise KeyboardInterrupt
        real_record(self, events)

    monkeypatch.setattr(RequestBatcher, "_record", record)


def _ledger_statuses(model_dir: str):
    from conftest import ledger_events
    last = {}
    for event in ledger_events(model_dir):
        last[event["id"]] = event["status"]
    return last


@pytest.mark.parametrize("given", ["file", "watched folder"])
def test_a_stop_before_the_queued_lines_are_written_says_to_give_the_file_again(folder, tmp_path, monkeypatch, given):
    """A stop after a request file was read and counted but before its ``queued`` lines reached
    ``requests.jsonl`` said "1 request read and not recorded as applied yet ...: requests.jsonl
    keeps them, and the next run ... applies the others", while the ledger was empty: the next run
    on another file never applied it and ``--verify`` found nothing waiting (found by probing).
    The line now counts only what the ledger holds as waiting, and says the file must be given
    again for requests read and not queued."""
    from recbole_unlearn.serving.stream import RequestsInterrupted

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = _request(inbox if given == "watched folder" else tmp_path, "a.csv", _user(folder, 3))
    target, settings = path, QUIET
    if given == "watched folder":
        target, settings = str(inbox), dict(QUIET, watch_idle_s=0.5, watch_poll_s=0.05, watch_settle_s=0)
    _stop_before_ledger_lines(monkeypatch, "queued")
    with pytest.raises(RequestsInterrupted) as stop:
        run_forget_requests(folder, target, settings, verbose=False)
    said = str(stop.value)
    assert _ledger_statuses(folder) == {}
    assert said.startswith("0 requests applied, 0 rejected, 0 requests read and not recorded as applied yet"), said
    again = f"give {path} again" if given == "file" else f"{inbox} keeps their file, which the next watch reads again"
    assert "1 request read and not queued" in said and again in said, said
    monkeypatch.undo()
    run_forget_requests(folder, target, settings, verbose=False)  # given again, as the line says: applied once
    assert list(_ledger_statuses(folder).values()) == ["applied"]


def test_a_stop_before_the_applied_lines_are_written_counts_none_as_applied(folder, tmp_path, monkeypatch):
    """A stop after a forget went live and before its ``applied`` ledger lines were written said
    "1 request applied ... 0 ... not recorded as applied yet" while the ledger still said
    ``queued`` (found by probing): the line now counts it as waiting, which the next run records
    from the audit log."""
    from recbole_unlearn.serving.stream import RequestsInterrupted

    path = _request(tmp_path, "a.csv", _user(folder, 3))
    _stop_before_ledger_lines(monkeypatch, "applied")
    with pytest.raises(RequestsInterrupted) as stop:
        run_forget_requests(folder, path, QUIET, verbose=False)
    said = str(stop.value)
    assert list(_ledger_statuses(folder).values()) == ["queued"]
    assert said.startswith("0 requests applied, 0 rejected, 1 request read and not recorded as applied yet"), said
    assert "not queued" not in said, said
    monkeypatch.undo()
    run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    assert sorted(_ledger_statuses(folder).values()) == ["applied", "applied"]


def test_a_lock_whose_pid_cannot_be_written_leaves_the_folder_as_it_was(folder, tmp_path, monkeypatch):
    """On a full disk every run, refused input and ``--verify`` included, left an empty
    ``.lock.pid`` in the model folder: the file was made, its pid could not be written, and the
    lock was released without removing it (found by probing). Bad input changes nothing on disk."""
    import errno
    from recbole_unlearn.serving import lock as lock_module

    before = snapshot(folder)
    real_fdopen = os.fdopen

    def disk_full(fd, *args, **kwargs):
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lock_module.os, "fdopen", disk_full)
    with pytest.raises(UnlearnError, match="cannot be locked \\(No space left on device\\)"):
        run_forget_requests(folder, _request(tmp_path, "bad.csv", "no-such-user"), QUIET, verbose=False)
    monkeypatch.setattr(lock_module.os, "fdopen", real_fdopen)
    assert snapshot(folder) == before


def test_a_version_copied_from_another_model_folder_is_not_taken_for_a_pending_audit_line(tmp_path):
    """Two folders answered the same request file; the live version of one was replaced by the
    other's (copied whole, so its own checksums held). ``--verify`` passed, reporting the
    foreign version's audit line as pending, and the next request run appended that line,
    made with the other folder's key, to the log (its requests then applied twice there) before
    it refused the key (found by probing). Both refuse the foreign line and change nothing."""
    from conftest import verify_model

    folders = []
    for name in ("a", "b"):
        base = tmp_path / name
        base.mkdir()
        folders.append(train_saved_model(base, forget_protocol="none"))
    request = _request(tmp_path, "r.csv", _user(folders[0], 3))
    for model_dir in folders:
        run_forget_requests(model_dir, request, QUIET, verbose=False)
    own, foreign = folders
    version = _versions(own)[-1]
    shutil.rmtree(os.path.join(own, version))
    shutil.copytree(os.path.join(foreign, version), os.path.join(own, version))
    before = snapshot(own)
    with pytest.raises(UnlearnError, match="the live version's audit line, is not this folder's"):
        verify_model(own)
    with pytest.raises(UnlearnError, match="the live version's audit line, is not this folder's"):
        run_forget_requests(own, _request(tmp_path, "s.csv", _user(own, 4)), QUIET, verbose=False)
    assert snapshot(own) == before


def _rewrite_audit(model_dir: str, edit) -> None:
    path = os.path.join(model_dir, "audit.jsonl")
    lines = [json.loads(line) for line in open(path, encoding="utf-8")]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in edit(lines))


def _second_line(lines, **values):
    return lines[:1] + [dict(lines[1], **values)] + lines[2:]


AUDIT_EDITS = {
    "a line duplicated": lambda lines: lines + [lines[0]],
    "two lines swapped": lambda lines: [lines[1], lines[0]] + lines[2:],
    "a version set back": lambda lines: _second_line(lines, version="v000001"),
    "the live line edited": lambda lines: _second_line(lines, seconds=lines[1]["seconds"] + 1),
    "a request moved to another line": lambda lines: (
        [dict(lines[0], request_ids=lines[0]["request_ids"] + lines[1]["request_ids"])] + lines[1:]),
    "changed set false": lambda lines: [dict(lines[0], changed=False)] + lines[1:],
    # (r11fixes probe: an edit that does not set a version back passed)
    "a version set to the next line's": lambda lines: [dict(lines[0], version=lines[1]["version"])] + lines[1:],
    "a version set to v000000": lambda lines: [dict(lines[0], version="v000000")] + lines[1:],
    # (r11round2 probe: with its count set to 0 too, a line set to the version before passed)
    "a line's count set to 0": lambda lines: [dict(lines[0], interactions=0)] + lines[1:],
    "a line's count set to null": lambda lines: [dict(lines[0], interactions=None)] + lines[1:],  # (r11round5)
    "a line's count deleted": lambda lines: [{k: v for k, v in lines[0].items() if k != "interactions"}] + lines[1:],
}


@pytest.mark.parametrize("edit", sorted(AUDIT_EDITS))
def test_verify_finds_an_audit_log_that_contradicts_itself(folder, tmp_path, edit):
    """Each of these hand edits of ``audit.jsonl`` passed ``--verify`` (``verified``, one of them
    only changing the ``applied_without_change`` count; found by probing): a line duplicated, two
    lines swapped, a version set back, the live version's line edited (the version holds the true
    line, ``audit_entry.json``, checksummed), a request in two lines, a line that changed the
    model made to say it did not while its requests are not listed as unchanged."""
    from conftest import verify_model

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    verify_model(folder)
    _rewrite_audit(folder, AUDIT_EDITS[edit])
    # a request run checked the pairs' positions only and applied on top: after "a version set
    # back" its own line made the log pass --verify again, the edit gone (r10round6 probe)
    before = snapshot(folder)
    with pytest.raises(UnlearnError, match="audit.jsonl line"):
        run_forget_requests(folder, _request(tmp_path, "c.csv", _user(folder, 5)), QUIET, verbose=False)
    assert snapshot(folder) == before
    with pytest.raises(UnlearnError, match="audit.jsonl line"):
        verify_model(folder)


@pytest.mark.parametrize("edit", ["an earlier line's pairs emptied", "an earlier line and its ledger lines deleted",
                                  "both logs deleted", "an earlier line's pairs field deleted"])
def test_verify_finds_forgotten_interactions_no_audit_line_covers(folder, tmp_path, edit):
    """``--verify`` counted the forgotten interactions no audit line covers
    (``forgotten_unaudited``) and passed: an earlier line's ``forgotten_hmac`` emptied, that line
    deleted with its requests' ledger lines, or both logs deleted (a probe). Outside a pending
    line (the live forget's, whose process died before appending it), every forgotten
    interaction is in some line: the rest is an error."""
    from conftest import verify_model

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    assert verify_model(folder)["forgotten_unaudited"] == 0
    ledger = os.path.join(folder, "requests.jsonl")
    if edit == "an earlier line's pairs emptied":
        _rewrite_audit(folder, lambda lines: [dict(lines[0], forgotten_hmac=[])] + lines[1:])
    elif edit == "an earlier line's pairs field deleted":  # as lines written before pairs were look (round 3)
        _rewrite_audit(folder, lambda lines: [{k: v for k, v in lines[0].items() if k != "forgotten_hmac"}]
                       + lines[1:])
    elif edit == "an earlier line and its ledger lines deleted":
        first = set(json.loads(open(os.path.join(folder, "audit.jsonl")).readline())["request_ids"])
        _rewrite_audit(folder, lambda lines: lines[1:])
        kept = [line for line in open(ledger) if json.loads(line)["id"] not in first]
        with open(ledger, "w") as f:
            f.writelines(kept)
    else:
        os.unlink(os.path.join(folder, "audit.jsonl"))
        os.unlink(ledger)
    with pytest.raises(UnlearnError, match="forgotten interactions are in no audit line|holds no forgotten_hmac|yet holds 0 forgotten pairs"):
        verify_model(folder)
    before = snapshot(folder)  # a request run applied on top of it (r10round6 probe)
    with pytest.raises(UnlearnError, match="forgotten interactions are in no audit line|holds no forgotten_hmac|yet holds 0 forgotten pairs"):
        run_forget_requests(folder, _request(tmp_path, "c.csv", _user(folder, 5)), QUIET, verbose=False)
    assert snapshot(folder) == before


def test_a_pair_added_to_forgotten_json_is_not_taken_for_a_forgotten_one(folder, tmp_path):
    """A pair added to the live version's ``forgotten.json`` (its checksum in the manifest
    updated) made a request for it ``applied``, ``already_forgotten``, with nothing retrained,
    while the model was trained on it: a faked deletion (r10round6 probe). It is in no audit
    line: the request run refuses before applying anything, as ``--verify`` does."""
    from recbole_unlearn.utils.digests import file_sha256

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    version = os.path.join(folder, open(os.path.join(folder, "CURRENT")).read().strip())
    path = os.path.join(version, "forgotten.json")
    pairs = json.load(open(path)) + [[_user(folder, 4), 0]]
    with open(path, "w") as f:
        json.dump(pairs, f)
    manifest_path = os.path.join(version, "manifest.json")
    manifest = json.load(open(manifest_path))
    manifest["files"]["forgotten.json"] = file_sha256(path)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    model = load_model(folder)
    item = model.dataset.id2token("item_id", int(model.dataset.log_item[model.dataset.user_rows(4)[0]]))
    request = tmp_path / "pair.csv"
    request.write_text(f"{_user(folder, 4)},{item}\n")
    before = snapshot(folder)
    with pytest.raises(UnlearnError, match="forgotten interactions are in no audit line"):
        run_forget_requests(folder, str(request), QUIET, verbose=False)
    assert snapshot(folder) == before


def test_a_current_file_that_is_not_utf8_is_one_error(folder):
    """``CURRENT`` holding bytes that are not UTF-8 ended ``--verify`` in a
    ``UnicodeDecodeError`` traceback (a probe; an empty one was one error line)."""
    from conftest import verify_model

    with open(os.path.join(folder, CURRENT), "wb") as f:
        f.write(b"\xff\xfe")
    with pytest.raises(UnlearnError, match="does not name a model version"):
        verify_model(folder)


def test_verify_finds_a_ledger_status_the_audit_log_contradicts(tmp_path):
    """A request the audit log lists as having changed nothing (``unchanged_request_ids``) with
    ``applied`` as its last ledger status passed ``--verify`` (as did emptying a line's
    ``unchanged_request_ids``, which hid that a forget removed nothing; found by probing): a
    compliance check on the ledger saw the data removed."""
    from conftest import ledger_events, verify_model

    model_dir = train_saved_model(tmp_path, model="SASRec", unlearn_method="sruga", forget_protocol="none",
                                  sruga_learning_rate=1.0, utility_floor=1.0, sruga_epochs=2, sruga_floor_restarts=0)
    run_forget_requests(model_dir, _request(tmp_path, "a.csv", _user(model_dir, 3)), QUIET, verbose=False)
    assert [e["status"] for e in ledger_events(model_dir)][-1] == "applied_without_change"
    verify_model(model_dir)
    ledger = os.path.join(model_dir, "requests.jsonl")
    events = ledger_events(model_dir)
    with open(ledger, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(e) + "\n" for e in events[:-1] + [dict(events[-1], status="applied")])
    with pytest.raises(UnlearnError, match="requests.jsonl line .* is applied, yet audit.jsonl records it "
                                           "applied_without_change"):
        verify_model(model_dir)
    _rewrite_audit(model_dir, lambda lines: lines[:-1] + [dict(lines[-1], unchanged_request_ids=[])])
    with pytest.raises(UnlearnError, match="audit.jsonl line 1"):
        verify_model(model_dir)


def test_a_forget_that_failed_on_a_full_disk_says_so_when_its_failed_lines_cannot_be_written(folder, tmp_path,
                                                                                             monkeypatch):
    """A disk that filled while a forget wrote its version then also refused the requests'
    ``failed`` ledger lines, and the run's error named ``requests.jsonl`` (that second failure),
    hiding where the disk filled (found by probing). The error is the forget's own; the requests
    stay queued for the next run."""
    import errno
    from recbole_unlearn.serving import batcher as batcher_module
    from recbole_unlearn.serving.batcher import RequestBatcher

    def full_disk_forget(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(folder, "v000002", "shard_00_stage_00.pth"))

    real_record = RequestBatcher._record

    def record(self, events):
        if any(e["status"] == "failed" for e in events):
            raise OSError(errno.ENOSPC, "No space left on device", os.path.join(folder, "requests.jsonl"))
        real_record(self, events)

    monkeypatch.setattr(batcher_module, "apply_forget", full_disk_forget)
    monkeypatch.setattr(RequestBatcher, "_record", record)
    with pytest.raises(OSError) as failed:
        run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    assert "shard_00_stage_00.pth" in str(failed.value), failed.value
    monkeypatch.undo()
    assert list(_ledger_statuses(folder).values()) == ["queued"]


def test_verify_finds_held_out_twins_in_a_folder_that_ran_no_audit(folder, tmp_path):
    """The audit's held-out twins (``held_out`` in the manifest) are never trained on and never
    forgotten; a folder trained without ``audit`` has none. Five of a user's training rows added
    there by hand passed ``--verify`` on a single model (whose weights go unchecked), and a later
    request for that user then skipped them unsaid (found by probing on SRUGA)."""
    from conftest import read_manifest, verify_model

    version_dir, manifest = read_manifest(folder)
    assert not manifest.get("held_out")
    user = _user(folder, 3)
    manifest["held_out"] = [[user, position] for position in range(5)]
    with open(os.path.join(version_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(UnlearnError, match="held_out .* trained without audit"):
        verify_model(folder)
    with pytest.raises(UnlearnError, match="held_out .* trained without audit"):
        run_forget_requests(folder, _request(tmp_path, "a.csv", user), QUIET, verbose=False)


def test_the_stop_line_counts_already_forgotten_requests_as_applied(folder, tmp_path, monkeypatch):
    """An already-forgotten request is ``applied`` (``already_forgotten: true``) in the ledger,
    yet a stop line after it said "0 requests applied" and counted it nowhere (found by
    probing)."""
    from recbole_unlearn.serving.batcher import RequestBatcher
    from recbole_unlearn.serving.stream import RequestsInterrupted

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    real_record, applied_appends = RequestBatcher._record, []

    def record(self, events):
        if any(e["status"] == "applied" for e in events):
            applied_appends.append(events)
            if len(applied_appends) == 2:
                raise KeyboardInterrupt
        real_record(self, events)

    monkeypatch.setattr(RequestBatcher, "_record", record)
    with pytest.raises(RequestsInterrupted) as stop:
        run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 3), _user(folder, 4)),
                            dict(QUIET, max_batch=1), verbose=False)
    assert str(stop.value).startswith("1 request applied, 0 rejected, 1 request read and not recorded"), stop.value


def test_a_stop_while_a_read_file_waits_for_the_lock_says_its_requests_are_not_queued(folder, tmp_path, monkeypatch):
    """A watcher that read a file and then waited for the folder's lock (another process's
    forget) said "0 requests read and not recorded", with no word of the file's requests, when
    stopped there (found by probing)."""
    from recbole_unlearn.serving import open_store
    from recbole_unlearn.serving.batcher import RequestBatcher
    from recbole_unlearn.serving.request_files import file_requests
    from recbole_unlearn.serving.stream import RequestsInterrupted, says_what_went_live

    model = load_model(folder)
    store = open_store(folder)
    batcher = RequestBatcher(store, model, 10, 0.0, "requests:inbox")
    requests = file_requests(_request(tmp_path, "x.csv", _user(folder, 3), _user(folder, 4)), model.dataset,
                             1000, 1000, strict=False)[1]

    def stopped_while_waiting():
        raise KeyboardInterrupt

    monkeypatch.setattr(store.lock, "hold", stopped_while_waiting)
    with pytest.raises(RequestsInterrupted, match="; 2 requests read and not queued"):
        with says_what_went_live(batcher.summary, "requests.jsonl", "the folder keeps their file"):
            batcher.submit(requests)


def test_a_run_checks_the_records_again_before_each_of_its_batches(folder, tmp_path, monkeypatch):
    """A watcher (or a request file of several batches) checked the folder's records at its start
    only: an audit line's version set back while it ran was refused by ``--verify``, yet its next
    batch applied on top and appended its line, after which ``--verify`` passed, the edit hidden
    for good (r11fixes probe). Each batch's forget checks them first."""
    from conftest import verify_model
    from recbole_unlearn.serving import batcher

    run_forget_requests(folder, _request(tmp_path, "a.csv", _user(folder, 3)), QUIET, verbose=False)
    run_forget_requests(folder, _request(tmp_path, "b.csv", _user(folder, 4)), QUIET, verbose=False)
    calls = []
    apply_forget = batcher.apply_forget

    def edited_before_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            _rewrite_audit(folder, AUDIT_EDITS["a version set back"])
        return apply_forget(*args, **kwargs)

    monkeypatch.setattr(batcher, "apply_forget", edited_before_the_second_batch)
    _, manifest = read_manifest(folder)
    shard_of = dict(zip(manifest["shard_map"]["users"], manifest["shard_map"]["shard"]))
    asked = {_user(folder, 3), _user(folder, 4)}
    same_shard = [u for u in shard_of if shard_of[u] == 0 and u not in asked][:2]  # two batches of one shard
    requests = tmp_path / "c.csv"
    requests.write_text("".join(f"{user}\n" for user in same_shard))
    from recbole_unlearn.utils.errors import WentLiveError

    with pytest.raises(WentLiveError, match="1 request of this run went live .* then the run failed: UnlearnError: "
                                            ".*audit.jsonl line 2 records v000001 after an earlier line"):
        run_forget_requests(folder, str(requests), dict(QUIET, max_batch=1), verbose=False)
    assert len(calls) == 2
    assert len(open(os.path.join(folder, "audit.jsonl")).readlines()) == 3  # the first batch's line only
    with pytest.raises(UnlearnError, match="audit.jsonl line"):
        verify_model(folder)
