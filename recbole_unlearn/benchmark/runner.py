"""Run a leaderboard grid, resumably.

Folder layout under the grid's ``output_dir``::

    grid.json                            the grid file that writes this folder (its file name):
                                         another grid file is refused, since its rows and
                                         leaderboard would overwrite this grid's
    leaderboard.csv / leaderboard.md / leaderboard.html     (rewritten after every cell)
    <model>-<dataset>/cell.json          settings + forget-set fingerprint of the cell
    <model>-<dataset>/original.pth       the original model, shared by every method row
    <model>-<dataset>/rows/<label>.json  one finished row (written last, atomically)
    <model>-<dataset>/models/<label>/    the deployable model a method saved (version 1: as
                                         fitted, read back by rows that share its shard fit)

A row file exists only once its row is complete, so rerunning the same grid skips finished
rows, reloads the original model instead of training it again, and redoes only what a kill
interrupted. A cell whose data settings or forget set changed is refused rather than mixed, and
a row whose method settings changed (a new default, say) is run again. Both compare the settings
recorded when the cell or row was made with today's, key by key: a key added to recbole_unlearn
since then is not in the record and does not make it stale (a new key's default keeps the old
behaviour), so a long grid can be resumed by newer code.

A grid with ``reuse_cells_from: <another grid's output_dir>`` starts each cell it has not begun
from that folder's cell of the same name, when that cell was made with the same data settings and
forget set (checked as on resume; a cell made otherwise is refused): it copies the cell's
``cell.json``, ``original.pth``, audit references and its ``original`` and ``retrain`` rows (and
``recbole`` when the grid has a baseline), so that new method rows are compared with the same
original, references and Retrain without training them again. ``cell.json`` is copied last, so an
interrupted copy is redone; the Retrain row is run again if its method settings differ.

A cell whose model files are gone but whose rows are not (copied to another machine, or
``original.pth`` deleted) trains its original and the audit's references again; when method rows
were already measured against them, the original must reproduce its saved row (epochs run and
every metric) and the references its saved audit of the original, or the cell is refused rather
than mixed. A reproduced original keeps its saved row, first measured time included. Training
is deterministic on one machine but may not be on another CPU; where the saved original's row
records another CPU or torch, the runner warns before training it again.

While a file named ``PAUSE`` exists in ``output_dir``, the runner waits before starting its next
timed training (the RecBole baseline, the original, the audit's references, a method row; the one
in progress finishes first; ``watch_poll_s`` says how often it looks): the
machine can then be lent to something that must be timed alone, without a row's wall time
counting the pause.
"""
import errno
import hashlib
import json
import math
import os
import shutil
import time
from contextlib import ExitStack, contextmanager
from logging import getLogger
from typing import Dict, Iterable, Iterator, List, Optional

from recbole.utils import set_color

from recbole_unlearn.benchmark.baseline import BASELINE, recbole_baseline_row
from recbole_unlearn.benchmark.grid import REFERENCE, Cell, Grid, Variant, load_grid
from recbole_unlearn.benchmark.report import TARGET_KINDS, write_leaderboard
from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.config.configurator import unread_model_settings
from recbole_unlearn.data import check_dataset_files, dataset_file
from recbole_unlearn.data.forget import read_request_file, request_tokens, unrequestable_line
from recbole_unlearn.evaluator.audit import apply_reference_gate
from recbole_unlearn.serving.audit import AuditLog
from recbole_unlearn.serving.ledger import RequestLedger
from recbole_unlearn.serving.lock import LOCK, LOCK_PID, FolderLock, FolderUnlockable
from recbole_unlearn.serving.store import MANIFEST, open_store
from recbole_unlearn.utils.digests import file_sha256
from recbole_unlearn.unlearn import METHODS
from recbole_unlearn.unlearn.experiment import (AUDIT_REFERENCE_PREFIX, Experiment, check_request_steps_dealt,
                                                 unread_data_settings)
from recbole_unlearn.config.keys import settings_of, unused_method_keys
from recbole_unlearn.utils.atomic import write_json
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.results import (METRIC_GROUPS, add_speedups, code_version, forget_hit_rose_note, machine,
                                          other_numerics)
from recbole_unlearn.utils.run_logger import releasing_run_logger

ORIGINAL = "original"
CELL_FILE = "cell.json"
GRID_FILE = "grid.json"
ORIGINAL_FILE = "original.pth"


def _read_json(path: str) -> Optional[dict]:
    """The JSON object in ``path`` (``None`` if there is no such file); one-line errors for a
    file that is not JSON or holds something else (``[]`` ended a later run in a traceback)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError) as e:
        raise UnlearnError(f"cannot read {path}: {e}; delete it to redo that row") from None
    if not isinstance(document, dict):
        raise UnlearnError(f"cannot read {path}: not a JSON object; delete it to redo that row")
    return document


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _row_of(saved: dict, path: str) -> Optional[dict]:
    """The row a row file holds (``None``: none yet), checked for what the report reads of it:
    its method, finite seconds, metric groups of numbers, its audit and request steps."""
    row = saved.get("row")
    if row is None:
        return None
    if not (isinstance(row, dict) and isinstance(row.get("method"), str) and _is_number(row.get("seconds"))
            and all(row.get(group) is None or (isinstance(row[group], dict) and all(
                value is None or _is_number(value) for value in row[group].values())) for group in METRIC_GROUPS)
            and isinstance(row.get("audit") or {}, dict)
            and isinstance(row.get("steps") or [], list) and all(isinstance(s, dict) for s in row.get("steps") or [])
            and isinstance(saved.get("overrides") or {}, dict)
            and isinstance(saved.get("settings") or {}, dict)):
        raise UnlearnError(f"cannot read {path}: not a row file (a row with method, seconds and metrics as the "
                           "runner writes them); delete it to redo that row")
    return row


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts grid steps (baseline, original, one per method row) and logs an ETA: the mean
    seconds of the steps this process ran, times the steps left (a rough guide: steps differ)."""

    def __init__(self, total: int, already_done: int):
        self.total = total
        self.done = already_done
        self.ran = 0
        self.start = time.perf_counter()

    def step(self, what: str) -> None:
        self.done += 1
        self.ran += 1
        elapsed = time.perf_counter() - self.start
        left = self.total - self.done
        eta = elapsed / self.ran * left
        getLogger().info(set_color("grid progress", "blue") + f": {self.done}/{self.total} steps "
                         f"({what}) · elapsed {_format_seconds(elapsed)} · ETA {_format_seconds(eta)}")


