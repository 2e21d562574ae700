"""Request streams: per-shard coalescing, statuses and latency, folder watching, and a
1,000-request load test (nothing lost, nothing applied twice, memory flat)."""
import json
import os
import re
import shutil

import numpy as np
import pytest

from recbole_unlearn.quick_start import run_forget_requests
from recbole_unlearn.serving import batcher as batcher_module
from recbole_unlearn.serving import stream as stream_module
from recbole_unlearn.serving.request_files import file_digest

from conftest import ledger_events, load_model, read_audit, read_manifest, train_saved_model, verify_model


def _id(path, line: int) -> str:
    """The request id of line ``line`` of the request file at ``path`` (content-addressed)."""
    return f"{file_digest(str(path))}:{line}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A SISA model (GRU4Rec, 2 shards) saved after the run's own forget set (version 2)."""
    return train_saved_model(tmp_path_factory.mktemp("stream"), forget_user_ratio=0.05)


@pytest.fixture
def model_copy(trained, in_tmp):
    target = str(in_tmp / "model")
    shutil.copytree(trained, target)
    return target


def _users_by_shard(model_dir):
    _, manifest = read_manifest(model_dir)
    forgotten_users = {u for u, _ in json.load(open(os.path.join(read_manifest(model_dir)[0], "forgotten.json")))}
    by_shard = {}
    for user, shard in zip(manifest["shard_map"]["users"], manifest["shard_map"]["shard"]):
        if user not in forgotten_users:
            by_shard.setdefault(shard, []).append(user)
    return by_shard


def _ledger(model_dir):
    return ledger_events(model_dir)


def test_file_stream_coalesces_per_shard(model_copy, in_tmp):
    by_shard = _users_by_shard(model_copy)
    a, b = by_shard[0][:3], by_shard[1][:1]
    (in_tmp / "req.csv").write_text("".join(f"{u}\n" for u in [a[0], b[0], a[1], a[2]]))
    doc = run_forget_requests(model_copy, str(in_tmp / "req.csv"), {"max_batch": 2, "max_wait_s": 3600,
                                                                   "state": "ERROR"}, verbose=False)
    audit = read_audit(model_copy)[1:]  # [0] is the run's own forget set
    # all four are queued at once; shard 0's group is full (3 >= 2) and gives its first two;
    # nothing else is due, so the file's rest is drained as one version touching both shards
    req = lambda n: _id(in_tmp / "req.csv", n)
    assert [e["request_ids"] for e in audit] == [[req(1), req(3)], [req(4), req(2)]]
    assert [e["shards_retrained"] for e in audit] == [[0], [0, 1]]
    assert [e["version"] for e in audit] == ["v000003", "v000004"]
    events = _ledger(model_copy)
    statuses = {}
    for e in events:
        statuses.setdefault(e["id"], []).append(e["status"])
    assert statuses == {req(i): ["queued", "applied"] for i in range(1, 5)}
    assert {(e["file"], e["line"]) for e in events} == {("req.csv", i) for i in range(1, 5)}
    applied = [e for e in events if e["status"] == "applied"]
    assert all(e["latency_s"] >= 0 for e in applied)
    stream = doc["requests"]
    assert stream["applied"] == 4 and stream["batches"] == 2 and stream["latency_p95_s"] >= stream["latency_median_s"]
    verify_model(model_copy)


def test_batch_of_one_applies_each_request_on_its_own_in_order(model_copy, in_tmp):
    users = _users_by_shard(model_copy)[0][:3]
    (in_tmp / "req.csv").write_text("".join(f"{u}\n" for u in users))
    doc = run_forget_requests(model_copy, str(in_tmp / "req.csv"), {"max_batch": 1, "max_wait_s": 3600,
                                                                   "state": "ERROR"}, verbose=False)
    req = lambda n: _id(in_tmp / "req.csv", n)
    assert [e["request_ids"] for e in read_audit(model_copy)[1:]] == [[req(1)], [req(2)], [req(3)]]
    # latency counts from the moment the file was read: later requests waited for earlier ones
    latency = {e["id"]: e["latency_s"] for e in _ledger(model_copy) if e["status"] == "applied"}
    assert latency[req(1)] < latency[req(2)] < latency[req(3)]
    assert doc["requests"]["batches"] == 3


def test_watched_folder_rejects_bad_lines_and_applies_the_rest(model_copy, in_tmp):
    by_shard = _users_by_shard(model_copy)
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(f"{by_shard[0][0]}\nnobody\n{by_shard[1][0]},not-an-item\n{by_shard[0][0]}\n")
    (inbox / "b.csv").write_text("1,2,3\n")
    (inbox / ".c.csv").write_text(f"{by_shard[1][1]}\n")  # still being written: ignored
    a_digest, b_digest = file_digest(str(inbox / "a.csv")), file_digest(str(inbox / "b.csv"))
    a, b = (lambda n: f"{a_digest}:{n}"), (lambda n: f"{b_digest}:{n}")
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                       "max_wait_s": 0, "state": "ERROR"}, verbose=False)
    assert doc["requests"]["applied"] == 1 and doc["requests"]["rejected"] == 4
    reasons = {e["id"]: e.get("reason", "") for e in _ledger(model_copy) if e["status"] == "rejected"}
    assert reasons[a(2)] == "request a.csv:2: unknown user token"  # named by its line, not its tokens
    assert reasons[a(3)] == "request a.csv:3: unknown item token"
    assert "repeats a.csv:1" in reasons[a(4)]
    assert "expected 'user_token[,item_token]'" in reasons[b(1)]
    assert sorted(os.listdir(inbox / "processed")) == ["a.csv"]
    assert sorted(os.listdir(inbox / "rejected")) == ["b.csv"]
    assert os.path.exists(inbox / ".c.csv")
    assert read_audit(model_copy)[-1]["request_ids"] == [a(1)]
    assert doc["requests"]["queued"] == 5


class _DirectWriter:
    """A client that writes straight into a watched folder (``cp``, ``scp``, an editor) instead of
    renaming a finished file: it holds the file open and writes on as the watcher polls, so its
    later lines go wherever the file is by then (``processed/`` included)."""

    def __init__(self, path, first_lines):
        self.path = path
        self.handle = open(path, "w")
        self.handle.write("".join(f"{line}\n" for line in first_lines))
        self.handle.flush()

    def write(self, lines, close: bool = False):
        self.handle.write("".join(f"{line}\n" for line in lines))
        self.handle.flush()
        if close:
            self.handle.close()

    def close(self):
        self.handle.close()

    def append(self, lines):
        """Write ``lines`` the way ``echo ... >> file`` does: open, append, close."""
        with open(self.path, "a") as f:
            f.write("".join(f"{line}\n" for line in lines))


def _on_next_sleep(monkeypatch, action, after_first_read=False):
    """Run ``action`` once, at the watcher's next poll sleep (after it first read a request
    file, with ``after_first_read``)."""
    state = {"read": not after_first_read, "done": False}
    real_sleep, real_read = stream_module.time.sleep, stream_module.file_requests

    def reading(*args, **kwargs):
        state["read"] = True
        return real_read(*args, **kwargs)

    def sleeping(seconds):
        if state["read"] and not state["done"]:
            state["done"] = True
            action()
        real_sleep(seconds)

    monkeypatch.setattr(stream_module, "file_requests", reading)
    monkeypatch.setattr(stream_module.time, "sleep", sleeping)


def _forgotten_users(model_dir):
    return {u for u, _ in json.load(open(os.path.join(read_manifest(model_dir)[0], "forgotten.json")))}


