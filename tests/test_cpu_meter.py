"""The CPU meter that flags rows timed on a busy machine (other processes' share of the CPU)."""
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from recbole_unlearn.utils.cpu_meter import CpuMeter, machine_busy_s

pytestmark = pytest.mark.skipif(machine_busy_s({0}) is None, reason="needs Linux /proc/stat")

SPIN = "import time\nend = time.time() + {s}\nwhile time.time() < end: pass\n"


def _spin(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        pass


def _other_process_spinning(seconds: float) -> int:
    """Start a process that keeps one CPU busy for ``seconds`` and is not ours (started through a
    shell that exits, so it is no descendant); returns its pid."""
    spin = shlex.join([sys.executable, "-c", SPIN.format(s=seconds)])
    pid = int(subprocess.run(["sh", "-c", f"{spin} >/dev/null 2>&1 & echo $!"], capture_output=True, text=True,
                             check=True).stdout)
    time.sleep(0.5)  # it is up
    return pid


def test_another_process_spinning_is_seen_as_others():
    """A process that is not ours keeping one CPU busy shows as others' CPU time."""
    pid = _other_process_spinning(30)
    try:
        meter = CpuMeter()
        time.sleep(2.0)
        result = meter.result()
    finally:
        os.kill(pid, signal.SIGKILL)
    assert result["others_cpu_s"] >= 1.2, result
    assert result["others_share"] >= 1.2 / (result["wall_s"] * len(meter.cpus)), result


def test_our_own_work_and_our_childrens_is_not_others():
    """CPU time this process spends, in its threads and in child processes it starts (as Ray's
    workers are), is its own, not another process's: over two seconds of our own work, others
    take no more than over two seconds of sleep next to it (whatever else the machine runs)."""
    idle_meter = CpuMeter()
    time.sleep(2.0)
    idle = idle_meter.result()
    meter = CpuMeter()
    _spin(1.0)
    subprocess.run([sys.executable, "-c", SPIN.format(s=1.0)], check=True)
    work = meter.result()
    assert work["own_cpu_s"] >= 1.6, work
    assert work["others_cpu_s"] < idle["others_cpu_s"] + 1.0, (work, idle)


def test_a_run_timed_beside_another_process_says_so(tmp_path, capsys):
    """Rows timed while another process took the CPU looked like any other (our 2 cores: up to
    4 x slower, measured); each row now records what others took, and the run's output names the
    rows above ``busy_cpu_share``."""
    from recbole_unlearn import run_recbole_unlearn
    from conftest import tiny_dict

    pid = _other_process_spinning(120)
    try:
        doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
            unlearn_method="retrain", results_dir=str(tmp_path / "r"), busy_cpu_share=0.1 / len(CpuMeter().cpus)))
    finally:
        os.kill(pid, signal.SIGKILL)
    for row in doc["rows"]:
        meter = row["cpu_meter"]
        assert meter["others_cpu_s"] >= 0.2 * meter["wall_s"], row  # the spinner shares the CPUs with us
    out = capsys.readouterr().out
    assert "note: other processes took more than" in out and "original (" in out and "retrain (" in out, out


def test_the_leaderboard_names_rows_timed_on_a_busy_machine():
    from recbole_unlearn.benchmark.report import cells_from_markdown, leaderboard_markdown

    def row(method, share):
        return {"method": method, "seconds": 10.0, "cpu_meter": {"others_share": share}}

    cell = {"model": "SASRec", "dataset": "beauty", "busy_cpu_share": 0.1,
            "rows": [row("original", 0.02), row("retrain", 0.34), {"method": "recbole", "seconds": 3.0},
                     row("sisa", 0.1)]}
    text = leaderboard_markdown([cell])
    notes = [line for line in text.splitlines() if line.startswith("Timing:")]
    assert len(notes) == 1 and "retrain (34%)" in notes[0] and "sisa" not in notes[0] and "original" not in notes[0]
    assert [r["method"] for r in cells_from_markdown(text)[0]["rows"]] == ["original", "retrain", "recbole", "sisa"]
    assert not any(line.startswith("Timing:") for line in leaderboard_markdown([dict(cell, rows=cell["rows"][:1])])
                   .splitlines())