def cell_settings(grid: Grid, cell: Cell) -> dict:
    """The grid's ``config`` without the settings of other RecBole models that ``cell``'s model
    does not read (a grid of several models may set one for some of them; recorded in the
    others' cells, it would read as if they had used it)."""
    unread = set(unread_model_settings(cell.model, grid.config))
    return {k: v for k, v in grid.config.items() if k not in unread}


def check_models_read(grid: Grid) -> None:
    """Refuse a setting of the grid's ``config`` that no model of the grid reads (another
    RecBole model's), as a single run does."""
    models = list(dict.fromkeys(cell.model for cell in grid.cells))
    unread = set.intersection(*(set(unread_model_settings(model, grid.config)) for model in models))
    if unread:
        names = sorted(unread)
        raise UnlearnError(f"grid {grid.source}: {', '.join(names)} {'is' if len(names) == 1 else 'are'} not read by "
                           f"{', '.join(models)} (another RecBole model's setting; it would be recorded as if "
                           "the grid had used it): drop it, or set the model's own")


def check_cells_data(runs: List["CellRun"]) -> None:
    """Build every cell's forget set (its ``Experiment``, which writes nothing) before the first
    model trains, refusing with the cell's name what its data cannot give (fewer forget users
    than ``request_steps``, no training sample, too few users for the audit) and a started cell,
    or the lender of a cell to adopt, whose settings, dataset file or forget set differ: such a
    cell was refused when it started, after the cells before it had trained (probes). What a
    method needs of the data is still checked when its cell starts."""
    for run in runs:
        check_request_steps_dealt(run.base, [variant.method for variant in run.cell.variants])
        try:
            experiment = Experiment(run.base)
        except UnlearnError as e:
            raise UnlearnError(f"cell {run.cell.name}: {e}") from None
        saved, fingerprint = _read_json(os.path.join(run.dir, CELL_FILE)), run.fingerprint(experiment)
        _check_same_cell(run, saved, fingerprint)
        if saved is None and run.grid.reuse_cells_from is not None:  # a cell to adopt: its lender's too
            check_lender(run, fingerprint)


def _check_same_cell(run: "CellRun", saved: Optional[dict], fingerprint: dict) -> None:
    """Refuse a started cell (``saved``: its ``cell.json``) whose fingerprint differs from today's."""
    if saved is not None and not same_cell(saved.get("fingerprint") or {}, fingerprint):
        raise UnlearnError(
            f"{run.dir} was started with other settings, another dataset file or another forget set; delete it or "
            "choose another output_dir"
        )


def check_method_keys_used(grid: Grid, runs: List["CellRun"]) -> None:
    """Refuse a fit, aggregate or forget setting of the grid's ``config`` that no row of its
    cells uses, as a single run does (a row setting one is refused when its config is built);
    settings a grid takes from one it ``extends`` are shared to keep the same cells, and pass."""
    used, why = set(), {}
    for run in runs:
        for variant in run.cell.variants:
            config = run.variant_configs[variant.label]
            used.update(METHODS.get(variant.method).settings_used(config))
            why.update(METHODS.get(variant.method).unread_settings(config))
    unused = unused_method_keys(grid.config if grid.own_config_keys is None else grid.own_config_keys, used)
    if unused:
        named = ", ".join(f"{key} ({why[key]})" if key in why else key for key in unused)
        raise UnlearnError(f"{named} {'is' if len(unused) == 1 else 'are'} not used by any row of grid "
                           f"{grid.source} (it would be recorded as if the grid had used it): drop it, or set it on "
                           "the rows that use it")


#: what each target kind compares, and the settings whose product must measure its metric
#: (``None``: forget Hit is always measured, at ``forget_topk``)
TARGET_MEASURED_BY = {"ndcg_at_least": ("D_rem NDCG@10", "utility_metrics", "utility_topk"),
                      "forget_at_most": ("forget Hit@10", None, "forget_topk")}


def check_targets_measured(grid: Grid, runs: List["CellRun"]) -> None:
    """Refuse a target on a metric that a row of its method, or the Retrain it is compared with,
    does not measure: every such row's target was reported "not measured" after the whole grid
    trained (a probe)."""
    for run in runs:
        for variant in run.cell.variants:
            for kind in grid.targets.get(variant.method, {}):
                if kind not in TARGET_MEASURED_BY:
                    continue
                name, metrics_key, topk_key = TARGET_MEASURED_BY[kind]
                for label in (variant.label, REFERENCE):
                    config = run.variant_configs[label]
                    metrics = config[metrics_key] if metrics_key else ["Hit"]
                    if TARGET_KINDS[kind][1] not in {f"{m}@{k}".lower() for m in metrics for k in config[topk_key] or []}:
                        keys = f"{metrics_key} x {topk_key} do" if metrics_key else f"{topk_key} does"
                        raise UnlearnError(f"grid {grid.source}: target {kind} of '{variant.method}' compares {name}, "
                                           f"which {keys} not measure (row '{label}' of {run.cell.name}): measure it, "
                                           "or drop the target")


def cell_config(grid: Grid, cell: Cell) -> UnlearnConfig:
    """The settings every row of ``cell`` shares (:func:`cell_settings` on the cell's model and
    dataset)."""
    return UnlearnConfig(cell.model, cell.dataset, None, cell_settings(grid, cell))