def test_watched_folder_waits_until_a_file_stops_changing(model_copy, in_tmp, monkeypatch):
    """A file still being written is not read: earlier code read it at first sight, applied its
    first lines and moved it to processed/, and the lines written after were never applied."""
    users = _users_by_shard(model_copy)[0][:3]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    writer = _DirectWriter(inbox / "req.csv", users[:2])
    _on_next_sleep(monkeypatch, lambda: writer.write(users[2:], close=True))
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                       "max_wait_s": 0, "state": "ERROR"}, verbose=False)
    assert set(users) <= _forgotten_users(model_copy)
    assert doc["requests"]["applied"] == 3 and doc["requests"]["queued"] == 3
    whole = file_digest(str(inbox / "processed" / "req.csv"))
    assert {e["id"] for e in _ledger(model_copy) if e["status"] == "applied"} == {f"{whole}:{n}" for n in (1, 2, 3)}
    verify_model(model_copy)


def test_watched_folder_reads_again_a_file_that_changed_after_it_was_read(model_copy, in_tmp, monkeypatch):
    """A writer that paused longer than the settling time and then wrote on: the file is read
    again and its new lines are applied (its earlier lines, now under the new content's ids,
    forget nothing more); earlier code moved it to processed/ with its new lines never applied."""
    users = _users_by_shard(model_copy)[0][:3]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    writer = _DirectWriter(inbox / "req.csv", users[:2])
    writer.close()  # then opened again to append (echo ... >> req.csv)
    first = file_digest(str(inbox / "req.csv"))
    _on_next_sleep(monkeypatch, lambda: writer.append(users[2:]), after_first_read=True)
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                       "watch_settle_s": 0, "max_wait_s": 0.3,
                                                       "state": "ERROR"}, verbose=False)
    assert set(users) <= _forgotten_users(model_copy)
    whole = file_digest(str(inbox / "processed" / "req.csv"))
    final = {e["id"]: e for e in _ledger(model_copy) if e["status"] == "applied"}
    assert set(final) == {f"{first}:1", f"{first}:2", f"{whole}:1", f"{whole}:2", f"{whole}:3"}
    audited = [i for e in read_audit(model_copy)[1:] for i in e["request_ids"]]
    assert sorted(audited) == sorted(final)  # each once
    assert doc["requests"]["queued"] == 5
    verify_model(model_copy)


def test_watched_folder_applies_a_file_removed_before_its_requests_were_final(model_copy, in_tmp, monkeypatch):
    """Requests read from a file that was then deleted from the folder are applied (they were
    received); earlier code crashed with a traceback when it came to move the missing file."""
    users = _users_by_shard(model_copy)[0][:2]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "req.csv").write_text("".join(f"{u}\n" for u in users))
    _on_next_sleep(monkeypatch, lambda: os.remove(inbox / "req.csv"), after_first_read=True)
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                       "watch_settle_s": 0, "max_wait_s": 0.3,
                                                       "state": "ERROR"}, verbose=False)
    assert doc["requests"]["applied"] == 2
    assert set(users) <= _forgotten_users(model_copy)
    assert not os.path.exists(inbox / "processed" / "req.csv")
    verify_model(model_copy)


def test_watched_folder_can_delete_request_files_once_final(model_copy, in_tmp, capsys):
    """A processed request file is the forgotten (user, item) pairs in plain text; it stayed in
    ``processed/`` for ever, while the audit log stores only keyed hashes of them. With
    ``processed_request_files: delete`` a file whose requests are all final is deleted (the ledger
    and the audit log keep the proof); a file none of whose lines was valid still goes to
    ``rejected/``, for people to mend."""
    users = _users_by_shard(model_copy)[0][:2]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text("".join(f"{u}\n" for u in users) + "no-such-user\n")
    (inbox / "b.csv").write_text("no-such-user\n")
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                       "watch_settle_s": 0, "max_wait_s": 0,
                                                       "processed_request_files": "delete",
                                                       "state": "ERROR"})
    assert doc["requests"]["applied"] == 2 and doc["requests"]["rejected"] == 2
    assert "note: 2 requests were rejected" in capsys.readouterr().out
    assert set(doc["rows"][0]["cpu_meter"]) == {"wall_s", "own_cpu_s", "others_cpu_s", "others_share", "forget_others_share"}
    assert set(users) <= _forgotten_users(model_copy)
    assert sorted(os.listdir(inbox)) == ["rejected"] and os.listdir(inbox / "rejected") == ["b.csv"]
    assert {e["status"] for e in _ledger(model_copy) if e["file"] == "a.csv"} >= {"applied", "rejected"}
    verify_model(model_copy)


def test_the_ledger_keeps_no_token_of_a_rejected_request(model_copy, in_tmp):
    """A rejected request's reason quoted what it was sent: "user '9' has no training interaction
    with item '487': it is the user's validation target". The ledger is kept for good (and is
    readable by all), so the user's real interactions stayed there in plain text after
    ``processed_request_files: delete`` had removed the file. A reason now names the line and
    the problem, never its tokens."""
    ds = load_model(model_copy).dataset
    user = next(u for u in _users_by_shard(model_copy)[0] if len(u) > 1)  # not a word of a reason
    rows = ds.user_rows(ds.field2token_id[ds.uid_field][user])
    held = [ds.id2token(ds.iid_field, ds.log_item[r]) for r in rows if not ds.is_training[r]]
    trained = ds.id2token(ds.iid_field, ds.log_item[rows[0]])
    sent = [f"{user},{held[0]}", f"{user},{held[1]}", "someone-else", f"{user},an-item-we-never-had",
            f"{user},{trained},{held[0]}", f"{user},{trained}", f"{user},{trained}"]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text("".join(f"{line}\n" for line in sent))
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                       "watch_settle_s": 0, "max_wait_s": 0,
                                                       "processed_request_files": "delete", "state": "ERROR"},
                              verbose=False)
    assert doc["requests"]["applied"] == 1 and doc["requests"]["rejected"] == 6
    reasons = {e["line"]: e["reason"] for e in _ledger(model_copy) if e["status"] == "rejected"}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 7]
    tokens = {user, trained, "someone-else", "an-item-we-never-had", *held}
    for line, reason in reasons.items():
        assert reason.startswith(f"request a.csv:{line}: "), reason
        words = set(re.findall(r"[\w.-]+", reason[len(f"request a.csv:{line}: "):]))
        assert not words & tokens, (reason, words & tokens)
    assert "the user's validation target" in reasons[1] and "test target" in reasons[2]
    assert "unknown user token" in reasons[3] and "unknown item token" in reasons[4]
    assert "expected 'user_token[,item_token]'" in reasons[5] and "repeats a.csv:6" in reasons[7]
    with open(os.path.join(model_copy, "requests.jsonl")) as f:
        assert "someone-else" not in f.read()


# --- found by trying the watcher as an operator would (each failed before its fix) ---------
@pytest.mark.parametrize("inside", ["", "v000002"])
def test_watching_the_model_folder_itself_is_refused_and_changes_nothing(model_copy, inside):
    """``--forget=<model_dir>`` (a typo, or ``--forget=.`` from inside it) read the folder's own
    files as request files: ``CURRENT``, ``audit.jsonl`` and ``audit.key`` were rejected and moved
    to ``rejected/``, and the ledger it appends to was read again forever; the folder was no
    longer a model folder."""
    from conftest import snapshot
    from recbole_unlearn.utils.errors import UnlearnError

    before = snapshot(model_copy)
    results = os.path.join(os.path.dirname(model_copy), "runs")
    with pytest.raises(UnlearnError, match="is the model folder or inside it"):
        run_forget_requests(model_copy, os.path.join(model_copy, inside),
                            {"watch_idle_s": 0.5, "state": "ERROR", "results_dir": results}, verbose=False)
    assert snapshot(model_copy) == before
    # nor is a run folder made (it held an empty run.log; r12badinput probe)
    assert not os.path.exists(results), os.listdir(results)


