"""The results of one run: rows of metric dicts, a readable table and ``results.json``."""
import os
import platform
import re
from datetime import datetime
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from tabulate import tabulate

from recbole_unlearn.utils.atomic import write_json

METRIC_GROUPS = ("utility_raw", "utility_rem", "forget", "sru_inference")
#: rows that report training, not unlearning: no speedup.
TRAINING_ROWS = ("original", "recbole")


def make_row(method: str, metrics: Dict[str, object], seconds: float, **extra) -> dict:
    """One results row: ``method``, the four metric groups (and ``sru_inference_samples``, the
    forgotten items SRU inference measured, and ``sru_inference_negatives``, the negatives each
    was ranked among, where ``metrics`` has them), ``seconds`` and extras."""
    row = {"method": method}
    row.update({group: metrics.get(group, {}) for group in METRIC_GROUPS})
    for key in ("sru_inference_samples", "sru_inference_negatives"):
        if key in metrics:
            row[key] = metrics[key]
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


# the checkout's files that, untracked (ignored ones too: .gitignore's log/ or results/ match at
# any depth), are code a run may execute: an uncommitted new module or benchmark script, a
# root-level .py or package (first on sys.path for run_recbole_unlearn.py: a recbole/ there
# shadows the library), a default in properties/;
# other untracked files (a user's notes, grids, editor swap files) are not (r11round3 probe)
_CODE_GLOBS = tuple(f":(top,glob){pattern}" for pattern in (  # from the checkout's root, wherever git runs
    "*.py", "*/__init__.py", "recbole_unlearn/**/*.py", "recbole_unlearn/**/*.so", "benchmarks/**/*.py",
    "dataset/**/*.py", "properties/**/*.yaml"))


def code_version(folder: Optional[str] = None) -> Dict[str, object]:
    """Which code produced the numbers: the package version and, in a git checkout (``folder``:
    this package's checkout by default), its commit and whether its code differed from it
    (``modified``: a tracked file changed, or an untracked code file, ``_CODE_GLOBS``; ``None``
    outside git)."""
    import subprocess

    from recbole_unlearn.version import __version__

    folder = folder or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out: Dict[str, object] = {"version": __version__, "commit": None, "modified": None}
    try:
        def git(*args):
            return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10)
        head = git("rev-parse", "HEAD")
        if head.returncode == 0:
            out["commit"] = head.stdout.strip()
            tracked = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
            untracked = git("ls-files", "--others", "--", *_CODE_GLOBS).stdout.strip()
            out["modified"] = bool(tracked or untracked)
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


def _stage_epochs(record: Optional[dict]) -> Tuple[List[int], int, Optional[dict]]:
    """Epochs of every shard stage in a ``fit_training`` / ``forget_training`` record, how many
    hit their cap, and the aggregator's entry; a record of several requests (``{"steps":
    [...]}``, ``request_steps``) counts every request's stages, and its aggregator entry is the
    longest one, at its cap if any was."""
    if not record:
        return [], 0, None
    if "steps" in record:
        parts = [_stage_epochs(step) for step in record["steps"]]
        aggregators = [a for _, _, a in parts if a]
        aggregator = None
        if aggregators:
            aggregator = {"epochs": max(a["epochs"] for a in aggregators),
                          "hit_cap": any(a.get("hit_cap") for a in aggregators)}
        return [e for epochs, _, _ in parts for e in epochs], sum(n for _, n, _ in parts), aggregator
    stages = [stage for shard in record.get("shards", {}).values() for stage in shard.values()]
    return [s["epochs"] for s in stages], sum(bool(s.get("hit_cap")) for s in stages), record.get("aggregator")