class CellRun:
    """Files and configs of one (model, dataset) cell."""

    def __init__(self, grid: Grid, cell: Cell):
        self.grid = grid
        self.cell = cell
        self.dir = os.path.join(grid.output_dir, cell.name)
        self.base = cell_config(grid, cell)
        self.variant_configs = {v.label: self._variant_config(v) for v in cell.variants}

    def _variant_config(self, variant: Variant):
        values = dict(cell_settings(self.grid, self.cell), **variant.overrides)
        values["unlearn_method"] = variant.method
        values["model_dir"] = self.model_dir(variant.label)
        config = UnlearnConfig(self.cell.model, self.cell.dataset, None, values)
        config["checkpoint_dir"] = self.dir
        config = config.for_method(variant.method)
        used = METHODS.get(variant.method).settings_used(config)
        unused = unused_method_keys(variant.overrides, used)
        if unused:
            raise UnlearnError(f"grid {self.grid.source}: row '{variant.label}' sets {', '.join(unused)}, which "
                               f"{variant.method} does not use (it would be recorded as if it had run with it)")
        if "keep_previous_version" not in values:
            # the fitted v000001, shared on resume; for this run only (set on the final settings, not
            # the user's, so the folder does not record it: answering requests later, it would keep
            # the version from before every forget)
            config["keep_previous_version"] = True
        return config

    def model_dir(self, label: str) -> str:
        return os.path.join(self.dir, "models", label)

    def row_path(self, label: str) -> str:
        return os.path.join(self.dir, "rows", f"{label}.json")

    def method_settings(self, label: str) -> dict:
        """The fit, aggregate and forget settings of row ``label`` (what its numbers depend on
        beyond the cell's data settings)."""
        config = self.variant_configs[label]
        return METHODS.get(config.method).settings_used(config)

    def finished(self, label: str, overrides: Optional[dict] = None) -> Optional[dict]:
        """The saved row of ``label`` if it exists, was made with these overrides and, where it
        recorded them, with today's method settings."""
        saved = _read_json(self.row_path(label))
        if saved is None:
            return None
        row = _row_of(saved, self.row_path(label))
        if overrides is not None and saved.get("overrides") != overrides:
            return None
        if label in self.variant_configs and saved.get("settings") is not None and \
                not same_settings(saved["settings"], self.method_settings(label)):
            return None
        return row

    def pending_steps(self) -> int:
        """The steps this cell will run: its missing rows, and the original when its row is
        saved but its model file is gone (it is trained again before the missing rows run)."""
        steps = [(ORIGINAL, None)] + [(v.label, v.overrides) for v in self.cell.variants]
        if self.grid.baseline:
            steps.insert(0, (BASELINE, None))
        missing = sum(self.finished(label, overrides) is None for label, overrides in steps)
        retrained = self.finished(ORIGINAL) is not None and not os.path.isfile(os.path.join(self.dir, ORIGINAL_FILE))
        return missing + int(retrained)

    def total_steps(self) -> int:
        return len(self.cell.variants) + 1 + int(self.grid.baseline)

    def fingerprint(self, experiment: Experiment) -> dict:
        """What every row of the cell depends on: the data settings (``config/keys.py``: the data,
        the forget set, the original model), the dataset file's SHA-256 and a hash of the forget
        set's rows (log rows: positions in that file, so an edited file can keep them)."""
        rows = experiment.forget_set.rows
        out = {"settings": self.data_settings(), "data_sha256": file_sha256(dataset_file(self.base)),
               "forget_rows_sha256": hashlib.sha256(rows.tobytes()).hexdigest()}
        if self.base["forget"]:  # the forget set is the file's: a report checks it without the data
            out["forget_lines_sha256"] = request_lines_digest(str(self.base["forget"]))
        return out

    def data_settings(self) -> dict:
        """The cell's data settings but those its forget set and audit never read
        (:func:`~recbole_unlearn.unlearn.experiment.unread_data_settings`): a cell recorded
        with one of them (earlier code took them) matches today's grid without it."""
        unread = unread_data_settings(self.base)
        return {k: v for k, v in settings_of(self.base.settings(), "data").items() if k not in unread}

    def check_made_alike(self, saved: dict) -> None:
        """Refuse a cell made with other data settings, another dataset file or another request
        file (``forget``) than today's (what :meth:`fingerprint` holds, without loading the data
        to draw the forget set)."""
        recorded = saved.get("fingerprint") or {}
        today = self.data_settings()
        differ = settings_differing(recorded.get("settings", {}), today)
        data_file = dataset_file(self.base)
        if recorded.get("data_sha256") and os.path.isfile(data_file) and \
                file_sha256(data_file) != recorded["data_sha256"]:
            differ.append(f"the dataset file {data_file}")
        forget = self.base["forget"]
        if recorded.get("forget_lines_sha256") and forget and os.path.isfile(str(forget)) and \
                request_lines_digest(str(forget)) != recorded["forget_lines_sha256"]:
            differ.append(f"the request file {forget}")  # another forget set (it was reported beside the first)
        if differ or "settings" not in recorded:
            raise UnlearnError(f"{self.dir} was made with other settings than the grid gives today "
                               f"({', '.join(differ) or 'none recorded'}), so its rows are not this grid's: "
                               "report it from the grid file it was made with, or delete the cell folder to run "
                               "it again")


def request_lines_digest(path: str) -> str:
    """SHA-256 of a request file's requests, in any order and layout: each line's tokens
    (``data.forget.request_tokens``, as the file is read) joined by a tab, sorted. Equal digests, equal forget sets on the
    same dataset file (a digest of the bytes refused a file whose lines were only reordered,
    where the runner, comparing forget rows, resumed it)."""
    _, lines = read_request_file(path, 10 ** 9, 10 ** 9)
    requests = sorted("\t".join(request_tokens(text)) for _, text in lines if text is not None)
    return hashlib.sha256("\n".join(requests).encode("utf-8")).hexdigest()


def settings_differing(recorded: dict, today: dict) -> List[str]:
    """The keys both records hold whose values differ (a key only one holds was added since:
    see the module doc), sorted."""
    return sorted(k for k in recorded.keys() & today.keys() if recorded[k] != today[k])


def same_settings(recorded: dict, today: dict) -> bool:
    """Whether every key both records hold has the same value (see the module doc)."""
    return not settings_differing(recorded, today)


def same_cell(saved: dict, today: dict) -> bool:
    """Whether a cell's saved fingerprint matches today's (same forget rows, same data settings
    on every key both hold)."""
    return (saved.get("forget_rows_sha256") == today["forget_rows_sha256"] and "settings" in saved
            and saved.get("data_sha256", today["data_sha256"]) == today["data_sha256"]  # cells made before it
            and same_settings(saved["settings"], today["settings"]))


def _save_row(path: str, row: dict, overrides: Optional[dict] = None, settings: Optional[dict] = None) -> None:
    write_json(path, {"row": row, "overrides": overrides, "settings": settings, "code": code_version(),
                      "machine": machine()})