def test_a_request_read_before_its_file_was_removed_is_applied_by_the_next_run(model_copy, in_tmp, monkeypatch):
    """A watcher that read a file (its requests queued, waiting ``max_wait_s``) and stopped before
    applying them (a service stop, Ctrl-C), with the file removed meanwhile, lost them: the ledger
    said ``queued`` and held nothing to apply, and the next run said nothing. The ledger's
    ``queued`` line now keeps the log rows the request resolved to, and every run first applies
    the requests earlier runs left waiting."""
    user = _users_by_shard(model_copy)[0][0]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(f"{user}\n")

    def stop():
        os.remove(inbox / "a.csv")
        raise KeyboardInterrupt

    _on_next_sleep(monkeypatch, stop, after_first_read=True)
    with pytest.raises(KeyboardInterrupt):
        run_forget_requests(model_copy, str(inbox), {"watch_poll_s": 0.05, "watch_settle_s": 0,
                                                     "max_wait_s": 3600, "state": "ERROR"}, verbose=False)
    monkeypatch.undo()
    assert verify_model(model_copy)["requests_not_final"] == 1
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.3, "watch_poll_s": 0.05,
                                                       "max_wait_s": 0, "state": "ERROR"}, verbose=False)
    assert doc["requests"]["resumed"] == 1 and doc["requests"]["applied"] == 1
    assert user in _forgotten_users(model_copy)
    assert verify_model(model_copy)["requests_not_final"] == 0


def _a_request_left_failed(model_copy, in_tmp, monkeypatch) -> list:
    """Two users of shard 0: the first's request (``a.csv``) left ``failed`` by a forget that
    raised, the second's written to ``b.csv``; returns both users."""
    users = _users_by_shard(model_copy)[0][:2]
    (in_tmp / "a.csv").write_text(f"{users[0]}\n")
    (in_tmp / "b.csv").write_text(f"{users[1]}\n")
    monkeypatch.setattr(batcher_module, "apply_forget", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError):
        run_forget_requests(model_copy, str(in_tmp / "a.csv"), {"state": "ERROR"}, verbose=False)
    monkeypatch.undo()
    return users


def test_a_failed_request_is_applied_by_the_next_run_whatever_file_it_answers(model_copy, in_tmp, monkeypatch):
    """A batch whose forget raised left its requests ``failed``; only the same file given again
    could apply them. The next run on the folder applies them first."""
    users = _a_request_left_failed(model_copy, in_tmp, monkeypatch)
    doc = run_forget_requests(model_copy, str(in_tmp / "b.csv"), {"state": "ERROR", "max_wait_s": 0}, verbose=False)
    assert doc["requests"]["resumed"] == 1 and doc["requests"]["applied"] == 2
    assert set(users) <= _forgotten_users(model_copy)
    assert verify_model(model_copy)["requests_not_final"] == 0


def test_a_resumed_requests_latency_counts_from_when_it_was_first_queued(model_copy, in_tmp, monkeypatch):
    """A request an earlier run queued and left waiting (killed, or its forget failed) reported the
    latency of the run that applied it alone (5.7 s for a request queued 53 s before it went live:
    timing probe); "latency from being read to its version being live" counts from its first
    ``queued`` line, and its ``applied`` line says it was resumed."""
    import json
    import time

    _a_request_left_failed(model_copy, in_tmp, monkeypatch)
    path = os.path.join(model_copy, "requests.jsonl")
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    assert all(isinstance(line["queued_at"], float) for line in lines if line["status"] == "queued")
    # as if the first run had queued it two minutes ago, in a time zone 9 hours east of this one:
    # the local "time" of the line was read in this process's zone (9 hours of latency; round-2 probe)
    for line in lines:
        line["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 120 + 9 * 3600))
        if "queued_at" in line:
            line["queued_at"] = time.time() - 120
    with open(path, "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    resumed_id = lines[0]["id"]
    doc = run_forget_requests(model_copy, str(in_tmp / "b.csv"), {"state": "ERROR", "max_wait_s": 0}, verbose=False)
    assert doc["requests"]["resumed"] == 1 and doc["requests"]["applied"] == 2
    applied = {e["id"]: e for e in _ledger(model_copy) if e["status"] == "applied"}
    assert 119 <= applied[resumed_id]["latency_s"] < 600 and applied[resumed_id]["resumed"] is True, applied[resumed_id]
    fresh = [e for rid, e in applied.items() if rid != resumed_id]
    assert len(fresh) == 1 and fresh[0]["latency_s"] < 119 and "resumed" not in fresh[0]
    assert doc["requests"]["latency_max_s"] >= 119


def test_the_same_bytes_under_two_names_at_once_are_one_request(model_copy, in_tmp):
    """Two copies of one file read before either was applied were queued twice: the audit line
    listed the same id twice and the summary counted two applied requests."""
    user = _users_by_shard(model_copy)[0][0]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(f"{user}\n")
    shutil.copy(inbox / "a.csv", inbox / "b.csv")
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                       "watch_settle_s": 0, "max_wait_s": 0.3, "state": "ERROR"},
                              verbose=False)
    assert doc["requests"]["applied"] == 1 and doc["requests"]["skipped_already_queued"] == 1
    ids = [i for entry in read_audit(model_copy)[1:] for i in entry["request_ids"]]
    assert ids == [_id(inbox / "processed" / "a.csv", 1)]
    assert sorted(os.listdir(inbox / "processed")) == ["a.csv", "b.csv"]


@pytest.mark.parametrize("odd", ["symlink loop", "processed is a file"])
def test_an_odd_entry_in_the_inbox_neither_stops_the_watcher_nor_its_restart(model_copy, in_tmp, odd):
    """A symlink loop in the inbox (``OSError: Too many levels of symbolic links``) and an entry
    named ``processed`` that is no folder (a finished file cannot be moved: ``FileExistsError``;
    a read-only inbox the same, ``PermissionError``) stopped the watcher
    with a traceback, and every restart stopped the same way, the other files never applied."""
    user = _users_by_shard(model_copy)[0][0]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    if odd == "symlink loop":
        os.symlink("loop.csv", inbox / "loop.csv")
    else:
        os.symlink("nowhere", inbox / "processed")  # not a request file, and no folder can be made there
    (inbox / "a.csv").write_text(f"{user}\n")
    runs = [run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                         "watch_settle_s": 0, "max_wait_s": 0, "state": "ERROR"},
                                verbose=False)["requests"] for _ in range(2)]
    assert user in _forgotten_users(model_copy) and runs[0]["applied"] == 1
    if odd == "symlink loop":
        assert os.listdir(inbox / "processed") == ["a.csv"] and runs[1]["received"] == 0
    else:  # a.csv stays where it is; read again, it is skipped
        assert os.path.exists(inbox / "a.csv") and runs[1]["skipped_already_final"] == 1


@pytest.mark.parametrize("how", ["removed", "replaced by a file"])
def test_an_inbox_removed_while_watched_is_one_error_after_its_requests_are_applied(model_copy, in_tmp, monkeypatch,
                                                                                     how):
    """(Replaced by a file, it was a ``NotADirectoryError`` traceback; found by probing.) The
    requests read from it went live, so the error says so (``WentLiveError``: exit status 3)."""
    from recbole_unlearn.utils.errors import WentLiveError

    user = _users_by_shard(model_copy)[0][0]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(f"{user}\n")

    def take_it_away():
        shutil.rmtree(inbox)
        if how == "replaced by a file":
            inbox.write_text("x\n")

    _on_next_sleep(monkeypatch, take_it_away, after_first_read=True)
    with pytest.raises(WentLiveError, match=r"went live .*was removed \(or replaced by a file\) while it was watched"):
        run_forget_requests(model_copy, str(inbox), {"watch_poll_s": 0.05, "watch_settle_s": 0,
                                                     "max_wait_s": 3600, "state": "ERROR"}, verbose=False)
    assert user in _forgotten_users(model_copy)