def training_summary(row: dict, epochs_cap: Optional[int] = None) -> Tuple[str, Optional[bool]]:
    """How a row's models trained, in words, and whether any of them stopped at its cap rather
    than by validation: a single model's epochs (original, Retrain), an approximate step's epochs
    and why it stopped, a sharded model's shard and aggregator epochs at fit and at forget; then
    the audit's reference models (the original row's ``audit.cost``) and the Retrains matched to
    ``request_steps``' requests that ran all their epochs (a grid named neither)."""
    text, capped = _own_training_summary(row, epochs_cap)
    extra = []
    cost = (row.get("audit") or {}).get("cost") or {}
    runs = cost.get("references_epochs_run") or []
    at_cap = _references_at_cap(runs, cost.get("references_hit_cap") or [], epochs_cap)
    if at_cap:
        extra.append(f"audit references: {at_cap} of {len(runs)} at cap")
    matched = _capped_step_retrains([row], epochs_cap)
    if matched:
        extra.append(f"Retrain matched to request{'s' if len(matched) > 1 else ''} "
                     f"{', '.join(map(str, matched))} at cap")
    if not extra:
        return text, capped
    return "; ".join([text] + extra if text else extra), True


#: an approximate step's ``stopped_by`` when its epochs (its report's ``epochs_key``) ran out
#: before its own stops ended it, or (SCIF) its solver's iterations did before it converged: at
#: its cap
STEP_CAPS = ("max_epochs", "cg_iteration_cap")


def _step_at_cap(stopped_by) -> bool:
    """Whether an approximate step (or, under ``request_steps``, one of the requests' steps,
    whose reasons the row joins with ``"; "``) stopped at its cap."""
    return any(reason.strip() in STEP_CAPS for reason in re.split(r"[;,]", str(stopped_by or "")))


def _steps_at_cap(row: dict) -> List[dict]:
    """The approximate step records of ``row`` that stopped at their cap: each request's or
    shard's (:func:`_summaries`), else the row itself (a single model's one step; under
    ``request_steps`` its ``epochs_run`` is the requests' sum, not a step's)."""
    steps = [s for s in _summaries(row) if s is not row] or ([row] if row.get("stopped_by") else [])
    return [s for s in steps if _step_at_cap(s.get("stopped_by"))]


def _own_training_summary(row: dict, epochs_cap: Optional[int]) -> Tuple[str, Optional[bool]]:
    """:func:`training_summary` of the row's own models."""
    parts, capped = [], False
    if row.get("stopped_by"):
        tuned = (f", fine-tuned {row['finetune_epochs']:g} passes over D_rem"
                 if isinstance(row.get("finetune_epochs"), (int, float)) else "")
        return (f"{row.get('epochs_run', 0)} epochs, stopped by {row['stopped_by']}{tuned}",
                _step_at_cap(row["stopped_by"]))
    for label, key in (("fit", "fit_training"), ("forget", "forget_training")):
        epochs, at_cap, aggregator = _stage_epochs(row.get(key))
        steps = [s for s in _summaries(row) if "epochs_run" in s] if label == "forget" else []
        if not epochs and not aggregator and not steps:
            continue
        said = []
        if epochs:
            said.append(f"shards {min(epochs)}-{max(epochs)} epochs" + (f" ({at_cap} at cap)" if at_cap else ""))
            capped = capped or bool(at_cap)
        elif steps:  # shard_unlearning: each affected shard's approximate step
            runs = [int(s.get("epochs_run") or 0) for s in steps]
            reasons = ", ".join(dict.fromkeys(str(s.get("stopped_by")) for s in steps))
            said.append(f"shard steps {min(runs)}-{max(runs)} epochs (stopped by {reasons})")
            capped = capped or any(_step_at_cap(s.get("stopped_by")) for s in steps)
        if aggregator:
            said.append(f"aggregator {aggregator['epochs']}" + (" (cap)" if aggregator.get("hit_cap") else ""))
            capped = capped or bool(aggregator.get("hit_cap"))
        parts.append(f"{label}: {', '.join(said)}")
    if not parts and row.get("epochs_run") is not None:
        hit = single_model_hit_cap(row, epochs_cap)
        return f"{row['epochs_run']} epochs" + (" (cap)" if hit else ""), hit
    if not parts:  # nothing recorded (a row read back from a committed table): not known, not False
        return "", None
    return "; ".join(parts), capped