def _describe(run: CellRun, experiment: Experiment) -> str:
    """The cell's settings line. ``n_shards`` is that of its sharded rows (each value a row ran),
    left out without one: a Retrain-only cell said "n_shards 8" of nothing (r10baseline probe)."""
    c = run.base
    fs = experiment.forget_summary()
    shards = sorted({run.variant_configs[v.label]["n_shards"] for v in run.cell.variants
                     if "n_shards" in METHODS.get(v.method).settings_used(run.variant_configs[v.label])})
    shards_said = f"n_shards {', '.join(map(str, shards))}, " if shards else ""
    return (f"Forget set: {fs['interactions']} interactions of {fs['users']} users "
            f"({fs['source']}). Settings: epochs {c['epochs']} (stopping_step {c['stopping_step']}), "
            f"{shards_said}MAX_ITEM_LIST_LENGTH {c['MAX_ITEM_LIST_LENGTH']}, "
            f"hidden_size {c['hidden_size']}, learning_rate {c['learning_rate']}, "
            f"train_batch_size {c['train_batch_size']}, seed {c['seed']}. "
            f"Users {experiment.data.user_num - 1}, items {experiment.data.item_num - 1}, "
            f"interactions {len(experiment.data.log_item)}.")


#: a model folder's first version: the state right after the fit (the forget commits the second).
FIRST_VERSION = "v000001"


class SharedFits:
    """The shard fits that rows with equal ``fit_key`` share (``Experiment.run_method``'s
    ``fit_cache``): those fitted in this run, and those of rows finished by an earlier run,
    read back on first use from the first version of the row's saved model. The store keeps the
    current version and the one before it, so a row that forgot once still holds its fitted
    state; a row that adopted another's fit, or whose first version is gone, offers none."""

    def __init__(self):
        self._states: Dict[str, tuple] = {}
        self._saved: Dict[str, tuple] = {}

    def offer(self, key: Optional[str], model_dir: str, row: dict, label: str) -> None:
        """Offer finished row ``label``'s fitted state (``model_dir``/v000001) for ``key``."""
        if key is None or key in self._saved or row.get("fit_shared_with") or "initial_train_seconds" not in row:
            return
        manifest = _read_json(os.path.join(model_dir, FIRST_VERSION, MANIFEST))
        if manifest is not None and manifest.get("n_forgotten") == 0:
            self._saved[key] = (model_dir, row, label)

    def __contains__(self, key: str) -> bool:
        return key in self._states or key in self._saved

    def __getitem__(self, key: str) -> tuple:
        """``(fitted state, fit seconds, donor label)``."""
        if key not in self._states:
            model_dir, row, label = self._saved[key]
            state = open_store(model_dir).load(version=FIRST_VERSION)
            state.fit_training = row.get("fit_training")
            state.aggregator_seconds = ((row.get("fit_training") or {}).get("aggregator") or {}).get("seconds", 0.0)
            getLogger().info(set_color("shard fit", "green") + f" of {label} read back from {model_dir}/{FIRST_VERSION}")
            self._states[key] = (state, float(row["initial_train_seconds"]), label)
        return self._states[key]

    def __setitem__(self, key: str, value: tuple) -> None:
        self._states[key] = value


def check_output_dir(grid: Grid) -> None:
    """Refuse ``grid`` an ``output_dir`` that another grid file writes (its ``grid.json`` names
    another file): that grid's leaderboard files would be rewritten with this grid's cells, and
    its rows of a label both grids have would be run again with this grid's settings."""
    claimed = _read_json(os.path.join(grid.output_dir, GRID_FILE))
    name = os.path.basename(grid.source)
    recorded = claimed.get("path") if claimed is not None else None
    # a file of the same name elsewhere while the one that wrote the folder is still there (a
    # committed grid copied to edit it); a grid file moved since (a clone elsewhere) resumes
    elsewhere = isinstance(recorded, str) and os.path.isfile(recorded) and \
        os.path.realpath(recorded) != os.path.realpath(grid.source)
    if claimed is not None and (claimed.get("grid") != name or elsewhere):
        raise UnlearnError(
            f"grid {grid.source}: output_dir {grid.output_dir} holds the results of grid file {claimed.get('grid')} "
            f"({claimed.get('path')}); give this grid an output_dir of its own (a grid file renamed since "
            f"it ran: rename it back, or edit {os.path.join(grid.output_dir, GRID_FILE)})")


#: where a grid without ``output_dir`` wrote before the default became a folder per grid file
OLD_DEFAULT_OUTPUT_DIR = os.path.join("results", "leaderboard")


def check_old_default(grid: Grid) -> None:
    """Refuse a grid without ``output_dir`` whose cells the old default folder holds while its
    new default folder does not exist yet: it ran before 089c52e, and would run every cell again
    in the new folder without a word."""
    if not grid.default_output_dir or os.path.isdir(grid.output_dir):
        return
    earlier = [c.name for c in grid.cells if os.path.isfile(os.path.join(OLD_DEFAULT_OUTPUT_DIR, c.name, CELL_FILE))]
    if earlier:
        raise UnlearnError(
            f"grid {grid.source} sets no output_dir, whose default is now {grid.output_dir}, and "
            f"{OLD_DEFAULT_OUTPUT_DIR} holds cells it ran under the earlier default ({', '.join(earlier)}): set "
            f"output_dir: {OLD_DEFAULT_OUTPUT_DIR} in the grid file to resume them, or another folder to start anew")


def claim_output_dir(grid: Grid, timeout_s: float) -> None:
    """Record in ``output_dir`` that ``grid``'s file writes it (once; a folder written before the
    record was kept is claimed by the first grid that resumes it), checking again under the
    folder's lock that no other grid file claimed it since this grid started (two started
    together on a new folder both ran)."""
    path = os.path.join(grid.output_dir, GRID_FILE)
    os.makedirs(grid.output_dir, exist_ok=True)
    with output_dir_lock(grid, timeout_s):
        check_output_dir(grid)
        if not os.path.isfile(path):
            write_json(path, {"grid": os.path.basename(grid.source), "path": os.path.abspath(grid.source)})


@contextmanager
def output_dir_lock(grid: Grid, timeout_s: float) -> Iterator[None]:
    """Hold ``output_dir``'s lock for the block (its claim; reading the finished cells and
    writing the leaderboard files, which two ``--cells`` runs do at once); a folder that cannot
    be locked (read-only: a finished grid only reported) is used without it."""
    with ExitStack() as stack:
        try:
            stack.enter_context(FolderLock(grid.output_dir, timeout_s, what="leaderboard folder").hold())
        except FolderUnlockable:
            pass
        yield


PAUSE_FILE = "PAUSE"