def test_moving_a_file_another_watcher_moved_first_is_not_an_error(in_tmp):
    """Between a watcher's check and its move, another watcher of the folder can move the file:
    earlier code crashed there (FileNotFoundError)."""
    (in_tmp / "processed").mkdir()
    (in_tmp / "processed" / "a.csv").write_text("1\n")  # the other watcher's move
    stream_module._move(str(in_tmp), "a.csv", stream_module.PROCESSED)
    assert os.listdir(in_tmp / "processed") == ["a.csv"]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def test_load_1000_single_interaction_requests(model_copy, in_tmp, monkeypatch):
    """Fast CI version of the load test: 1,000 queued single-interaction requests on ml-tiny."""
    model = load_model(model_copy)
    ds = model.dataset
    training = np.flatnonzero(ds.is_training)
    training = np.setdiff1d(training, model.forgotten)
    pairs = sorted({(str(ds.id2token("user_id", ds.log_user[r])), str(ds.id2token("item_id", ds.log_item[r])))
                    for r in training})
    assert len(pairs) >= 1000
    chosen = [pairs[i] for i in np.random.default_rng(0).choice(len(pairs), 1000, replace=False)]
    (in_tmp / "load.csv").write_text("".join(f"{u},{i}\n" for u, i in chosen))
    del model

    memory = []
    apply = batcher_module.RequestBatcher._apply

    def measured(self, batch):
        apply(self, batch)
        memory.append(_rss_mb())

    monkeypatch.setattr(batcher_module.RequestBatcher, "_apply", measured)
    doc = run_forget_requests(model_copy, str(in_tmp / "load.csv"),
                              {"max_batch": 50, "max_wait_s": 3600, "state": "ERROR"}, verbose=False)
    assert doc["requests"]["applied"] == 1000 and doc["requests"]["rejected"] == 0
    ids = [rid for e in read_audit(model_copy) for rid in e.get("request_ids", [])]
    assert len(ids) == 1000 and len(set(ids)) == 1000  # nothing lost, nothing applied twice
    assert set(ids) == {_id(in_tmp / "load.csv", n) for n in range(1, 1001)}
    applied = [e["id"] for e in _ledger(model_copy) if e["status"] == "applied"]
    assert sorted(applied) == sorted(ids)
    # flat memory: after the first batches warm up, resident memory grows by less than 60 MB
    assert len(memory) >= 10
    assert max(memory[3:]) - memory[3] < 60, memory
    verify_model(model_copy)


def test_two_runs_answering_requests_in_the_same_second_keep_both_results(model_copy, in_tmp, monkeypatch):
    """A run answering requests wrote ``results/forget-<model>-<dataset>-<time to the second>/``
    with ``exist_ok``: two runs on one folder that ended in the same second (two request files
    answered side by side, as the README describes) wrote one ``results.json`` over the other."""
    from recbole_unlearn.quick_start import forget_requests

    monkeypatch.setattr(forget_requests, "get_local_time", lambda: "Dec-06-2026_02-00-00")
    users = _users_by_shard(model_copy)[0][:2]
    paths = []
    for n, user in enumerate(users):
        (in_tmp / f"{n}.csv").write_text(f"{user}\n")
        paths.append(run_forget_requests(model_copy, str(in_tmp / f"{n}.csv"), {"state": "ERROR"},
                                         verbose=False)["results_path"])
    assert paths[0] != paths[1] and all(os.path.exists(p) for p in paths)


def test_a_run_folder_taken_between_the_check_and_the_creation_gets_the_next_name(in_tmp, monkeypatch):
    from recbole_unlearn.unlearn.experiment import run_dir_for

    (in_tmp / "run").mkdir()
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # another process made it in between
    assert run_dir_for(str(in_tmp), "run") == str(in_tmp / "run-1")


def test_a_stopped_watcher_says_what_it_applied_and_what_waits(model_copy, in_tmp):
    """A deletion service stopped by its supervisor (SIGTERM) died without a word, and Ctrl-C said
    only "error: interrupted": nothing told the operator that a request read from the inbox was
    still waiting (its file already gone). The run now stops with one ``error:`` line that counts
    what it applied and what waits for the next run, and the request is still applied by it."""
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    user = _users_by_shard(model_copy)[0][0]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(f"{user}\n")
    proc = subprocess.Popen([sys.executable, os.path.join(root, "run_recbole_unlearn.py"), f"--model_dir={model_copy}",
                             "--forget=inbox", "--state=ERROR", "--max_wait_s=3600", "--watch_poll_s=0.05",
                             "--watch_settle_s=0"], cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not any(e["status"] == "queued" for e in ledger_events(model_copy)) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), err
    assert "0 requests applied" in lines[0] and "1 request read and not recorded as applied yet" in lines[0], lines[0]
    assert verify_model(model_copy)["requests_not_final"] == 1
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.3, "watch_poll_s": 0.05, "max_wait_s": 0,
                                                       "state": "ERROR"}, verbose=False)
    assert doc["requests"]["resumed"] == 1 and doc["requests"]["applied"] == 1