def capped_parts(row: dict, epochs_cap: int) -> Optional[str]:
    """What of a row's models stopped at a cap rather than by validation, in words: ``""`` for a
    single model that ran all ``epochs_cap`` epochs, e.g. ``"fit: 2 shard stages, aggregator;
    forget: 1 shard stage"`` for a sharded one, ``"approximate step"`` for an approximate step
    whose epochs ran out before its own stops ended it (``stopped_by: max_epochs``; one stopped by
    its own rules is not at a cap); ``None`` when none did."""
    if row.get("stopped_by"):
        return "approximate step" if _step_at_cap(row["stopped_by"]) else None
    parts = []
    for label, key in (("fit", "fit_training"), ("forget", "forget_training")):
        _, at_cap, aggregator = _stage_epochs(row.get(key))
        named = [f"{at_cap} shard stage{'s' if at_cap != 1 else ''}"] if at_cap else []
        steps = len(_steps_at_cap(row)) if label == "forget" else 0
        if steps:
            named.append(f"{steps} approximate step{'s' if steps != 1 else ''}")
        if aggregator and aggregator.get("hit_cap"):
            named.append("aggregator")
        if named:
            parts.append(f"{label}: {', '.join(named)}")
    if parts:
        return "; ".join(parts)
    return "" if single_model_hit_cap(row, epochs_cap) else None


def single_model_hit_cap(record: dict, epochs_cap: Optional[int]) -> bool:
    """Whether a single model (original, Retrain, an audit reference, a step's Retrain: a record
    with ``epochs_run``) ran all its epochs without early stopping ending it: its ``hit_cap``
    where recorded (early stopping can end the cap's last epoch too), else, for records written
    before it was, ``epochs_run >= epochs_cap``."""
    if record.get("hit_cap") is not None:
        return bool(record["hit_cap"])
    return record.get("epochs_run") is not None and epochs_cap is not None and record["epochs_run"] >= epochs_cap


def _references_at_cap(epochs_run: Sequence[Optional[int]], hit_cap: Sequence[Optional[bool]],
                       epochs_cap: Optional[int]) -> int:
    """How many of the audit's reference models (``references_epochs_run`` and, where recorded,
    ``references_hit_cap``, one entry each) ran all their epochs without early stopping ending it."""
    recorded = list(hit_cap) + [None] * (len(epochs_run) - len(hit_cap))
    return sum(single_model_hit_cap({"epochs_run": epochs, "hit_cap": hit}, epochs_cap)
               for epochs, hit in zip(epochs_run, recorded))


def _capped_step_retrains(rows: List[dict], epochs_cap: int) -> List[int]:
    """The requests (1-based) whose matched Retrain (``request_steps``) ran all its epochs."""
    return sorted({int(step["step"]) for row in rows for step in row.get("steps") or []
                   if isinstance(step.get("retrain"), dict) and "epochs_run" in step["retrain"]
                   and single_model_hit_cap(step["retrain"], epochs_cap)})


def _capped_stage_caps(row: dict) -> List[int]:
    """The caps (``cap`` in each record) of the row's shard stages that stopped at theirs."""
    caps = []
    for key in ("fit_training", "forget_training"):
        record = row.get(key) or {}
        for step in record.get("steps", [record]):
            caps += [stage["cap"] for shard in (step.get("shards") or {}).values() for stage in shard.values()
                     if stage.get("hit_cap") and isinstance(stage.get("cap"), int)]
    return caps