def wait_while_paused(output_dir: str, poll_s: float) -> None:
    """Block while ``<output_dir>/PAUSE`` exists, looking every ``poll_s`` seconds (the wait is
    logged)."""
    path = os.path.join(output_dir, PAUSE_FILE)
    if not os.path.exists(path):
        return
    getLogger().info(f"paused: {path} exists; the next row starts once it is removed")
    start = time.perf_counter()
    while os.path.exists(path):
        time.sleep(poll_s)
    getLogger().info(f"resumed after {time.perf_counter() - start:.0f}s")


def reference_files(folder: str) -> List[str]:
    """The audit's reference model files saved in a cell ``folder``."""
    if not os.path.isdir(folder):
        return []
    return [n for n in os.listdir(folder) if n.startswith(AUDIT_REFERENCE_PREFIX) and n.endswith(".pth")]


def lender_dir(grid: Grid, cell: Cell) -> Optional[str]:
    """The folder of the cell that lends ``cell`` its shared files (``reuse_cells_from``), or
    ``None``; refused when that cell has no finished original."""
    if grid.reuse_cells_from is None:
        return None
    folder = os.path.join(grid.reuse_cells_from, cell.name)
    for name in (CELL_FILE, ORIGINAL_FILE, os.path.join("rows", f"{ORIGINAL}.json")):
        if not os.path.isfile(os.path.join(folder, name)):
            raise UnlearnError(f"reuse_cells_from: {folder} has no {name}; run that grid's cell "
                               f"{cell.name} first, or drop reuse_cells_from")
    return folder