def test_a_stop_after_the_forget_went_live_is_not_reported_as_not_applied(model_copy, in_tmp):
    """SIGTERM once the new version was live (``current_switched``), in a run whose shards Ray
    trained: Ray's own SIGTERM handler aborted the process (no ``error:`` line, a core dump's
    trace); the line said "read and not applied yet" of requests already live; and the next run,
    on another file, left their ledger lines ``queued`` for good (found by probing)."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    users = _users_by_shard(model_copy)[0][:2]
    (in_tmp / "a.csv").write_text(f"{users[0]}\n")
    (in_tmp / "b.csv").write_text(f"{users[1]}\n")
    env = dict(os.environ, RECBOLE_UNLEARN_KILL_AT="current_switched", RECBOLE_UNLEARN_KILL_SIGNAL="SIGTERM")
    proc = subprocess.run([sys.executable, os.path.join(root, "run_recbole_unlearn.py"), f"--model_dir={model_copy}",
                           "--forget=a.csv", "--state=ERROR", "--num_workers=2", "--ray_cpus_per_shard=1"],
                          cwd=in_tmp, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 130, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted: 0 requests applied"), proc.stderr
    assert "1 request read and not recorded as applied yet (a forget in progress may have gone live)" in lines[0]
    doc = run_forget_requests(model_copy, str(in_tmp / "b.csv"), {"state": "ERROR"}, verbose=False)
    assert doc["requests"]["applied"] == 1 and doc["requests"]["resumed"] == 0  # a.csv's request was live already
    last = {}
    for event in ledger_events(model_copy):
        last[event["id"]] = event["status"]
    assert sorted(last.values()) == ["applied", "applied"], last
    assert verify_model(model_copy)["requests_not_final"] == 0
    assert {users[0], users[1]} <= _forgotten_users(model_copy)


def test_a_request_file_run_writes_its_log_into_its_run_folder(model_copy, in_tmp):
    """A run answering one request file wrote no log (its forgets' lines and SRUGA's checks were
    lost), and a watcher's run wrote ``log/`` into the working directory, which a run answering
    requests leaves as it was. Both log into their run folder (``run.log`` beside
    ``results.json``) once their input is valid; a file refused as bad input writes nothing."""
    user = _users_by_shard(model_copy)[0][0]
    (in_tmp / "bad.csv").write_text(f"{user}\nno-such-user\n")
    results = in_tmp / "results"
    with pytest.raises(Exception, match="no-such-user"):
        run_forget_requests(model_copy, str(in_tmp / "bad.csv"), {"state": "INFO", "results_dir": str(results)},
                            verbose=False)
    assert not results.exists() and not (in_tmp / "log").exists()
    (in_tmp / "req.csv").write_text(f"{user}\n")
    doc = run_forget_requests(model_copy, str(in_tmp / "req.csv"), {"state": "INFO", "results_dir": str(results)},
                              verbose=False)
    log = os.path.join(os.path.dirname(doc["results_path"]), "run.log")
    assert "requests done:" in open(log).read()
    assert not (in_tmp / "log").exists()
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    doc = run_forget_requests(model_copy, str(inbox), {"state": "INFO", "results_dir": str(results),
                                                       "watch_idle_s": 0.5}, verbose=False)
    assert "requests done:" in open(os.path.join(os.path.dirname(doc["results_path"]), "run.log")).read()
    assert not (in_tmp / "log").exists()


def test_a_request_run_says_when_a_retrained_shard_stopped_at_its_cap(model_copy, in_tmp, capsys):
    """A training run names every model that stopped at its ``epochs`` cap rather than by
    validation; a request run, whose forgets retrain shards by the same rule, said nothing (its
    row held no training record either): a deployment answering requests with ``epochs: 1``
    never learned that its retrained shards were cut short."""
    user = _users_by_shard(model_copy)[0][0]
    (in_tmp / "req.csv").write_text(f"{user}\n")
    doc = run_forget_requests(model_copy, str(in_tmp / "req.csv"), {"state": "ERROR"})
    row = doc["rows"][0]
    stages = [stage for step in row["forget_training"]["steps"] for shard in step["shards"].values()
              for stage in shard.values()]
    assert stages and all(stage["epochs"] == 1 and stage["hit_cap"] for stage in stages)
    out = capsys.readouterr().out
    assert "note: sisa (forget: 1 shard stage) stopped at their cap (epochs 1), not by validation" in out, out
    # the saved model's caps: a request run cannot raise them (it advised --epochs, which it refuses)
    assert "the saved model's settings: train a new model folder with --epochs higher" in out, out


@pytest.mark.parametrize("kept", ["processed", "delete"])
def test_a_file_is_neither_read_nor_moved_while_a_writer_holds_it_open(model_copy, in_tmp, monkeypatch, kept):
    """``export.py > inbox/x.csv``: a header (or nothing) first, then a pause longer than
    ``watch_settle_s`` while the query runs, then the requests. The settled header was read,
    rejected and the file moved to ``rejected/`` (or a first valid line applied and the file
    deleted), and every line written after went into the moved (or deleted) file: never read,
    no ledger line, ``--verify`` passing (found by probing). Where the system can tell (a Linux
    read lease is refused while any process holds the file open for writing), a file is not
    read, moved or deleted until its writer closes it."""
    if stream_module.being_written(__file__) is None:
        pytest.skip("this system cannot tell whether a file is open for writing")
    users = _users_by_shard(model_copy)[0][:3]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    writer = _DirectWriter(inbox / "export.csv", ["user_id,item_id"] if kept == "processed" else users[:1])
    _on_next_sleep(monkeypatch, lambda: writer.write(users[1:] if kept == "delete" else users, close=True))
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                       "watch_settle_s": 0, "max_wait_s": 0,
                                                       "processed_request_files": "keep" if kept == "processed"
                                                       else "delete", "state": "ERROR"}, verbose=False)
    assert set(users) <= _forgotten_users(model_copy)
    assert doc["requests"]["applied"] == 3 and doc["requests"]["rejected"] == (kept == "processed")
    assert sorted(os.listdir(inbox)) == (["processed"] if kept == "processed" else [])
    verify_model(model_copy)


@pytest.mark.parametrize("link", [os.symlink, os.link], ids=["symbolic", "hard"])
def test_a_link_in_the_inbox_to_a_model_file_is_rejected_unread(model_copy, in_tmp, link):
    """A link to the model's ledger in the watched folder: the watcher read the ledger as
    requests, rejected each line into the ledger it was reading, and never went idle (223,104
    lines in a minute; probe); a hard link has no path into the model folder, so a first fix
    passed it (probe). A file that is one of the model folder's files, by path or by identity,
    is one rejected request, not read."""
    (in_tmp / "one.csv").write_text(f"{_users_by_shard(model_copy)[0][0]}\n")
    run_forget_requests(model_copy, str(in_tmp / "one.csv"), {"state": "ERROR"}, verbose=False)  # a ledger
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    link(os.path.join(model_copy, "requests.jsonl"), inbox / "led.csv")
    before = len(_ledger(model_copy))
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                       "watch_settle_s": 0, "state": "ERROR"}, verbose=False)
    assert doc["requests"]["rejected"] == 1 and doc["requests"]["queued"] == 1
    added = _ledger(model_copy)[before:]
    assert [e["status"] for e in added] == ["queued", "rejected"], added
    assert "into the model folder" in added[1]["reason"], added
    assert os.listdir(inbox / "rejected") == ["led.csv"]
    verify_model(model_copy)


def test_editor_backups_and_partial_transfers_are_not_read(model_copy, in_tmp):
    """``req.csv~`` and ``x.TMP`` were read and applied as requests (probe): only ``.name`` and
    lower-case ``name.tmp`` were left alone. Editors' backups, autosaves and swap files and
    partial transfers are left alone too, whatever the case of their suffix."""
    users = _users_by_shard(model_copy)[0][:2]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    unfinished = ["req.csv~", "x.TMP", "#req.csv#", "a.filepart", "a.part", "a.crdownload", "a.swp", "~$a.csv"]
    for name in unfinished:
        (inbox / name).write_text(f"{users[1]}\n")
    (inbox / "req.csv").write_text(f"{users[0]}\n")
    doc = _watch_quickly(model_copy, inbox)
    assert doc["requests"]["queued"] == 1 and doc["requests"]["applied"] == 1
    assert users[1] not in _forgotten_users(model_copy)
    assert sorted(os.listdir(inbox)) == sorted(unfinished + ["processed"])


def test_a_link_moved_to_processed_never_names_nothing(model_copy, in_tmp):
    """A relative link moved into ``processed/`` pointed at nothing there (probe); a link to a
    file of the same folder, moved pointing at where that file was, did too once that file had
    moved (probe). A link to a file elsewhere keeps naming it (absolute); a second name of a
    file the folder processes on its own is removed once final."""
    users = _users_by_shard(model_copy)[0][:2]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (in_tmp / "src.csv").write_text(f"{users[0]}\n")
    os.symlink("../src.csv", inbox / "link.csv")
    (inbox / "real.csv").write_text(f"{users[1]}\n")
    os.symlink("real.csv", inbox / "alias.csv")
    doc = _watch_quickly(model_copy, inbox)
    assert doc["requests"]["applied"] == 2
    assert sorted(os.listdir(inbox / "processed")) == ["link.csv", "real.csv"]
    moved = inbox / "processed" / "link.csv"
    assert os.path.islink(moved) and os.path.realpath(moved) == os.path.realpath(in_tmp / "src.csv")


def test_a_file_the_watchers_own_process_writes_is_left_alone(model_copy, in_tmp):
    """The watcher's own output redirected into the watched folder (``> inbox/watch.log``) is a
    file held open for writing until the watcher ends: it waited for it for ever, logging that
    another process wrote it (probe). Files this process writes are not request files."""
    users = _users_by_shard(model_copy)[0][:1]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "req.csv").write_text(f"{users[0]}\n")
    with open(inbox / "watch.log", "w") as log:
        log.write("started\n")
        log.flush()
        doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05,
                                                           "watch_settle_s": 0, "max_wait_s": 0,
                                                           "state": "ERROR"}, verbose=False)
    assert doc["requests"]["queued"] == 1 and doc["requests"]["applied"] == 1
    assert sorted(os.listdir(inbox)) == ["processed", "watch.log"]


def test_the_write_check_answers_from_any_thread_and_a_fifo_is_never_opened_blocking(tmp_path):
    """Off the main thread the check said "cannot tell", so a watcher run by a service in a
    thread read a file still being written, with a cut last line (probe); and a FIFO put in a
    listed file's place blocked the watcher in open() for ever (probe)."""
    import threading

    from recbole_unlearn.data.forget import read_request_file
    from recbole_unlearn.utils.errors import UnlearnError

    path = tmp_path / "req.csv"
    answers = []
    with open(path, "w") as writer:
        writer.write("7\n")
        writer.flush()
        thread = threading.Thread(target=lambda: answers.append(stream_module.being_written(str(path))))
        thread.start()
        thread.join()
    assert answers == [True]
    os.mkfifo(tmp_path / "fifo.csv")
    errors = []

    def read():
        try:
            read_request_file(str(tmp_path / "fifo.csv"), 10, 100)
        except UnlearnError as e:
            errors.append(str(e))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and "not a regular file" in errors[0], errors