def cap_note(rows: List[dict], epochs_cap: int, agg_epochs_cap: int, slice_epochs_cap: Optional[int] = None,
             reference_epochs: Sequence[Optional[int]] = (), reference_hit_cap: Sequence[Optional[bool]] = (),
             saved_model: bool = False,
             validates: bool = True, submodels_validate: bool = True) -> Optional[str]:
    """One line naming every model of ``rows`` that stopped at its cap (``epochs``; a shard stage
    ``slice_epochs`` when set, else the cap its record holds, ``ceil(epochs / n_slices)``;
    ``agg_epochs`` for a learned aggregator) rather than by validation,
    the Retrains matched to ``request_steps``' requests that did, and the audit's reference
    models when one of them ran all ``epochs`` without early stopping ending it
    (``reference_hit_cap``, each one's ``hit_cap``, ``None`` where not recorded; then
    ``reference_epochs``: epochs each ran, ``None`` for one reloaded); ``None`` if none did. ``saved_model``: the caps
    are a saved model's settings, which a run answering requests cannot change. ``validates``
    False (``eval_step: 0``): nothing validates, so the line says that, not to raise a cap;
    ``submodels_validate`` False (``validate_submodels: False``): no shard stage or aggregator
    does, and the line says so where only they stopped at a cap."""
    named, aggregator, stages, whole = [], False, False, False
    step_caps: Dict[str, int] = {}  # an approximate step's epochs key -> the most epochs one at cap ran
    for row in rows:
        parts = capped_parts(row, epochs_cap)
        if parts is not None:
            named.append(f"{row['method']} ({parts})" if parts else row["method"])
            aggregator = aggregator or "aggregator" in parts
            stages = stages or "shard stage" in parts
            whole = whole or not parts
        for step in _steps_at_cap(row):
            key = step.get("epochs_key") or row.get("epochs_key") or "the step's epochs"
            step_caps[key] = max(step_caps.get(key, 0), int(step.get("cap") or step.get("epochs_run") or 0))
    matched = _capped_step_retrains(rows, epochs_cap)
    if matched:
        named.append(f"the Retrain{'s' if len(matched) > 1 else ''} matched to request{'s' if len(matched) > 1 else ''} "
                     f"{', '.join(map(str, matched))}")
        whole = True
    if _references_at_cap(reference_epochs, reference_hit_cap, epochs_cap):
        named.append("the audit's reference models")
        whole = True
    if not named:
        return None
    keys = []  # (key, cap in words) of every cap that ended a named model's training
    # without slice_epochs a slice stage's cap is ceil(epochs / n_slices), as its record says
    derived = sorted({cap for row in rows for cap in _capped_stage_caps(row)} - {epochs_cap})
    if whole or (stages and not slice_epochs_cap and not derived):
        keys.append(("epochs", f"epochs {epochs_cap}"))
    if stages and not slice_epochs_cap and derived:
        keys.append(("epochs", f"slice stages {', '.join(map(str, derived))}: epochs {epochs_cap} over n_slices"))
    if stages and slice_epochs_cap:
        keys.append(("slice_epochs", f"slice_epochs {slice_epochs_cap}"))
    if aggregator:
        keys.append(("agg_epochs", f"agg_epochs {agg_epochs_cap}"))
    keys += [(key, f"{key} {epochs}") for key, epochs in sorted(step_caps.items())]
    caps = ", ".join(text for _, text in keys)
    unvalidated = ""  # sub-models that never validate stop at their cap whatever it is
    if validates and not submodels_validate and (stages or aggregator):
        how = "--validate_submodels=True to stop them by validation"
        unvalidated = (": shard stages and aggregators do not validate (validate_submodels False); "
                       + (f"train a new model folder with {how}" if saved_model else f"set {how}"))
        if not whole:
            return f"{', '.join(named)} stopped at their cap ({caps}){unvalidated}"
    if not validates and (whole or stages or aggregator):  # an approximate step's checks are its own
        how = "--eval_step=1 (validation after every epoch) to train to convergence"
        if step_caps:
            how += f", and --{' and --'.join(step_caps)} higher for the approximate steps"
        return (f"{', '.join(named)} ran all their epochs ({caps}): nothing validates (eval_step 0), so no model "
                "stops by validation; " + (f"train a new model folder with {how}" if saved_model else f"set {how}"))
    raise_them = f"{' and '.join('--' + key for key in dict(keys))} higher to train to convergence"
    by = "validation (stopping_step)" + (" or an approximate step's own stops" if step_caps else "")
    return (f"{', '.join(named)} stopped at their cap ({caps}), not by {by}; "
            + (f"these caps are the saved model's settings: train a new model folder with {raise_them}"
               if saved_model else f"set {raise_them}")
            + (f" (the single models){unvalidated.replace(': ', '; ', 1)}" if unvalidated else ""))