def _copy_atomically(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = target + ".partial"
    shutil.copy2(source, partial)
    os.replace(partial, target)


def check_lender(run: CellRun, fingerprint: dict) -> dict:
    """The lender's ``cell.json`` for ``run``'s cell (see the module doc), refused unless it has
    the same fingerprint (checked before the cell writes anything)."""
    source = lender_dir(run.grid, run.cell)
    lent = _read_json(os.path.join(source, CELL_FILE))
    if not same_cell(lent.get("fingerprint") or {}, fingerprint):
        raise UnlearnError(f"reuse_cells_from: {source} was made with other data settings or another "
                           f"forget set than this grid's cell {run.cell.name}; it cannot lend its original")
    return lent


def adopt_cell(run: CellRun, lent: dict) -> None:
    """Start ``run``'s cell from the lender's (``lent``: its checked ``cell.json``);
    ``cell.json`` is written last."""
    source = lender_dir(run.grid, run.cell)
    names = [ORIGINAL_FILE] + sorted(reference_files(source))
    names += [os.path.join("rows", f"{label}.json") for label in (ORIGINAL, REFERENCE, BASELINE)
              if label != BASELINE or run.grid.baseline]
    for name in names:
        if os.path.isfile(os.path.join(source, name)):
            _copy_atomically(os.path.join(source, name), os.path.join(run.dir, name))
    write_json(os.path.join(run.dir, CELL_FILE), dict(lent, reused_from=source))
    getLogger().info(set_color("cell", "green") + f" {run.cell.name} started from {source}: "
                     + ", ".join(n for n in names if os.path.isfile(os.path.join(run.dir, n))))


#: row keys that are measured anew rather than reproduced when a model is trained again: its
#: wall time and what other processes took meanwhile (cpu_meter), and the audit (checked on its
#: own, once the references are in place)
NOT_REPRODUCED = ("seconds", "audit", "cpu_meter")
#: audit keys that are not the references' calibration: the shuffled-labels check, a property of
#: how the check is measured (one draw by older code, the mean of `audit_shuffles` draws now), is
#: measured anew when the references are trained again rather than compared
NOT_CALIBRATION = ("shuffled_labels",)


def differing_keys(saved: dict, today: dict, ignore: tuple = ()) -> List[str]:
    """The keys, other than ``ignore``, on which two records of one model (a row, trained twice
    with the same settings and seed; an audit) differ; ``[]`` when ``today`` reproduces ``saved``."""
    keys = sorted((saved.keys() | today.keys()) - set(ignore))
    return [key for key in keys if saved.get(key) != today.get(key)]


def train_original(run: CellRun, experiment: Experiment, saved: Optional[dict],
                   measured_against: List[str], saved_machine: Optional[dict] = None) -> dict:
    """Train the cell's original, save it and return its row.

    ``saved`` is the original's row when one was written before but its model file is gone (the
    cell was copied to another machine, or ``original.pth`` deleted). If rows in
    ``measured_against`` were measured against that model, the original trained now must
    reproduce the saved row (epochs run and every metric; the time is measured anew, not
    compared): then the saved row, with its first measured time and its audit, stays; otherwise
    the cell is refused, since a method row is never compared with an original it did not start
    from, and nothing is written. ``saved_machine`` is the machine the saved row was measured on:
    where its CPU or torch differs from this one's (``other_numerics``), a warning says so before
    training and the refusal names both, since floating-point results can differ across CPUs."""
    elsewhere = other_numerics(saved_machine, machine()) if saved is not None and measured_against else None
    if elsewhere is not None:
        _warn(
            f"{run.dir}: {ORIGINAL_FILE} is missing and its saved row was measured on another machine "
            f"({elsewhere}); it is trained again (about {saved.get('seconds', 0):.0f} s there) and the cell "
            f"resumes only if it reproduces that row exactly, which floating-point results on another CPU "
            f"often do not")
    row = experiment.train_original()
    path = os.path.join(run.dir, ORIGINAL_FILE)
    if saved is None or not measured_against:
        experiment.save_original(path)
        _save_row(run.row_path(ORIGINAL), row)
        return row
    differences = differing_keys(saved, row, NOT_REPRODUCED)
    if differences:
        cause = "" if elsewhere is None else (
            f" (the saved row was measured on another machine ({elsewhere}); training is deterministic on "
            f"one machine, but floating-point results can differ across CPUs)")
        raise UnlearnError(
            f"{run.dir}: {ORIGINAL_FILE} is missing and the original trained again differs from its saved row "
            f"in {', '.join(differences)}{cause}, while rows {', '.join(measured_against)} were measured against "
            f"the saved one; restore {ORIGINAL_FILE}, or delete the cell folder to run the cell again from the "
            f"start")
    experiment.save_original(path)
    experiment.load_original(path, saved)  # the saved row's time stays the original's cost
    getLogger().info(set_color("original model", "green") + f" trained again ({ORIGINAL_FILE} was missing): "
                     f"it reproduces its saved row (epochs run and every metric); the saved row is kept")
    return saved


def _warn(message: str) -> None:
    """A ``warning:`` line at any ``state``, as the command line prints its warnings, and the same
    in the grid's log (log lines alone were hidden by the ``state: ERROR`` the committed tests'
    grids use: a cell left out of the leaderboard said nothing; r11docs, r11round5 probes)."""
    print(f"warning: {message}", flush=True)
    getLogger().info(message)


def refuse_other_references(run: CellRun, retrained: List[str], differences: List[str],
                            measured_against: List[str]) -> None:
    """The audit's references were trained again (their files were missing) and audit the original
    otherwise (in the audit keys ``differences``) than they did when rows ``measured_against`` were
    audited: remove the references trained now and refuse the cell, so that one cell never mixes
    audits calibrated by different references."""
    for name in retrained:
        os.unlink(os.path.join(run.dir, name))
    raise UnlearnError(
        f"{run.dir}: the audit's reference models were missing and, trained again, audit the original "
        f"otherwise ({', '.join(differences)} differ) than when rows {', '.join(measured_against)} were "
        f"audited; restore {', '.join(retrained)}, or delete the cell folder to run the cell again from the start")


def refuse_replaced_references(run: CellRun, recorded: Dict[str, str], now: Dict[str, str], reloaded: Iterable[str],
                               measured_against: List[str]) -> None:
    """Refuse the cell where a reference file it reloaded (``reloaded``) is not the one the
    original's row recorded (``recorded``, ``now``: ``{file name: sha256}``) while rows
    ``measured_against`` were audited with it: its audit of the original would be refreshed
    against other references than theirs, one cell mixing two calibrations (a file replaced by
    hand was; r11audit probe). Cells saved before the digests were recorded are not checked."""
    replaced = sorted(name for name in reloaded if name in recorded and now.get(name) != recorded[name])
    if replaced and measured_against:
        raise UnlearnError(
            f"{run.dir}: {', '.join(replaced)} {'is' if len(replaced) == 1 else 'are'} not the audit reference "
            f"model{'s' if len(replaced) > 1 else ''} the original's row recorded (checksum), which rows "
            f"{', '.join(measured_against)} were audited with; restore "
            f"{'it' if len(replaced) == 1 else 'them'}, or delete the cell folder to run the cell again from the start"
            + (f" (its references are copied from {run.grid.reuse_cells_from}'s cell again: check that one's files "
               "too)" if run.grid.reuse_cells_from is not None else ""))


def check_unfinished_row(run: CellRun, label: str) -> None:
    """Refuse to run row ``label`` again where its model folder answered request files since the
    grid saved it (its ledger or audit log names other requests than the cell's own forget set):
    those deletions would be lost with the folder, and the row redone without them."""
    model_dir = run.model_dir(label)
    if not os.path.isdir(model_dir):
        return
    own = run.base["forget"]
    own_file = os.path.basename(str(own)) if own else None
    try:
        files = {e.get("file") for e in RequestLedger(model_dir).events()} - {own_file}
        sources = {str(e.get("source")) for e in AuditLog(model_dir).entries()
                   if str(e.get("source")).startswith("requests:")} - {f"requests:{own_file}"}
    except UnlearnError as e:
        raise UnlearnError(f"{model_dir} cannot be checked before its row is run again ({e}): move it away, or "
                           "delete it, to run the row again") from None
    if files or sources:
        named = sorted(str(f) for f in files) or sorted(s[len("requests:"):] for s in sources)
        raise UnlearnError(f"{model_dir} answered request files since the grid saved it ({', '.join(named)}): "
                           f"running row {label} again would remove it and the deletions it applied; move the "
                           "folder away (it stays a deployable model) to run the row again")


def remove_unfinished_row(run: CellRun, label: str) -> None:
    """Remove the row file and then the model folder of row ``label``, whose row is to be run
    (again): what a killed row left, or a row made with other settings (checked first:
    :func:`check_unfinished_row`). The row file goes first: left beside a folder a stopped rerun
    refilled under the new settings, it counted as finished again once the settings were put
    back, and its folder's fit was shared as its own. The folder goes under its own lock (a
    request run holding it is refused, not pulled from under), checked once more there (a
    request run between the cell's check phase and now)."""
    model_dir = run.model_dir(label)
    if not os.path.isdir(model_dir):  # a row file alone (made with other settings) is no one's
        return
    with FolderLock(model_dir, 0.0).hold():
        check_unfinished_row(run, label)  # again under the lock: a request run may have answered since
        if os.path.isfile(run.row_path(label)):
            os.remove(run.row_path(label))
        shutil.rmtree(model_dir)


@contextmanager
def _model_dir_unchecked(config) -> Iterator[None]:
    """``config`` without its ``model_dir`` for the block where it is a folder: a method's check
    refuses a folder that holds a model, and a row to run again has its own (removed once every
    check passed); anything else there (a file) is for the check to refuse."""
    model_dir = config["model_dir"]
    if model_dir and os.path.isdir(model_dir) and not os.path.islink(model_dir):
        config["model_dir"] = None
    try:
        yield
    finally:
        config["model_dir"] = model_dir


def run_cell(run: CellRun, progress: Progress) -> dict:
    """Run every missing step of one cell; returns ``{model, dataset, description, rows}``. The
    cell is run under its lock (``.lock`` in the cell's folder; a folder made for it alone is
    removed again when the cell is refused): a second runner of the same cell removed the
    first's model folder in the middle of its forget, taking it for a killed row's leftovers."""
    made = [folder for folder in (run.grid.output_dir, run.dir) if not os.path.isdir(folder)]
    os.makedirs(run.dir, exist_ok=True)
    try:
        with FolderLock(run.dir, 0.0, what="grid cell").hold():
            return _run_cell_held(run, progress)
    except FolderUnlockable:
        if run.pending_steps():
            raise
        return _run_cell_held(run, progress)  # a finished cell in a read-only folder: only read, for the report
    except BaseException:
        for folder in reversed(made):  # a cell refused at its checks leaves no folder of its lock
            left = os.listdir(folder)
            if set(left) <= {LOCK, LOCK_PID}:
                for name in left:
                    os.remove(os.path.join(folder, name))
                os.rmdir(folder)
        raise


def _run_cell_held(run: CellRun, progress: Progress) -> dict:
    """:func:`run_cell` under the cell's lock."""
    grid, cell = run.grid, run.cell
    experiment = Experiment(run.base)
    fingerprint = run.fingerprint(experiment)
    cell_file = os.path.join(run.dir, CELL_FILE)
    saved = _read_json(cell_file)
    _check_same_cell(run, saved, fingerprint)
    # every check before anything is written: a refused row had removed a finished row's model
    # folder (its settings changed) and a cell to adopt had been copied (probe)
    adopting = grid.reuse_cells_from is not None and saved is None
    lent = check_lender(run, fingerprint) if adopting else None
    pending = [v for v in cell.variants if adopting or run.finished(v.label, v.overrides) is None]
    for variant in pending:
        check_unfinished_row(run, variant.label)
        with _model_dir_unchecked(run.variant_configs[variant.label]):  # the row's own is removed below
            experiment.check_method(run.variant_configs[variant.label])
    if pending:  # the model tried on a few users, as a run does (a traceback came after the cell's files)
        experiment.check_model([run.variant_configs[variant.label] for variant in pending])
        unrequestable = unrequestable_line(experiment.data)  # every row saves a model folder
        if unrequestable:
            _warn(f"{cell.name}: {unrequestable} (the model folders this cell saves in "
                                f"{os.path.join(run.dir, 'models')} answer requests all the same)")
    claim_output_dir(grid, run.base["lock_timeout_s"])  # after the checks: a refused row wrote grid.json
    if adopting:
        adopt_cell(run, lent)
        saved = _read_json(cell_file)
    finished = {v.label: run.finished(v.label, v.overrides) for v in cell.variants}
    for variant in cell.variants:
        if finished[variant.label] is None:  # a killed row's partial folder, or a row whose settings changed
            remove_unfinished_row(run, variant.label)

    os.makedirs(os.path.join(run.dir, "rows"), exist_ok=True)
    experiment.open(run.dir)
    if saved is None:
        saved = {"model": cell.model, "dataset": cell.dataset, "fingerprint": fingerprint,
                 "config": cell_settings(grid, cell), "description": _describe(run, experiment),
                 "machine": machine()}
        write_json(cell_file, saved)
    logger = getLogger()
    rows: Dict[str, dict] = {}

    if grid.baseline:
        rows[BASELINE] = run.finished(BASELINE)
        if rows[BASELINE] is None:
            wait_while_paused(grid.output_dir, run.base["watch_poll_s"])
            rows[BASELINE] = recbole_baseline_row(run.base)
            _save_row(run.row_path(BASELINE), rows[BASELINE])
            progress.step(f"{cell.name} {BASELINE}")

    original_path = os.path.join(run.dir, ORIGINAL_FILE)
    rows[ORIGINAL] = run.finished(ORIGINAL)
    measured_against = [label for label, row in finished.items() if row is not None]
    if rows[ORIGINAL] is not None and os.path.isfile(original_path):
        experiment.load_original(original_path, rows[ORIGINAL])
        logger.info(set_color("original model", "green") + f" reloaded from {original_path}")
    else:
        wait_while_paused(grid.output_dir, run.base["watch_poll_s"])
        rows[ORIGINAL] = train_original(run, experiment, rows[ORIGINAL], measured_against,
                                        (_read_json(run.row_path(ORIGINAL)) or {}).get("machine"))
        progress.step(f"{cell.name} {ORIGINAL}")
    references_before = set(reference_files(run.dir))
    if run.base["audit"] and len(references_before) < run.base["audit_references"]:
        wait_while_paused(grid.output_dir, run.base["watch_poll_s"])  # the references are trainings too
    audit = experiment.prepare_audit(run.dir)  # references saved beside original.pth, reloaded on resume
    if audit is not None:  # the first time, or refreshed when newer code measures the original otherwise
        saved_audit = rows[ORIGINAL].get("audit") or {}
        saved_cost = saved_audit.get("cost") or {}
        digests = experiment.audit_cost.get("references_sha256") or {}
        refuse_replaced_references(run, saved_cost.get("references_sha256") or {}, digests, references_before,
                                   measured_against)
        measured = {k: v for k, v in saved_audit.items() if k != "cost"}
        # (a cell saved before the checksums were recorded gets them on its first resume)
        if measured != audit or digests != saved_cost.get("references_sha256"):
            retrained = sorted(set(reference_files(run.dir)) - references_before)
            differences = differing_keys(measured, audit, NOT_CALIBRATION)
            if measured and retrained and measured_against and differences:
                refuse_other_references(run, retrained, differences, measured_against)
            if measured and not retrained and measured_against and differences and \
                    not saved_cost.get("references_sha256"):
                # no checksum to tell a replaced file by: the audit tells it (r11round2 probe)
                raise UnlearnError(
                    f"{run.dir}: the saved audit reference models audit the original otherwise "
                    f"({', '.join(differences)} differ) than when rows {', '.join(measured_against)} were audited "
                    "with them, and the cell, saved by earlier code, recorded no checksums of them: a reference file "
                    "was replaced (or the audit is computed otherwise now); restore the files, or delete the cell "
                    "folder to run the cell again from the start")
            cost = dict(saved_audit.get("cost", experiment.audit_cost), **({"references_sha256": digests}
                                                                              if digests else {}))
            rows[ORIGINAL]["audit"] = dict(audit, cost=cost)
            _save_row(run.row_path(ORIGINAL), rows[ORIGINAL])

    fit_cache = SharedFits()  # rows differing only in how they forget or aggregate share a shard fit
    for variant in cell.variants:  # finished rows offer their fits
        if finished[variant.label] is not None:
            fit_cache.offer(experiment.fit_key(run.variant_configs[variant.label]),
                            run.model_dir(variant.label), finished[variant.label], variant.label)
    for variant in cell.variants:
        row = finished[variant.label]
        if row is None:
            wait_while_paused(grid.output_dir, run.base["watch_poll_s"])
            row, _ = experiment.run_method(run.variant_configs[variant.label], label=variant.label,
                                           fit_cache=fit_cache)
            _save_row(run.row_path(variant.label), row, variant.overrides, run.method_settings(variant.label))
            for line in forget_hit_rose_note([row]):  # as the command line warns (the grid said nothing)
                _warn(f"{cell.name}: {line}")
            progress.step(f"{cell.name} {variant.label}")
        rows[variant.label] = row

    ordered = [rows[k] for k in [BASELINE, ORIGINAL] + [v.label for v in cell.variants] if k in rows]
    add_speedups(ordered)
    return {"model": cell.model, "dataset": cell.dataset, "description": saved.get("description", ""),
            "machine": saved.get("machine") or {}, "epochs_cap": run.base["epochs"], "targets": grid.targets,
            "busy_cpu_share": run.base["busy_cpu_share"], "rows": ordered}


def select_cells(grid: Grid, names: Optional[List[str]]) -> List[Cell]:
    """The cells of ``grid`` named in ``names`` (``<model>-<dataset>``, in grid order), or all of
    them for ``None``; an unknown name is refused with the list of the grid's cells."""
    if names is None:
        return list(grid.cells)
    known = [cell.name for cell in grid.cells]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UnlearnError(f"--cells: no cell {', '.join(unknown) or '(empty list)'} in this grid; "
                           f"its cells are {', '.join(known)}")
    return [cell for cell in grid.cells if cell.name in names]


@releasing_run_logger
def run_grid(path: str, cells: Optional[List[str]] = None) -> Dict[str, str]:
    """Run (or resume) the grid in ``path``, or only its ``cells`` (names ``<model>-<dataset>``,
    to split a long grid over several runs or machines: each cell's rows go to the same
    folders either way); returns the paths of the leaderboard files, which hold the cells run
    by this call and, in grid order, the finished rows of the grid's other cells (earlier code
    wrote this call's cells only: a run of the second cell dropped the first from the files).

    Every cell's settings and every row's settings are validated, every dataset file is checked,
    every cell's forget set is built and a started cell's fingerprint checked
    (:func:`check_cells_data`) and every lending cell of ``reuse_cells_from`` found, before the
    first model is trained; what a method needs of its cell's data (``n_shards`` x ``n_slices``
    at most the dataset's users, say) is checked when that cell starts, after the cells before
    it trained."""
    grid = load_grid(path)
    check_models_read(grid)
    check_old_default(grid)
    check_output_dir(grid)
    runs: List[CellRun] = []
    for cell in select_cells(grid, cells):
        run = CellRun(grid, cell)
        check_dataset_files(run.base)
        if not os.path.isfile(os.path.join(run.dir, CELL_FILE)):
            lender_dir(grid, cell)  # a missing lender is refused before anything trains
        runs.append(run)
    check_method_keys_used(grid, runs)
    check_targets_measured(grid, runs)
    check_cells_data(runs)
    total = sum(r.total_steps() for r in runs)
    progress = Progress(total, total - sum(r.pending_steps() for r in runs))
    title = f"Leaderboard ({os.path.basename(path)})"
    selected = {run.cell.name for run in runs}
    mine: Dict[str, dict] = {}
    paths: Dict[str, str] = {}
    for run in runs:
        mine[run.cell.name] = run_cell(run, progress)
        reference_failed = apply_reference_gate(mine[run.cell.name]["rows"])
        if reference_failed:
            _warn(f"{run.cell.name}: audit: {reference_failed}; its other rows' verdicts are inconclusive")
        # read again each time: another --cells run may have finished rows since (read once at the
        # start, the last of two concurrent runs wrote a leaderboard without the other's cell)
        with output_dir_lock(grid, run.base["lock_timeout_s"]):
            done = dict(_other_finished_cells(grid, selected), **mine)
            paths = _write_or_keep_leaderboard([done[c.name] for c in grid.cells if c.name in done], grid, title)
        getLogger().info(set_color("leaderboard", "green") + f": {paths['md']}")
    return paths


def _write_or_keep_leaderboard(cells: List[dict], grid: Grid, title: str) -> Dict[str, str]:
    """Write the leaderboard files; in a read-only ``output_dir`` (a finished grid only
    reported: it ended in an ``OSError`` line) keep those there, with a warning, and return their
    paths."""
    try:
        return write_leaderboard(cells, grid.output_dir, title)
    except OSError as e:
        paths = {kind: os.path.join(grid.output_dir, f"leaderboard.{kind}") for kind in ("csv", "md", "html")}
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or not all(map(os.path.isfile, paths.values())):
            raise  # (with no files there to stand, paths of no file were printed, exit 0)
        _warn(f"leaderboard files in {grid.output_dir} cannot be written ({e.strerror}): those there "
                            "stand, from the last run that could write them")
        return paths


def _other_finished_cells(grid: Grid, selected: set) -> Dict[str, dict]:
    """The finished rows of the grid's cells not in ``selected``, by cell name; a cell the runner
    would refuse (made with other data settings) is left out, with a warning."""
    cells = {}
    for cell in grid.cells:
        if cell.name in selected:
            continue
        try:
            found = _finished_cell(grid, cell)
        except UnlearnError as e:
            _warn(f"leaderboard: cell {cell.name} left out: {e}")
            continue
        if found is not None:
            cells[cell.name] = found
    return cells


def finished_cells(path: str) -> List[dict]:
    """The rows finished so far for every cell of the grid in ``path`` that has started, in grid
    order (for a report while a long grid is still running or was stopped)."""
    grid = load_grid(path)
    return [found for found in (_finished_cell(grid, cell) for cell in grid.cells) if found is not None]


def _finished_cell(grid: Grid, cell: Cell) -> Optional[dict]:
    """The finished rows of ``cell`` as a report cell, ``None`` if it has not started; refused
    (``UnlearnError``) if it was made with other data settings."""
    run = CellRun(grid, cell)
    saved = _read_json(os.path.join(run.dir, CELL_FILE))
    if saved is None:
        return None
    run.check_made_alike(saved)  # the runner would refuse the cell: its rows are not this grid's
    # the RecBole row only while the grid asks for it (an old one showed beside cells without it)
    steps = [(BASELINE, None)] if grid.baseline else []
    steps += [(ORIGINAL, None)] + [(v.label, v.overrides) for v in cell.variants]
    rows = []
    for label, overrides in steps:
        try:
            row = run.finished(label, overrides)
        except UnlearnError as e:  # an unreadable row file: the runner would run that row again
            _warn(f"leaderboard: row {label} of cell {cell.name} left out: {e}")
            continue
        if row is not None:
            rows.append(row)
    add_speedups(rows)  # a row made with other method settings is left out: the runner runs it again
    return {"model": cell.model, "dataset": cell.dataset, "description": saved.get("description", ""),
            "machine": saved.get("machine") or {}, "epochs_cap": run.base["epochs"], "targets": grid.targets,
            "busy_cpu_share": run.base["busy_cpu_share"], "rows": rows}