def _watch_quickly(model_dir, inbox):
    """Watch ``inbox`` for ``model_dir`` with short waits (files settle at once, idle after 0.5 s)."""
    return run_forget_requests(model_dir, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05, "watch_settle_s": 0,
                                                       "max_wait_s": 0, "state": "ERROR"}, verbose=False)


def test_a_watcher_records_the_dataset_file_it_loaded_not_one_changed_under_it(model_copy, in_tmp, monkeypatch):
    """A watcher loaded the model against its dataset file (checked); the file was then edited
    on disk (an operator purging a forgotten line) and the watcher's next version recorded the
    edited file's digest, as if trained on it: the next run accepted the edited file, read the
    saved forgotten positions against it, and reported a request never forgotten as
    ``already_forgotten`` (found by probing). A version records the digests of the files its
    dataset was read from, so the edited file stays refused."""
    from conftest import FIXTURES
    from recbole_unlearn.utils.errors import UnlearnError

    data = in_tmp / "data"
    shutil.copytree(os.path.join(FIXTURES, "ml-tiny"), data / "ml-tiny")
    inter = data / "ml-tiny" / "ml-tiny.inter"
    trained_digest = read_manifest(model_copy)[1]["data_sha256"]
    users = _users_by_shard(model_copy)
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(f"{users[0][0]}\n")

    def edit_the_dataset_and_send_another_file():
        lines = inter.read_text().splitlines(keepends=True)
        inter.write_text("".join(lines[:-1]))  # the file's last line purged
        (inbox / "b.csv").write_text(f"{users[1][0]}\n")

    _on_next_sleep(monkeypatch, edit_the_dataset_and_send_another_file, after_first_read=True)
    run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05, "watch_settle_s": 0,
                                                 "max_wait_s": 0.3, "state": "ERROR", "data_path": str(data)},
                        verbose=False)
    assert {users[0][0], users[1][0]} <= _forgotten_users(model_copy)
    assert read_manifest(model_copy)[1]["data_sha256"] == trained_digest
    (in_tmp / "c.csv").write_text(f"{users[1][1]}\n")
    with pytest.raises(UnlearnError, match="changed since the model was trained"):
        run_forget_requests(model_copy, str(in_tmp / "c.csv"), {"state": "ERROR", "data_path": str(data)},
                            verbose=False)


def test_watching_the_datasets_own_folder_is_refused_and_changes_nothing(model_copy, in_tmp):
    """``--forget=<the dataset's folder>`` read ``ml-tiny.inter`` as a request file: 1,699 lines
    rejected, the file moved to ``rejected/``, then a traceback (its digest looked up), and every
    later run failed with "the model's dataset file is missing" (found by probing). Refused first,
    nothing moved."""
    from conftest import FIXTURES, snapshot
    from recbole_unlearn.utils.errors import UnlearnError

    data = in_tmp / "data"
    shutil.copytree(os.path.join(FIXTURES, "ml-tiny"), data / "ml-tiny")
    (data / "ml-tiny" / "req.csv").write_text(f"{_users_by_shard(model_copy)[0][0]}\n")
    before, data_before = snapshot(model_copy), snapshot(data)
    with pytest.raises(UnlearnError, match="holds the dataset's files \\(ml-tiny.inter\\)"):
        run_forget_requests(model_copy, str(data / "ml-tiny"), {"watch_idle_s": 0.5, "state": "ERROR",
                                                                 "data_path": str(data)}, verbose=False)
    assert snapshot(model_copy) == before and snapshot(data) == data_before
    # the dataset file a link to one in the watched folder (a probe: the linked file was moved away)
    store = in_tmp / "store"
    store.mkdir()
    os.replace(data / "ml-tiny" / "ml-tiny.inter", store / "ml-tiny.inter")
    os.symlink(store / "ml-tiny.inter", data / "ml-tiny" / "ml-tiny.inter")
    with pytest.raises(UnlearnError, match="holds the dataset's files \\(ml-tiny.inter\\)"):
        run_forget_requests(model_copy, str(store), {"watch_idle_s": 0.5, "state": "ERROR", "data_path": str(data)},
                            verbose=False)
    assert os.listdir(store) == ["ml-tiny.inter"] and snapshot(model_copy) == before


def test_a_file_renamed_over_one_already_read_is_read_without_blaming_the_writer(model_copy, in_tmp, monkeypatch,
                                                                                 caplog):
    """A pipeline that writes ``.b`` and renames it over ``a.csv`` (read, not yet moved) does what
    the README asks, yet was told "changed after it was read ... Write request files as .name or
    name.tmp and rename them when complete" (found by probing). A file replaced by another (a
    new inode) is read as the new file it is; the warning stays for a file changed in place."""
    users = _users_by_shard(model_copy)[0][:2]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(f"{users[0]}\n")

    def rename_a_new_file_over_it():
        (inbox / ".b").write_text(f"{users[1]}\n")
        os.replace(inbox / ".b", inbox / "a.csv")

    _on_next_sleep(monkeypatch, rename_a_new_file_over_it, after_first_read=True)
    caplog.set_level("INFO")
    run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05, "watch_settle_s": 0,
                                                 "max_wait_s": 0.3, "state": "INFO"}, verbose=False)
    assert set(users) <= _forgotten_users(model_copy)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "Write request files as" in m], messages
    assert [m for m in messages if "was replaced by another file after it was read" in m], messages


def test_a_file_rejected_whole_is_not_counted_as_one_request(model_copy, in_tmp, capsys):
    """A watched file over ``max_request_lines`` (or holding a line over
    ``max_request_line_bytes``) is rejected whole, as one ledger line; the run said "1 request
    was rejected" while none of the file's lines was applied, the valid ones before the bad
    line included (found by probing). It says the file was rejected whole."""
    users = _users_by_shard(model_copy)[0][:3]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "big.csv").write_text("".join(f"{u}\n" for u in users))
    doc = run_forget_requests(model_copy, str(inbox), {"watch_idle_s": 0.5, "watch_poll_s": 0.05, "watch_settle_s": 0,
                                                       "max_wait_s": 0, "state": "ERROR", "max_request_lines": 2})
    assert doc["requests"]["rejected"] == 1 and doc["requests"]["rejected_files"] == 1
    out = capsys.readouterr().out
    assert "note: 1 request file was rejected whole (none of its lines was applied" in out, out
    assert "request was rejected" not in out, out
    assert not set(users) & _forgotten_users(model_copy)


def test_a_file_applied_before_is_skipped_again_even_if_its_lines_no_longer_parse(model_copy, in_tmp):
    """A file applied by earlier code (whose reading of a line this code refuses: ``<TAB>5`` read
    as user 5) and given again was one ``error:`` line, and a watched copy went to ``rejected/``,
    where the README promises the same file is skipped as already final (found by probing).
    Lines the audit log holds as applied are skipped unparsed; the others are checked as before."""
    import recbole_unlearn.data.forget as forget_module
    from recbole_unlearn.utils.errors import UnlearnError

    user = _users_by_shard(model_copy)[0][0]
    (in_tmp / "old.txt").write_text(f"\t{user}\n")
    with pytest.MonkeyPatch.context() as earlier:  # earlier code stripped a line's tabs too
        earlier.setattr(forget_module, "request_line_text", lambda text: text.strip())
        run_forget_requests(model_copy, str(in_tmp / "old.txt"), {"state": "ERROR"}, verbose=False)
    assert user in _forgotten_users(model_copy)
    doc = run_forget_requests(model_copy, str(in_tmp / "old.txt"), {"state": "ERROR"}, verbose=False)
    assert doc["requests"]["skipped_already_final"] == 1
    assert doc["run_dir"] == os.path.dirname(doc["results_path"])  # as run_recbole_unlearn's (a probe)
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    shutil.copy(in_tmp / "old.txt", inbox / "old.txt")
    doc = _watch_quickly(model_copy, inbox)
    assert doc["requests"]["skipped_already_final"] == 1 and doc["requests"]["rejected"] == 0
    assert (inbox / "processed" / "old.txt").exists()
    # a line not applied before is checked as ever
    (in_tmp / "new.txt").write_text(f"\t{user}\n{user}\t\n")
    with pytest.raises(UnlearnError, match="new.txt line 1: expected"):
        run_forget_requests(model_copy, str(in_tmp / "new.txt"), {"state": "ERROR"}, verbose=False)