def changed_nothing(row: dict) -> bool:
    """Whether the row's forget left the model's weights as they were (``changed`` False)."""
    return row.get("changed") is False


def why_unchanged(row: dict) -> str:
    """Why a row's forget left the weights as they were: its step's ``stopped_by``, or under
    ``shard_unlearning`` each affected shard's (``approximate``: shard -> its step's report)."""
    if row.get("stopped_by"):
        return str(row["stopped_by"])
    reasons = dict.fromkeys(str(s["stopped_by"]) for s in _summaries(row) if s.get("stopped_by"))
    return "; ".join(reasons) or "unknown"


def unchanged_shards(approximate: dict) -> List[int]:
    """The shards an approximate forget (``approximate``: shard -> its step's report, under
    ``shard_unlearning``) left as they were."""
    return sorted(int(shard) for shard, summary in approximate.items()
                  if isinstance(summary, dict) and summary.get("changed") is False)


def partly_unchanged(row: dict) -> List[str]:
    """``shard 4 (27 of the 50 forgotten interactions; stopped_by: ...)`` for each shard a
    forget of ``row`` left as it was while it changed others (``unchanged_shards``; under
    ``request_steps``, ``at request step k``, for the steps that changed something)."""
    if not row.get("unchanged_shards"):
        return []
    steps = row.get("approximate_steps")
    per_step = list(enumerate(steps, 1)) if steps else [(None, row.get("approximate") or {})]
    total = row.get("forgotten_interactions")
    out = []
    for step, shards in per_step:
        if not isinstance(shards, dict) or not any(isinstance(s, dict) and s.get("changed") for s in shards.values()):
            continue  # a request that changed nothing is an unchanged step (unchanged_steps)
        for shard in unchanged_shards(shards):
            summary = shards[str(shard)]
            held = summary.get("forgotten_interactions")
            count = f"{held} of the {total} forgotten interactions; " if held is not None and total else ""
            at = f" at request step {step}" if step is not None else ""
            out.append(f"shard {shard}{at} ({count}stopped_by: {summary.get('stopped_by')})")
    return out


def unchanged_rows_note(rows: List[dict]) -> Optional[str]:
    """One line naming every row whose forget left the model's weights as they were
    (``changed`` False: an approximate step that stopped before its first kept update), so it
    is never read as an ordinary forget; ``None`` if none did."""
    named = [f"{row['method']} (stopped_by: {why_unchanged(row)})" for row in rows if changed_nothing(row)]
    # request_steps rows that some request changed: name the requests that did not
    partly = [f"{row['method']}'s request step{'s' if len(row['unchanged_steps']) > 1 else ''} "
              f"{', '.join(map(str, row['unchanged_steps']))} of {row.get('request_steps', '?')}"
              for row in rows if not changed_nothing(row) and row.get("unchanged_steps")]
    # shard_unlearning rows whose forget changed some shards and left others as they were
    partly += [f"{row['method']}'s {', '.join(partly_unchanged(row))}" for row in rows
               if not changed_nothing(row) and partly_unchanged(row)]
    if partly and not named:
        return (f"{'; '.join(partly)} did not change the model: the data forgotten there is no longer used, yet its "
                "influence remains (retrain, or use an exact method)")
    if partly:
        named += partly
    if not named:
        return None
    verb = "does" if len(named) == 1 else "do"
    return (f"{', '.join(named)} did not change the model: the forgotten data is no longer used, yet its "
            f"influence remains; {'it' if len(named) == 1 else 'they'} {verb} not count as forgetting "
            "(retrain, or use an exact method)")