def test_a_row_whose_forget_alone_ran_beside_another_process_is_named():
    """The meter covered a row's fit, forget and evaluation while its seconds are the forget's:
    a forget slowed 2.35 x by a process that ran during it alone (23% of the CPU then) averaged to
    4.5% over the row and was not named (timing probe). A row records its forget's share too, and
    the note names a row where either is above ``busy_cpu_share``."""
    from recbole_unlearn.utils.cpu_meter import busy_rows_note

    rows = [{"method": "sisa", "cpu_meter": {"others_share": 0.045, "forget_others_share": 0.23}},
            {"method": "sru", "cpu_meter": {"others_share": 0.02, "forget_others_share": 0.05}}]
    note = busy_rows_note(rows, 0.1)
    assert note is not None and "sisa (23%)" in note and "sru" not in note, note


def test_every_method_row_records_its_forgets_cpu_share(tmp_path):
    from recbole_unlearn import run_recbole_unlearn
    from conftest import tiny_dict

    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(unlearn_method="sisa", n_shards=2,
                                                               results_dir=str(tmp_path / "r")), verbose=False)
    for row in doc["rows"]:
        if row["method"] in ("retrain", "sisa"):
            assert 0.0 <= row["cpu_meter"]["forget_others_share"] <= 1.0, row["cpu_meter"]


def test_a_request_runs_meter_covers_its_forgets_not_its_waits(tmp_path, monkeypatch):
    """A watcher's row measured other processes' CPU over the whole run, idle waits included
    (36 s of wall against 6 s of forgets: named busy at 32% while its forgets ran on an idle
    machine; upgrade probe): the README promises "while their forgets ran". The row's meter sums
    its batches' forgets, and records ``forget_others_share``."""
    from conftest import train_saved_model
    from recbole_unlearn.quick_start import run_forget_requests
    from recbole_unlearn.serving import batcher as batcher_module

    model_dir = train_saved_model(tmp_path, forget_protocol="none")
    (tmp_path / "req.csv").write_text("5\n")
    forgets = []
    real = batcher_module.apply_forget

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            forgets.append(time.perf_counter() - start)

    monkeypatch.setattr(batcher_module, "apply_forget", timed)
    doc = run_forget_requests(model_dir, str(tmp_path / "req.csv"), {"state": "ERROR"}, verbose=False)
    meter = doc["rows"][0]["cpu_meter"]
    assert meter["wall_s"] == pytest.approx(sum(forgets), abs=0.05), (meter, forgets)
    assert meter["forget_others_share"] == meter["others_share"]


class _RayWithWorkers:
    """Ray's ``init`` / ``shutdown`` as far as the meter sees them: ``init`` starts a "raylet"
    (a shell, this process's child) whose "worker" (its child, a grandchild of this process, as
    Ray's are) spends a second of CPU and then waits; ``shutdown`` kills both, the worker after
    its raylet: nobody reaps it into this process's own CPU time."""

    def __init__(self):
        self.initialized, self.raylet = False, None

    def is_initialized(self):
        return self.initialized

    def get_runtime_context(self):
        return type("Context", (), {"get_node_id": lambda _: "node"})()

    def init(self, num_cpus=None, **kwargs):
        worker = shlex.join([sys.executable, "-c", SPIN.format(s=1.0) + "time.sleep(600)\n"])
        self.raylet = subprocess.Popen(["sh", "-c", f"{worker} & echo $!; wait"], stdout=subprocess.PIPE, text=True)
        self.worker = int(self.raylet.stdout.readline())
        self.initialized, self.cpus = True, num_cpus

    def shutdown(self):
        os.kill(self.raylet.pid, signal.SIGKILL)
        self.raylet.wait()
        os.kill(self.worker, signal.SIGKILL)
        self.initialized = False

    def cluster_resources(self):
        return {"CPU": self.cpus}


def test_workers_of_a_ray_a_call_replaces_are_not_counted_as_others(monkeypatch):
    """A call in one process replacing the package's local Ray with one of another size counted
    the old workers' CPU as other processes' (its meter's start counted their lifetime CPU as its
    own; at its end they were gone, reaped by no one of this process's): a busy note on an idle
    machine (left in the last note). Their CPU up to the shutdown is taken off the start."""
    from recbole_unlearn.trainer import shard_trainer

    monkeypatch.setattr(shard_trainer, "_RAY_STARTED_FOR", None)
    ray = _RayWithWorkers()
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 2})
    time.sleep(2.0)  # the worker has spent its second of CPU
    meter = CpuMeter()
    shard_trainer.connect_ray(ray, {"ray_address": None, "num_workers": 3})  # another size: replaced
    result = meter.result()
    ray.shutdown()
    assert result["own_cpu_s"] >= 0.0, result  # it was about -1 s: the old worker's second, then gone