def test_a_watched_file_given_again_with_the_command_skips_its_rejected_lines_too(model_copy, in_tmp):
    """A watched file with a valid line and two rejected ones (a repeat, an unknown user), given
    again with ``--forget`` (all its lines final), was an error for its rejected line, where the
    same file dropped into the folder again is skipped (round 3 of probing)."""
    user = _users_by_shard(model_copy)[0][0]
    inbox = in_tmp / "inbox"
    inbox.mkdir()
    (inbox / "f1.csv").write_text(f"{user}\n{user}\nnouser\n")
    doc = _watch_quickly(model_copy, inbox)
    assert doc["requests"]["applied"] == 1 and doc["requests"]["rejected"] == 2
    doc = run_forget_requests(model_copy, str(inbox / "processed" / "f1.csv"), {"state": "ERROR"}, verbose=False)
    assert doc["requests"]["skipped_already_final"] == 3


def test_processed_request_files_delete_with_a_single_file_says_the_file_is_kept(model_copy, in_tmp, capsys):
    """``--processed_request_files=delete`` with ``--forget=<file>`` left the file (the forgotten
    pairs in plain text) where it was, saying nothing (found by probing): the key is a watched
    folder's; the run says the file is kept."""
    (in_tmp / "req.csv").write_text(f"{_users_by_shard(model_copy)[0][0]}\n")
    run_forget_requests(model_copy, str(in_tmp / "req.csv"), {"state": "ERROR", "processed_request_files": "delete"})
    out = capsys.readouterr().out
    assert "note: processed_request_files: delete applies to watched folders" in out, out
    assert (in_tmp / "req.csv").exists()


def test_settings_a_request_run_or_verify_does_not_read_are_named(model_copy, in_tmp, capsys):
    """A request file's run took ``watch_idle_s``, ``include_retrain`` and ``save_model``, and
    ``--verify`` took ``max_batch`` and ``results_dir``, unsaid, though neither reads them (a
    pipeline may repeat its training command's settings, so they are not refused; r10paths
    probe): a note names them and where they apply."""
    from recbole_unlearn.cli import main

    (in_tmp / "req.csv").write_text(f"{_users_by_shard(model_copy)[0][0]}\n")
    run_forget_requests(model_copy, str(in_tmp / "req.csv"), {"state": "ERROR", "watch_idle_s": 5,
                                                              "include_retrain": False, "save_model": True})
    out = capsys.readouterr().out
    assert ("note: include_retrain, save_model apply to training runs; watch_idle_s applies to watched folders: a "
            "request file's run does not read them") in out, out
    (in_tmp / "req2.csv").write_text(f"{_users_by_shard(model_copy)[1][0]}\n")
    run_forget_requests(model_copy, str(in_tmp / "req2.csv"), {"state": "ERROR"})
    assert "does not read" not in capsys.readouterr().out
    # the audit's keys, equal to the saved ones (a request run runs no audit; r11audit probe)
    (in_tmp / "req3.csv").write_text(f"{_users_by_shard(model_copy)[1][1]}\n")
    run_forget_requests(model_copy, str(in_tmp / "req3.csv"), {"state": "ERROR", "audit": False})
    assert "note: audit applies to training runs: a request file's run does not read it" in capsys.readouterr().out
    assert main([f"--model_dir={model_copy}", "--verify=True", "--max_batch=5", "--state=ERROR"]) == 0
    assert "note: max_batch applies to request runs: --verify does not read it" in capsys.readouterr().out
    # (round 3: a training run's preflight keys, and settings only runs that train read)
    assert main([f"--model_dir={model_copy}", "--verify=True", "--preflight_users=4", "--busy_cpu_share=0.5",
                 "--state=ERROR"]) == 0
    assert ("note: preflight_users applies to training runs; busy_cpu_share applies to training and request runs: "
            "--verify does not read them") in capsys.readouterr().out
    # a Ray cluster a request run's flags name, down: --verify, which trains nothing, was refused (round 4)
    assert main([f"--model_dir={model_copy}", "--verify=True", "--num_workers=2", "--ray_address=127.0.0.1:1",
                 "--state=ERROR"]) == 0
    assert ("note: num_workers applies to training and request runs of sharded models; ray_address applies to "
            "shard training on Ray (num_workers above 1): --verify does not read them" in capsys.readouterr().out)
    # (r11fixes probe: the settings of training and evaluation, which --verify does neither of)
    assert main([f"--model_dir={model_copy}", "--verify=True", "--shard_num_threads=1", "--show_progress=False",
                 "--eval_batch_size=64", "--state=ERROR"]) == 0
    assert ("note: shard_num_threads applies to training and request runs of sharded models; show_progress, "
            "eval_batch_size apply to training and request runs: --verify does not read them") in capsys.readouterr().out


def test_ray_and_shard_settings_given_to_a_single_models_request_run_are_named(tmp_path, in_tmp, capsys):
    """A request run on a SRUGA folder took ``num_workers``, ``shard_num_threads`` and
    ``ray_address`` (one where nothing listens) unsaid: a single model trains no shards
    (r12keys probe)."""
    from conftest import train_saved_model

    model_dir = train_saved_model(tmp_path, unlearn_method="sruga", forget_protocol="none")
    (in_tmp / "req.csv").write_text("12\n")
    run_forget_requests(model_dir, str(in_tmp / "req.csv"), {"state": "ERROR", "num_workers": 2,
                                                             "shard_num_threads": 3, "ray_address": "127.0.0.1:1"})
    out = capsys.readouterr().out
    assert ("note: num_workers, shard_num_threads apply to training and request runs of sharded models; ray_address "
            "applies to shard training on Ray (num_workers above 1): a request file's run does not read them") in out, out


def test_settings_a_training_run_does_not_read_are_named(in_tmp, capsys):
    """A training run forgetting a request file took ``max_batch`` (its requests went live in one
    version, where a request run makes one a batch), ``processed_request_files`` and the watcher's
    keys unsaid, and a SRUGA run Ray's (r12keys probe); those it reads (``max_request_lines``, its
    ``results_dir``) are not named."""
    from conftest import FIXTURES, tiny_dict
    from recbole_unlearn import run_recbole_unlearn

    (in_tmp / "req.csv").write_text("1\n2\n")
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        unlearn_method="sisa", n_shards=2, include_retrain=False, save_model=False, forget="req.csv",
        max_batch=1, watch_idle_s=5, processed_request_files="delete", max_request_lines=10,
        results_dir=str(in_tmp / "r")))
    out = capsys.readouterr().out
    assert ("note: watch_idle_s applies to watched folders; max_batch, processed_request_files apply to request "
            "runs: a training run does not read them (the model folders it saves keep them, for the runs answering "
            "requests with them)") in out, out
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="sruga", include_retrain=False,
                                                         num_workers=2, results_dir=str(in_tmp / "r")))
    out = capsys.readouterr().out
    assert ("note: num_workers applies to training and request runs of sharded models: a training run does not "
            "read it (the model folders it saves keep it, for the runs answering requests with them)") in out, out
    # keep_previous_version where nothing is forgotten keeps nothing (r12round2 probe)
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="sruga", include_retrain=False,
                                                         forget_protocol="none", keep_previous_version=True,
                                                         results_dir=str(in_tmp / "r")))
    out = capsys.readouterr().out
    # (and no folder keeps it, unlike the others: the note said it did; r12round3 probe)
    assert "note: keep_previous_version applies to request runs: a training run does not read it\n" in out, out
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="sisa", n_shards=2, include_retrain=False,
                                                         shard_num_threads=1, results_dir=str(in_tmp / "r")))
    assert "does not read" not in capsys.readouterr().out
    # Ray's settings where the shards train in this process (num_workers 1: r12fixes probe); the
    # request file's limits without a request file, keep_previous_version without a saved folder
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="sisa", n_shards=2, include_retrain=False,
                                                         ray_address="127.0.0.1:1", results_dir=str(in_tmp / "r")))
    out = capsys.readouterr().out
    assert ("note: ray_address applies to shard training on Ray (num_workers above 1): a training run does not read "
            "it (the model folders it saves keep it, for the runs answering requests with them)") in out, out
    run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="retrain", max_request_lines=5,
                                                         keep_previous_version=True, results_dir=str(in_tmp / "r")))
    out = capsys.readouterr().out
    assert ("note: keep_previous_version, max_request_lines apply to request runs: a training run does not read "
            "them") in out, out