def _summaries(record: dict) -> List[dict]:
    """The approximate step summaries in ``record``: a row or an audit line (``forget_hit@10_before`` /
    ``_after`` of a single model, ``approximate``: one summary or one per shard, ``approximate_steps``:
    one per request)."""
    out = [record] if "forget_hit@10_before" in record else []
    approximate = record.get("approximate")
    if isinstance(approximate, dict):
        out += [approximate] if "stopped_by" in approximate else [s for s in approximate.values() if isinstance(s, dict)]
    for step in record.get("approximate_steps") or []:  # one summary a request, or one per shard
        if isinstance(step, dict):
            out += [step] if "stopped_by" in step else [s for s in step.values() if isinstance(s, dict)]
    return out


def has_approximate_step(record: dict) -> bool:
    """Whether ``record`` (a row or an audit line) holds what an approximate step measured."""
    return bool(_summaries(record))


def forget_hit_rose(record: dict) -> bool:
    """Whether an approximate step of ``record`` (a row or an audit line) ended with a higher
    forget Hit@10 than it started with, on its own samples: it made the forgotten data recalled
    more, not less."""
    for summary in _summaries(record):
        before, after = summary.get("forget_hit@10_before"), summary.get("forget_hit@10_after")
        if before is not None and after is not None and after > before:
            return True
    return False


def no_forget_samples_note(forget_set: dict) -> Optional[str]:
    """A note where a forget set (``results.json``'s ``forget_set``: ``interactions``,
    ``forget_samples``) forgot interactions none of which has a history left to score it on:
    forget Hit@k and SRU inference measure nothing then, and their columns are empty."""
    n = forget_set.get("interactions")
    if not n or forget_set.get("forget_samples") != 0:
        return None
    return (f"forget metrics: none of the {n} forgotten interactions has a history left to score it on (a "
            "user's first interaction has none, and histories leave out every forgotten interaction, so a user "
            "forgotten whole gives none): forget Hit@k and SRU inference are not measured for them")


def forget_hit_rose_note(rows: List[dict]) -> List[str]:
    """One line for each row whose approximate step left forget Hit@10 higher than before."""
    return [f"{row['method']}'s approximate step left forget Hit@10 higher than before, on its own samples: the "
            "forgotten data is recalled more, not less (the model changed, so nothing says not applied; retrain, "
            "or use an exact method)" for row in rows if forget_hit_rose(row)]


_SHORT = {"ndcg": "N", "recall": "R", "hit": "H", "mrr": "MRR", "precision": "P"}
_GROUP_SUFFIX = {"utility_raw": " raw", "utility_rem": " rem", "forget": "", "sru_inference": ""}
_GROUP_PREFIX = {"utility_raw": "", "utility_rem": "", "forget": "fgt ", "sru_inference": "SRU "}


def _table_columns(rows: List[dict]) -> List[Tuple[str, str, str]]:
    """``_COLUMNS`` that some row holds; a group none of whose usual columns any row holds (other
    ``utility_metrics`` or cut-offs: every cell printed ``-``) shows its first measured metric."""
    held = lambda group, key: any(key in (row.get(group) or {}) for row in rows)  # noqa: E731
    columns = [c for c in _COLUMNS if held(c[1], c[2])]
    for group in _GROUP_SUFFIX:
        if any(c[1] == group for c in columns):
            continue
        keys = next((list(row[group]) for row in rows if row.get(group)), [])
        if keys:
            name, _, k = keys[0].partition("@")
            label = f"{_GROUP_PREFIX[group]}{_SHORT.get(name, name)}@{k}{_GROUP_SUFFIX[group]}"
            columns.append((label, group, keys[0]))
    order = list(_GROUP_SUFFIX)
    return sorted(columns, key=lambda c: order.index(c[1]))


def format_table(rows: List[dict]) -> str:
    """A plain-text table of the headline numbers of each row."""
    columns = _table_columns(rows)
    headers = ["method"] + [c[0] for c in columns] + ["seconds", "speedup"]
    body = []
    for row in rows:
        cells: List[Optional[object]] = [row["method"]]
        cells += [row[group].get(key) for _, group, key in columns]
        cells += [row["seconds"], row.get("speedup")]
        body.append(cells)
    return tabulate(body, headers=headers, floatfmt=".4f", missingval="-")


def write_results(path: str, document: dict) -> None:
    write_json(path, document)
