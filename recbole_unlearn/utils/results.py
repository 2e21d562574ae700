"""The results of one run: rows of metric dicts, a readable table and ``results.json``."""
import os
import platform
from datetime import datetime
from typing import Dict, List, Optional

import torch
from tabulate import tabulate

from recbole_unlearn.utils.atomic import write_json

METRIC_GROUPS = ("utility_raw", "utility_rem", "forget", "sru_inference")
#: rows that report training, not unlearning: no speedup.
TRAINING_ROWS = ("original", "recbole")


def make_row(method: str, metrics: Dict[str, Dict[str, float]], seconds: float, **extra) -> dict:
    """One results row: ``method``, the four metric groups, ``seconds`` and extras."""
    row = {"method": method}
    row.update({group: metrics.get(group, {}) for group in METRIC_GROUPS})
    row["seconds"] = round(float(seconds), 3)
    row.update(extra)
    return row


def add_speedups(rows: List[dict], reference: str = "retrain") -> None:
    """``speedup = reference seconds / row seconds`` for every unlearning row (SPEC section 7)."""
    ref = next((r for r in rows if r["method"] == reference), None)
    if ref is None:
        return
    for row in rows:
        if row["method"] not in TRAINING_ROWS + (reference,) and row["seconds"] > 0:
            row["speedup"] = round(ref["seconds"] / row["seconds"], 2)


#: the machine keys on which a model's floating-point results depend: training is deterministic on
#: one machine, but another CPU (another instruction set, or another vendor's math-library path)
#: or another torch can round differently, and a long training then ends elsewhere
NUMERICS_KEYS = ("cpu", "cpu_capability", "torch")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", "r", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> Dict[str, object]:
    """Where the numbers were measured."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def other_numerics(recorded: Optional[dict], today: Dict[str, object]) -> Optional[str]:
    """How a ``recorded`` machine differs from ``today`` on the ``NUMERICS_KEYS`` it records
    (``"cpu A, AVX512; here cpu B, AVX2"``), ``None`` when it differs on none of them (a record
    written before they were recorded holds none)."""
    keys = [key for key in NUMERICS_KEYS if key in (recorded or {}) and recorded[key] != today.get(key)]
    if not keys:
        return None

    def describe(record: dict) -> str:
        return ", ".join(f"{'cpu ' if key == 'cpu' else 'torch ' if key == 'torch' else ''}{record.get(key)}"
                         for key in keys)

    return f"{describe(recorded)}; here {describe(today)}"


def code_version() -> Dict[str, object]:
    """Which code produced the numbers: the package version and, in a git checkout, its commit
    and whether tracked files differed from it (``None`` outside git)."""
    import subprocess

    from recbole_unlearn.version import __version__

    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out: Dict[str, object] = {"version": __version__, "commit": None, "modified": None}
    try:
        def git(*args):
            return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10)
        head = git("rev-parse", "HEAD")
        if head.returncode == 0:
            out["commit"] = head.stdout.strip()
            out["modified"] = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def results_document(model: str, dataset: str, settings: dict, forget_summary: dict, rows: List[dict]) -> dict:
    return {
        "model": model,
        "dataset": dataset,
        "created": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": settings,
        "forget_set": forget_summary,
        "rows": rows,
    }


_COLUMNS = [
    ("N@10 raw", "utility_raw", "ndcg@10"),
    ("N@10 rem", "utility_rem", "ndcg@10"),
    ("R@10 rem", "utility_rem", "recall@10"),
    ("N@20 rem", "utility_rem", "ndcg@20"),
    ("fgt H@1", "forget", "hit@1"),
    ("fgt H@10", "forget", "hit@10"),
    ("SRU H@10", "sru_inference", "hit@10"),
]


def format_table(rows: List[dict]) -> str:
    """A plain-text table of the headline numbers of each row."""
    headers = ["method"] + [c[0] for c in _COLUMNS] + ["seconds", "speedup"]
    body = []
    for row in rows:
        cells: List[Optional[object]] = [row["method"]]
        cells += [row[group].get(key) for _, group, key in _COLUMNS]
        cells += [row["seconds"], row.get("speedup")]
        body.append(cells)
    return tabulate(body, headers=headers, floatfmt=".4f", missingval="-")


def write_results(path: str, document: dict) -> None:
    write_json(path, document)