def test_a_ray_workers_error_is_its_cause_on_one_plain_line():
    """A shard that raised in a Ray worker left a ``failed`` ledger reason holding terminal colour
    codes and the worker's whole traceback (Ray probe): the reason is the cause's type and message."""
    from recbole_unlearn.utils.errors import error_line

    cause = RuntimeError("disk full")
    ray_error = type("RayTaskError(RuntimeError)", (RuntimeError,), {})(
        "\x1b[36mray::train_shard()\x1b[39m (pid=1, ip=192.0.2.2)\n  File \"x.py\", line 1\nRuntimeError: disk full")
    ray_error.cause = cause
    assert error_line(ray_error) == "RuntimeError in a Ray worker: disk full"
    assert error_line(OSError("\x1b[31mred\x1b[0m text")) == "OSError: red text"


@pytest.mark.parametrize("queued_at", [float("-inf"), float("nan"), -1e300, 1e300])
def test_a_queued_at_that_is_no_time_falls_back_to_the_lines_time(queued_at):
    """A hand-edited ``queued_at`` of -Infinity made the resumed request's latency Infinity and
    results.json's latencies Infinity and NaN, which are not JSON (round-3 probe): a value that is
    not a time before now is not read; the line's ``time`` is."""
    import time
    from recbole_unlearn.serving.batcher import RequestBatcher

    batcher = RequestBatcher.__new__(RequestBatcher)
    earlier = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
    batcher.first_queued = {"r": {"queued_at": queued_at, "time": earlier}}
    assert 59 <= batcher._waited_s("r") < 120


def test_a_queued_at_that_disagrees_with_the_lines_time_by_more_than_a_day_is_not_read():
    """``queued_at: 1`` (1970) passed as a time and made a latency of 57 years (round-4 probe): a
    line's ``queued_at`` is read only where it agrees with its ``time`` within a day (any zone)."""
    import time
    from recbole_unlearn.serving.batcher import RequestBatcher

    batcher = RequestBatcher.__new__(RequestBatcher)
    earlier = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
    batcher.first_queued = {"r": {"queued_at": 1.0, "time": earlier}}
    assert 59 <= batcher._waited_s("r") < 120
    batcher.first_queued = {"r": {"queued_at": time.time() - 30, "time": earlier}}  # agrees: read
    assert 29 <= batcher._waited_s("r") < 40


def test_a_request_run_whose_forgotten_interactions_have_no_history_says_forget_metrics_are_not_measured(
        tmp_path, capsys):
    """A whole user forgotten leaves each forgotten item no history (histories leave out every
    forgotten interaction), so no forget sample: the forget and SRU columns vanished from the
    table without a word (r9audit probe)."""
    from conftest import train_saved_model
    from recbole_unlearn.quick_start import run_forget_requests

    model_dir = train_saved_model(tmp_path, forget_protocol="none")
    (tmp_path / "user.csv").write_text("2\n")
    doc = run_forget_requests(model_dir, str(tmp_path / "user.csv"), {"results_dir": str(tmp_path / "r")})
    assert doc["forget_set"]["interactions"] > 0 and doc["forget_set"]["forget_samples"] == 0
    out = capsys.readouterr().out
    assert f"note: forget metrics: none of the {doc['forget_set']['interactions']} forgotten interactions" in out


def test_requests_earlier_code_left_waiting_without_rows_are_named_in_a_warning_line(tmp_path, capsys):
    """A ``queued`` line written before ledger lines kept rows cannot be applied from the ledger:
    its file must be given again. That was said only through the logger, which a folder saved
    with ``state: ERROR`` silences: the run ended with no word of it (r9upgrade probe)."""
    from conftest import train_saved_model

    model_dir = train_saved_model(tmp_path, forget_protocol="none")
    line = {"file": "old.csv", "id": "0123456789abcdef:4", "line": 4, "status": "queued", "time": "2026-12-05T10:00:00"}
    with open(os.path.join(model_dir, "requests.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")
    (tmp_path / "new.csv").write_text("3\n")
    doc = run_forget_requests(model_dir, str(tmp_path / "new.csv"), {"results_dir": str(tmp_path / "r"),
                                                                     "state": "ERROR"})
    assert doc["requests"]["waiting_without_rows"] == ["0123456789abcdef:4 (old.csv line 4)"]
    out = capsys.readouterr().out
    assert "warning: 1 request was queued by earlier code and still waits, its ledger lines holding no rows to " \
           "apply them from: give its file again (0123456789abcdef:4 (old.csv line 4)" in out, out


def test_an_interrupted_run_names_the_versions_its_start_removed():
    """A run stopped after its start removed a kept or left-behind version said nothing of it
    beyond a log line, which ``state: ERROR`` hides (r10round4 probe)."""
    from recbole_unlearn.serving.batcher import StreamSummary
    from recbole_unlearn.serving.stream import RequestsInterrupted

    summary = StreamSummary()
    summary.queued = 1
    summary.removed_versions = [{"version": "v000001", "why": "left_behind"}]
    text = str(RequestsInterrupted(summary, "m/requests.jsonl"))
    assert text.endswith("; removed v000001 (version folders from before the live one, or never live: the run's log "
                         "says which)"), text
    assert "removed" not in str(RequestsInterrupted(StreamSummary(), "m/requests.jsonl"))


def test_a_stop_while_a_batchs_ledger_lines_are_written_counts_them_where_the_ledger_holds_them(
        model_copy, in_tmp, monkeypatch):
    """A stop after the ledger's ``applied`` lines were written (during their fsync) said the
    requests were "read and not recorded as applied yet" while the ledger recorded them applied
    (r12concurrency probe): the line counts a request applied once, and whenever, its ledger line
    says so."""
    from recbole_unlearn.serving.batcher import RequestBatcher
    from recbole_unlearn.serving.stream import RequestsInterrupted

    users = _users_by_shard(model_copy)[0][:2]
    (in_tmp / "r.csv").write_text(f"{users[0]}\n{users[1]}\n")
    record = RequestBatcher._record

    def written_then_stopped(self, events):
        record(self, events)
        if any(e.get("status") == "applied" for e in events):
            raise KeyboardInterrupt

    monkeypatch.setattr(RequestBatcher, "_record", written_then_stopped)
    with pytest.raises(RequestsInterrupted) as stopped:
        run_forget_requests(model_copy, str(in_tmp / "r.csv"), {"max_batch": 1, "state": "ERROR"}, verbose=False)
    monkeypatch.undo()
    applied = [e["id"] for e in _ledger(model_copy) if e.get("status") == "applied"]
    assert len(applied) == 1
    assert str(stopped.value).startswith("1 request applied, 0 rejected, 1 request read and not recorded as applied "
                                         "yet"), str(stopped.value)
