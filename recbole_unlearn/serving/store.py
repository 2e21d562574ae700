"""The versioned, locked, crash-safe folder a deployable model lives in.

Layout (sharded; a single model has ``model.pth`` instead of the shard and aggregator files)::

    <model_dir>/
      CURRENT                  name of the live version, e.g. "v000002" (replaced atomically)
      .lock, .lock.pid         the folder's lock (recbole_unlearn.serving.lock)
      audit.jsonl, audit.key   the audit log and its HMAC key (recbole_unlearn.serving.audit)
      requests.jsonl           the request ledger (recbole_unlearn.serving.ledger)
      v000002/
        manifest.json          format, versions, model class, settings, shard map, file hashes
        forgotten.json         forgotten interactions as [user_token, position] pairs
        shard_03_stage_00.pth  weights of shard 3 after slice stage 0 (weights only)
        aggregator.pth         aggregator weights (weights only)
        audit_entry.json       the audit line of the forget that made this version

Every read-modify-write of a version happens under the folder's lock. A commit writes a
complete new version folder (unchanged shard files are hard links), renames it into place,
switches ``CURRENT`` with an atomic rename and fsyncs the folder after each rename; a process
killed at any point leaves ``CURRENT`` naming a complete version, the old one or the new one.
Every file is read back without unpickling (JSON, ``torch.load(weights_only=True)``) and
checked against the SHA-256 recorded in the manifest.
"""
import json
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from logging import getLogger
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import recbole
import torch

from recbole_unlearn.config.keys import FORMERLY_RUNTIME_KEYS, check_value, phase_of
from recbole_unlearn.serving.ledger import LEDGER, RequestLedger, now
from recbole_unlearn.serving.lock import FolderLock
from recbole_unlearn.trainer.shard_trainer import check_ray_resources
from recbole_unlearn.trainer.trainer import load_checkpoint
from recbole_unlearn.unlearnable import MODEL_FORMATS, ForgetReport, UnlearnableModel
from recbole_unlearn.utils.atomic import TEMP_PREFIX, atomic_write, fsync_dir, save_weights, write_json
from recbole_unlearn.utils.errors import UnlearnError, error_line
from recbole_unlearn.utils.digests import file_sha256
from recbole_unlearn.utils.faults import fault_point
from recbole_unlearn.version import __version__

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
FORGOTTEN = "forgotten.json"
PENDING_AUDIT = "audit_entry.json"
#: the names of never-live versions runs removed (a forget stopped between its version's rename and
#: its switch): a JSON list, so that no later version takes one of them (r11round4 probe: an
#: in-memory record kept the name from the removing run's own next version only)
RETIRED = "retired_versions.json"
#: what every manifest holds (checked when read)
MANIFEST_FIELDS = {"format": str, "model": str, "dataset": str, "config": dict, "files": dict, "data_sha256": str}
EXAMPLE_RUNTIME_KEYS = ("num_workers", "max_batch", "max_wait_s", "lock_timeout_s", "eval_batch_size")
#: runtime keys a saved model never hands on to the runs answering its requests: each run's own
#: choice. Retention: grid-made folders of earlier code recorded the runner's True and kept the
#: version from before every forget. Curves: a folder trained with TensorBoard or W&B logging on
#: had every later request run write the curves of its forgets (computed from the data being
#: forgotten: SRUGA's ascent loss on the forgotten targets) unasked. Devices: a folder's gpu_id
#: set CUDA_VISIBLE_DEVICES in every later process as if its user had given it (one started
#: without a GPU saw GPU 0 again), and its use_gpu chose for a machine it may never have seen.
RUN_OWN_KEYS = ("keep_previous_version", "tensorboard", "log_wandb", "gpu_id", "use_gpu")
# Not runtime keys, yet a saved model may be given them: they say where a file is, and the file
# must be the one the model recorded (its SHA-256), so a moved folder and dataset can be served.
RELOCATABLE_KEYS = ("data_path",)


def _settings_to_keep(model: UnlearnableModel) -> dict:
    """The settings the next version records: the model's own, without the runtime overrides one
    run answering requests was given (``num_workers``, ``keep_previous_version``, ...), which
    earlier code wrote into the next version, so every later run used them unasked; a new
    ``data_path`` (``RELOCATABLE_KEYS``) is kept, where the dataset now lives."""
    settings = model.config.saved_config_dict()
    saved = getattr(model, "saved_config", None)
    if saved is None:
        return settings
    for key in getattr(model, "overrides", None) or {}:
        if key in RELOCATABLE_KEYS:
            continue
        if key in saved:
            settings[key] = saved[key]
        else:
            settings.pop(key, None)
    return settings


def _settings_to_record(model: UnlearnableModel) -> dict:
    """``manifest["settings"]``: every setting as RecBole resolved it for the model, where the
    runtime overrides one run answering requests was given take the model's own value (its saved
    ``config``'s, else the default, ours or RecBole's: :func:`default_setting`; dropped where
    there is none), and
    without ``keep_previous_version``, which no folder records. They were written as given
    (r12keys probe), the record of how the model was trained showing one run's ``ray_address`` or
    retention choice; the version before is not copied, as earlier code wrote such overrides
    into it (r12fixes probe)."""
    from recbole_unlearn.config.configurator import default_setting

    settings = model.config.settings()
    settings.pop("keep_previous_version", None)
    saved = getattr(model, "saved_config", None) or {}
    for key in getattr(model, "overrides", None) or {}:
        if key in RELOCATABLE_KEYS or key == "keep_previous_version":
            continue
        try:  # the model's own value: saved with it, else the default (the version before may hold an
            settings[key] = saved[key] if key in saved else default_setting(key)  # override of earlier code)
        except KeyError:  # a setting without a default, ours or RecBole's
            settings.pop(key, None)
    return settings


def _drifted_settings(manifest: dict, config) -> List[str]:
    """The recorded settings (``manifest["settings"]``, every setting as the model trained with
    it) that ``config``, rebuilt from the manifest's ``config`` and today's defaults, holds other
    values of; runtime keys, which a run may set, and keys this installation no longer has are not
    compared. A saved model recorded only the user's keys and its method's, so a new default in
    ``properties/`` (a learning rate, ``MAX_ITEM_LIST_LENGTH``) changed how it forgot."""
    recorded = manifest.get("settings")
    if not isinstance(recorded, dict):  # saved before settings were recorded
        return []
    now = config.settings()
    return sorted(key for key, value in recorded.items()
                  if phase_of(key) != "runtime" and key in now and now[key] != value)


def _restored_config(manifest: dict, config_dict: dict, drifted: List[str], version_dir: str):
    """The saved model's config with its ``drifted`` settings given back as recorded; one error
    line where this installation cannot take them back or resolves them to other values."""
    from recbole_unlearn.config import UnlearnConfig

    where = os.path.join(version_dir, MANIFEST)
    try:
        config = UnlearnConfig(manifest["model"], manifest["dataset"], config_dict=config_dict)
    except UnlearnError as e:
        raise UnlearnError(f"{where}: the model trained with {', '.join(drifted)} as recorded there, which differ from "
                           f"this installation's defaults and cannot be set again ({e}); serve it with the "
                           "recbole_unlearn version that saved it") from None
    still = _drifted_settings(manifest, config)
    if still:
        key = still[0]
        raise UnlearnError(f"{where}: the model trained with {key} {manifest['settings'][key]!r}, and this "
                           f"installation resolves it to {config.settings()[key]!r}; serve it with the "
                           "recbole_unlearn version that saved it")
    return config


def read_json(path: str) -> dict:
    """A model file's JSON, with one-line errors for a missing or damaged file."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UnlearnError(f"model file missing: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnlearnError(f"model file {path} is not valid JSON: {e}") from None


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def checked_path(version_dir: str, files: Dict[str, str], name: str) -> str:
    """Path of ``name`` in ``version_dir`` after checking it against the manifest's SHA-256."""
    path = os.path.join(version_dir, name)
    if name not in files:
        raise UnlearnError(f"manifest of {version_dir} does not list {name}")
    if not os.path.isfile(path):
        raise UnlearnError(f"model file missing: {path}")
    if file_sha256(path) != files[name]:
        raise UnlearnError(f"model file {path} does not match its checksum in manifest.json (modified or truncated)")
    return path


#: what marks a version's staging folder, ``.v000002.tmp-1a2b3c4d`` (renamed to ``v000002`` when complete)
STAGING_MARK = ".tmp-"
#: the name a version being removed is renamed to first (``.v000002.removing-<hex>``), so that a
#: stop half-way never leaves a half version under a version's name
REMOVING_MARK = ".removing-"


def is_version_name(name: str) -> bool:
    """Whether ``name`` is a version folder's name (``v000001``, ...)."""
    return name.startswith("v") and name[1:].isdigit()


def is_staging_name(name: str) -> bool:
    """Whether ``name`` is a version's staging folder (a commit not finished: nothing in it is live)."""
    return re.fullmatch(r"\.v\d+" + re.escape(STAGING_MARK) + r"[0-9a-f]+", name) is not None


def is_left_behind_name(name: str) -> bool:
    """Whether ``name`` is a folder a stopped run left: a version's staging folder, or a version
    renamed to be removed (``.v000002.removing-<hex>``); another hidden folder (``.vscode``) is
    not the package's."""
    return is_staging_name(name) or re.fullmatch(r"\.v\d+" + re.escape(REMOVING_MARK) + r"[0-9a-f]+", name) is not None


class ModelStore:
    """One model folder: its versions, manifest and lock.

    Args:
        model_dir: the folder.
        lock_timeout_s: how long to wait for another process holding the folder
            (``lock_timeout_s``); after that, ``model folder ... is busy (pid N)``.
    """

    def __init__(self, model_dir: str, lock_timeout_s: float):
        self.model_dir = model_dir
        self.lock_timeout_s = lock_timeout_s
        self._lock: Optional[FolderLock] = None
        #: versions the last commit removed besides the one it replaced (another run's kept version,
        #: a stopped forget's): for the run's report (``RequestBatcher``)
        self.removed_by_last_commit: List[str] = []
        #: those of them that were never live (after ``CURRENT``: a forget stopped before its switch)
        self.never_live_removed_by_last_commit: List[str] = []

    @property
    def lock(self) -> FolderLock:
        if self._lock is None:
            if not os.path.isdir(self.model_dir):
                raise UnlearnError(f"model folder not found: {self.model_dir}")
            self._lock = FolderLock(self.model_dir, self.lock_timeout_s)
        return self._lock

    # --- reading ---------------------------------------------------------------------------
    def current_version(self) -> Optional[str]:
        path = os.path.join(self.model_dir, CURRENT)
        if not os.path.isfile(path):
            return None
        with open(path, "r", encoding="utf-8", errors="replace") as f:  # a byte not UTF-8 names no version
            name = f.read().strip()
        if not is_version_name(name):
            raise UnlearnError(f"{path} does not name a model version: {name!r}")
        return name

    def require_model_folder(self) -> str:
        """The current version's name; one-line errors for a missing folder or one without
        ``CURRENT`` (checked before the lock is taken: its file would be left in a folder that
        is no model folder)."""
        if not os.path.isdir(self.model_dir):
            raise UnlearnError(f"model folder not found: {self.model_dir}")
        name = self.current_version()
        if name is None:
            raise UnlearnError(f"{self.model_dir} is not a recbole_unlearn model folder (no {CURRENT} file)")
        return name

    def read_manifest(self, version: Optional[str] = None) -> Tuple[str, dict]:
        """``(version folder, manifest)`` of the current version, or of the kept ``version``
        (``v000001``, ...); one-line errors for bad folders."""
        name = self.require_model_folder()
        if version is not None:
            if not (is_version_name(version)
                    and os.path.isfile(os.path.join(self.model_dir, version, MANIFEST))):
                raise UnlearnError(f"{self.model_dir} keeps no version {version!r} (only the current "
                                   "version is kept, and the one before it under keep_previous_version)")
            name = version
        version_dir = os.path.join(self.model_dir, name)
        path = os.path.join(version_dir, MANIFEST)
        manifest = read_json(path)
        if not isinstance(manifest, dict):
            raise UnlearnError(f"model file {path} is not a manifest (a JSON object); restore it from a backup")
        for key, kind in MANIFEST_FIELDS.items():
            if not isinstance(manifest.get(key), kind):
                raise UnlearnError(f"model file {path} has no valid '{key}' ({kind.__name__}): edited by hand? "
                                   "restore it from a backup")
        if manifest.get("format") not in MODEL_FORMATS:
            raise UnlearnError(f"{version_dir}/{MANIFEST}: unsupported format {manifest.get('format')!r}")
        return version_dir, manifest

    def is_stale(self, model: UnlearnableModel) -> bool:
        """Whether another process made a newer version since ``model`` was loaded or saved."""
        current = self.current_version()
        return model.version_dir is None or os.path.basename(model.version_dir) != current

    def load(self, overrides: Optional[dict] = None, version: Optional[str] = None,
             trains: bool = True) -> UnlearnableModel:
        """Load the current version, or the kept ``version`` (under the lock, so no commit or
        prune runs meanwhile). ``trains``: whether the caller may train (its Ray settings are
        checked, a cluster's reachability included); ``--verify`` trains nothing, and a cluster
        that was down refused it (r10round4 probe).

        ``overrides`` may only change runtime keys (``config/keys.py``: workers, logging, ...); anything
        that would change the numbers is refused, so a retrained shard stays comparable to the
        others. ``data_path`` may point at the dataset's new folder (``RELOCATABLE_KEYS``): the
        dataset file found there must have the SHA-256 recorded at training.
        """
        from recbole_unlearn.config import UnlearnConfig
        from recbole_unlearn.config.configurator import check_setting_keys
        from recbole_unlearn.data.utils import (check_dataset_files, create_unlearn_dataset, dataset_file,
                                                named_fields_problem)

        overrides = dict(overrides or {})
        check_setting_keys(overrides)
        self.require_model_folder()
        with self.lock.hold():
            version_dir, manifest = self.read_manifest(version)
            overrides = _settable(overrides, manifest)
            saved = _saved_settings_to_load(manifest, overrides)
            config_dict = dict(saved, **overrides)
            try:
                config = UnlearnConfig(manifest["model"], manifest["dataset"], config_dict=config_dict)
            except UnlearnError as refused:
                raise _refused_saved_settings(refused, manifest, version_dir) from None
            drifted = _drifted_settings(manifest, config)
            if drifted:  # the installed defaults changed since: the model keeps what it trained with
                config_dict.update({key: manifest["settings"][key] for key in drifted})
                config = _restored_config(manifest, config_dict, drifted, version_dir)
            # (a single model trains no shards: a Ray address where nothing listens was refused)
            if trains and getattr(MODEL_FORMATS.get(manifest["format"]), "TRAINS_SHARDS", True):
                check_ray_resources(config)
            data_file = dataset_file(config)
            if not os.path.isfile(data_file):
                raise UnlearnError(f"the model's dataset file is missing: {data_file} (moved? give the folder that "
                                   f"now holds {config['dataset']}/ with --data_path; the file must be the one "
                                   "the model was trained on: its SHA-256 is checked)")
            data_sha256 = file_sha256(data_file)
            if data_sha256 != manifest["data_sha256"]:
                raise UnlearnError(f"dataset file {data_file} changed since the model was trained (a saved model "
                                   "answers requests against the exact file it was trained on, forgotten lines "
                                   "included; README: what a model folder still depends on)")
            checked = _check_atomic_files(manifest, config, {os.path.basename(data_file): data_sha256}, version_dir)
            try:  # the files are the ones the model was trained on (all recorded): a refusal is the folder's
                check_dataset_files(config, named_fields=False)
            except UnlearnError as refused:  # (files not all recorded, saved before: the check's own line)
                raise (_refused_saved_settings(refused, manifest, version_dir, data=True)
                       if manifest.get("data_files") else refused) from None
            harmless = named_fields_problem(config)
            if harmless:  # a name RecBole ignored when the model was trained: it trained as without it
                getLogger().warning(f"{os.path.join(version_dir, MANIFEST)}: {harmless}; saved by earlier code, which "
                                    "took it, and RecBole ignores it, so the model is served as trained (a new run "
                                    "is refused it)")
            dataset = create_unlearn_dataset(config, known=checked, files_checked=True)
            _check_atomic_files(manifest, config, dataset.file_digests, version_dir)  # (one changed since the check)
            files = manifest["files"]
            with _of_the_shape_written(os.path.join(version_dir, MANIFEST)):
                if manifest.get("held_out"):  # the audit's twins: never trained on, here neither
                    if not config["audit"]:  # only an audited run draws twins: these rows would never be forgotten
                        raise UnlearnError(f"{os.path.join(version_dir, MANIFEST)}: held_out names "
                                           f"{len(manifest['held_out'])} interactions, yet the model was trained "
                                           "without audit, which alone holds twins out: the manifest was edited")
                    dataset.held_out = _rows_of(manifest["held_out"], dataset, "manifest.json held_out")
            with _of_the_shape_written(os.path.join(version_dir, FORGOTTEN)):
                forgotten = _rows_of(read_json(checked_path(version_dir, files, FORGOTTEN)), dataset, FORGOTTEN)

            def load_file(name: str) -> dict:
                return load_checkpoint(checked_path(version_dir, files, name))

            with _of_the_shape_written(os.path.join(version_dir, MANIFEST)):
                model = MODEL_FORMATS[manifest["format"]].from_saved(config, dataset, manifest, load_file, forgotten)
        model.version_dir = version_dir
        model.overrides = overrides
        model.saved_config = dict(manifest["config"])
        return model

    # --- writing ---------------------------------------------------------------------------
    def commit(self, model: UnlearnableModel, reused: Optional[Dict[str, str]] = None,
               audit_entry: Optional[dict] = None, queued: Sequence[dict] = ()) -> str:
        """Write ``model`` as the next version and make it current (under the lock).

        Args:
            reused: ``{file name: path}`` of weight files that did not change (hard-linked).
            audit_entry: the audit line of the forget that produced this version; stored in the
                version (``audit_entry.json``) so that a process that dies between the switch
                and the audit append leaves it for the next one to append.
            queued: ``queued`` ledger lines (:func:`~recbole_unlearn.serving.ledger.queued_line`)
                written before the version goes live: a training run's first version, trained on
                the requests of the file it forgets next, never goes live without them (a stop
                between the two left a folder with no trace of them).

        Returns:
            The new version's folder (also set as ``model.version_dir``).
        """
        os.makedirs(self.model_dir, exist_ok=True)
        with self.lock.hold():
            self.lock.check_held()
            previous = self.current_version()
            if model.version_dir is None and previous is not None:
                # a freshly trained model is a folder's first version only: another run saved one
                # here while this one trained (the folder was new when it started)
                raise UnlearnError(f"model_dir {self.model_dir} already holds a model ({previous}, saved by another "
                                   "run while this one trained); nothing was written: choose a new folder")
            if model.version_dir is None:
                left = sorted(e for e in os.listdir(self.model_dir)
                              if e == LEDGER or is_version_name(e))
                if left:  # another run's first commit, stopped before CURRENT: its requests are not ours
                    raise UnlearnError(f"model_dir {self.model_dir} holds {', '.join(left)} without a CURRENT file, "
                                       "left by another run stopped before its first version went live while this "
                                       "one trained; nothing was written: choose a new folder")
            if model.version_dir is not None and os.path.basename(model.version_dir) != previous:
                # compare-and-swap: the model's version must still be the live one, or this commit
                # would undo the versions made since (written behind the lock's back)
                raise UnlearnError(f"{self.model_dir}: {previous} is live, not {os.path.basename(model.version_dir)}, "
                                   "the version this forget started from (the folder changed behind its lock); "
                                   "nothing was committed; the requests stay queued for the next run")
            # the next free number: a folder beyond CURRENT (a forget killed after its rename,
            # before its switch; or CURRENT edited by hand) is never deleted to reuse its name
            on_disk = [int(e[1:]) for e in os.listdir(self.model_dir) if is_version_name(e)]
            retired = [int(v[1:]) for v in self.retired_versions()]
            number = max(on_disk + retired + [int(previous[1:]) if previous else 0]) + 1
            name = f"v{number:06d}"
            final = os.path.join(self.model_dir, name)
            staging = os.path.join(self.model_dir, f".{name}{STAGING_MARK}{uuid.uuid4().hex[:8]}")
            os.makedirs(staging)
            try:
                files: Dict[str, str] = {}
                for fname, state in model.weight_states().items():
                    target = os.path.join(staging, fname)
                    if reused and fname in reused:
                        _link_or_copy(reused[fname], target)
                    else:
                        save_weights(target, state)
                    files[fname] = file_sha256(target)
                write_json(os.path.join(staging, FORGOTTEN), _pairs_of(model.forgotten, model.dataset))
                files[FORGOTTEN] = file_sha256(os.path.join(staging, FORGOTTEN))
                if audit_entry is not None:
                    if model.config["keep_previous_version"] and previous is not None:
                        audit_entry["kept_version"] = previous  # so the run that removes it says why it was there
                    write_json(os.path.join(staging, PENDING_AUDIT), dict(audit_entry, version=name))
                    files[PENDING_AUDIT] = file_sha256(os.path.join(staging, PENDING_AUDIT))
                write_json(os.path.join(staging, MANIFEST), self._manifest(model, files))
                fault_point("version_staged")
                os.rename(staging, final)
                fsync_dir(self.model_dir)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            try:
                fault_point("version_renamed")
                self.lock.check_held()
                if queued:
                    RequestLedger(self.model_dir).record(queued)
                atomic_write(os.path.join(self.model_dir, CURRENT), lambda f: f.write(name.encode()))
            except BaseException:
                if previous is None:  # a first commit stopped before going live: nothing of it stays
                    self._take_back_first_commit(final)  # (it blocked the same command: "without a CURRENT")
                raise
            fault_point("version_switched")
            # other versions than the one this forget replaces (kept by another run's
            # keep_previous_version, or left by a stopped forget): named for the run's report
            # (they went with a log line alone; r10round4 probe)
            others = [v for v in self._other_versions(name) if v != previous] + \
                [e for e in self.left_behind_folders() if REMOVING_MARK in e]
            self._prune(keep={name, previous} if model.config["keep_previous_version"] else {name})
            self.removed_by_last_commit = [v for v in others if not os.path.exists(os.path.join(self.model_dir, v))]
            self.never_live_removed_by_last_commit = [v for v in self.removed_by_last_commit if is_version_name(v)
                                                      and previous is not None and v > previous]
        model.version_dir = final
        return final

    def _take_back_first_commit(self, final: str) -> None:
        """Remove what a folder's first commit wrote before ``CURRENT`` (its version folder
        ``final``, its ledger of queued lines: the commit found neither there), when it failed or
        was stopped there. Nothing went live; the folder is new again. A kill (no ``finally``)
        leaves them, and a first commit then refuses the folder."""
        if os.path.isfile(os.path.join(self.model_dir, CURRENT)):  # the write landed after all
            return
        shutil.rmtree(final, ignore_errors=True)
        try:
            os.remove(os.path.join(self.model_dir, LEDGER))
        except FileNotFoundError:
            pass
        fsync_dir(self.model_dir)

    def reused_files(self, model: UnlearnableModel, report: ForgetReport) -> Dict[str, str]:
        """``{file name: path in the current version}`` of the files a forget left unchanged."""
        version_dir = os.path.join(self.model_dir, self.current_version())
        return {name: os.path.join(version_dir, name) for name in model.unchanged_files(report)}

    def older_versions(self) -> List[str]:
        """Version folders on disk from before the current one, oldest first (all but the
        current one where no version is live)."""
        current = self.current_version()
        return [v for v in self._other_versions(current) if current is None or v < current]

    def not_removed(self, keep_previous: bool) -> List[str]:
        """Folders on disk holding a model from before later forgets, trained on data they forgot,
        that runs answering requests tried to remove and could not (or were stopped removing):
        versions before the current one (but the newest, where ``keep_previous`` keeps it) and
        versions renamed to be removed (``.v000002.removing-<hex>``)."""
        older = self.older_versions()
        kept = older[-1:] if keep_previous else []
        removing = [e for e in self.left_behind_folders() if REMOVING_MARK in e]
        return [v for v in older if v not in kept] + removing

    def never_live_versions(self) -> List[str]:
        """Version folders on disk after the current one, oldest first: each staged by a forget
        stopped between its rename and its switch (trained without what it forgot; never live)."""
        current = self.current_version()
        return [v for v in self._other_versions(current) if current is not None and v > current]

    def _other_versions(self, current: Optional[str]) -> List[str]:
        return sorted(e for e in os.listdir(self.model_dir)
                      if is_version_name(e) and e != current
                      and os.path.isdir(os.path.join(self.model_dir, e)))

    def remove_left_behind(self, keep_previous: bool) -> List[str]:
        """Remove the versions and staging folders a killed forget left behind (one killed between
        its switch and its removal of the version before: a whole model trained on data it
        forgot), keeping the current version and, with ``keep_previous``, the newest before it;
        returns the versions removed. Needs the lock."""
        current = self.current_version()
        before, after = self.older_versions(), self.never_live_versions()
        keep = {current} | ({before[-1]} if keep_previous and before else set())
        if after:  # their names are retired before their folders go, so that no later version takes one
            retired = sorted(set(self.retired_versions()) | set(after))
            write_json(os.path.join(self.model_dir, RETIRED), retired)
        left = self._prune(keep)
        return [v for v in before + after if v not in keep and v not in left]

    def retired_versions(self) -> List[str]:
        """The never-live versions' names runs removed (``RETIRED``); ``[]`` where none was, or the
        file cannot be read as such a list (a number is then taken again, as before the file)."""
        try:
            with open(os.path.join(self.model_dir, RETIRED), encoding="utf-8") as f:
                names = json.load(f)
        except (OSError, ValueError):
            return []
        return [n for n in names if isinstance(n, str) and is_version_name(n)] if isinstance(names, list) else []

    def _prune(self, keep: set) -> List[str]:
        """Remove versions not in ``keep`` (the current one, and the previous one where
        ``keep_previous_version`` asks for it) and stale staging folders; returns the versions
        that could not be removed, each named in a warning (they hold a model trained on data
        forgotten since: ``--verify`` lists them as ``older_versions``)."""
        left = []
        for entry in os.listdir(self.model_dir):
            path = os.path.join(self.model_dir, entry)
            if entry.startswith(TEMP_PREFIX) and os.path.isfile(path) and not os.path.islink(path):
                # a write killed before its rename (audit.key's: key bytes outside audit.key); every
                # write to the folder holds the lock, which this run holds
                os.unlink(path)
                continue
            stale_version = is_version_name(entry) and entry not in keep
            if os.path.isdir(path) and (stale_version or is_left_behind_name(entry)):
                try:
                    if stale_version:  # out of the versions' names first: a stop leaves no half version
                        doomed = os.path.join(self.model_dir, f".{entry}{REMOVING_MARK}{uuid.uuid4().hex[:8]}")
                        os.rename(path, doomed)
                        fsync_dir(self.model_dir)
                        path = doomed
                    shutil.rmtree(path)
                except OSError as e:
                    if stale_version:
                        left.append(entry)
                    if stale_version or REMOVING_MARK in entry:  # named as it is now (it was named as before)
                        _warn(f"could not remove {os.path.basename(path)} from {self.model_dir} ({e.strerror or e}): it "
                              "holds a model from before later forgets, trained on data they forgot; remove it by hand")
        return left

    def left_behind_folders(self) -> List[str]:
        """Hidden folders a stopped run left: a version's staging folder (a commit that never
        went live) or one being removed (a version from before, trained on data forgotten
        since); the next run answering requests removes them."""
        return sorted(e for e in os.listdir(self.model_dir)
                      if is_left_behind_name(e) and os.path.isdir(os.path.join(self.model_dir, e)))

    def _manifest(self, model: UnlearnableModel, files: Dict[str, str]) -> dict:
        from recbole_unlearn.data.utils import dataset_file

        config = model.config
        # the files the model's dataset was read from, not those on disk now (changed under a
        # watcher, they would be recorded as what the model trained on)
        data_files = model.dataset.file_digests
        return {
            "format": model.FORMAT,
            "created": now(),
            "versions": {"recbole_unlearn": __version__, "recbole": recbole.__version__,
                         "torch": torch.__version__},
            "model": config["model"],
            "dataset": config["dataset"],
            "data_path": os.path.abspath(config["data_path"]),
            "data_sha256": data_files[os.path.basename(dataset_file(config))],
            "data_files": data_files,
            "config": _settings_to_keep(model),
            "settings": _settings_to_record(model),
            **model.manifest_extras(),
            "n_forgotten": int(len(model.forgotten)),
            "held_out": _pairs_of(model.dataset.held_out, model.dataset),
            "files": files,
        }


def _check_atomic_files(manifest: dict, config, known: Dict[str, str], version_dir: str) -> Dict[str, str]:
    """Refuse when a dataset file RecBole reads was added, removed or changed since the model was
    trained: a ``.item`` file added beside the unchanged ``.inter`` made RecBole drop rows, and the
    recorded forgotten rows then named other interactions. Folders saved before the files were
    recorded (no ``data_files``) are checked on their ``.inter`` file only. ``known``: digests
    the caller has computed (the ``.inter`` file's), by file name. Returns the digests checked
    (``known`` and those computed here), for the caller not to compute them again."""
    recorded = manifest.get("data_files")
    if recorded is None:
        return known
    if not isinstance(recorded, dict):
        raise UnlearnError(f"{os.path.join(version_dir, MANIFEST)} has no valid 'data_files' (dict): edited by hand? "
                           "restore it from a backup")
    from recbole_unlearn.data.utils import atomic_digests

    now = atomic_digests(config, known)
    changed = sorted(name for name in set(recorded) | set(now) if recorded.get(name) != now.get(name))
    if changed:
        raise UnlearnError(f"dataset file{'s' if len(changed) > 1 else ''} {', '.join(changed)} in {config['data_path']} "
                           f"{'were' if len(changed) > 1 else 'was'} added, removed or changed since the model was "
                           "trained (RecBole reads them with the .inter file: its rows, and so what the model's "
                           "forgotten rows name, would change); restore the files the model was trained with")
    return now


def _warn(message: str) -> None:
    getLogger().warning(message)


def _pairs_of(rows: np.ndarray, dataset) -> List[list]:
    """Log rows as ``[user token, position]`` pairs (they survive id remapping)."""
    return [[str(u), int(p)] for u, p in zip(dataset.id2token(dataset.uid_field, dataset.log_user[rows]),
                                             dataset.log_position[rows])]


def _rows_of(pairs: List[list], dataset, where: str) -> np.ndarray:
    """The log rows of ``[user token, position]`` pairs; ``where`` names the file for errors (a
    position past the user's interactions named another user's row)."""
    token_ids = dataset.field2token_id[dataset.uid_field]
    rows = []
    for user, position in pairs:
        if user not in token_ids:
            raise UnlearnError(f"{where} names user {user!r}, missing from the dataset")
        uid = token_ids[user]
        if isinstance(position, bool) or not isinstance(position, int) or \
                not 0 <= position < len(dataset.user_rows(uid)):
            raise UnlearnError(f"{where} names position {position!r} of user {user!r}, who has "
                               f"{len(dataset.user_rows(uid))} interactions")
        rows.append(dataset.user_start[uid] + position)
    return np.array(rows, dtype=np.int64)


@contextmanager
def _of_the_shape_written(path: str):
    """Valid JSON of another shape than this package writes (a field missing, a list where a map
    belongs, a pair of one) in the saved file at ``path``: one error naming it, where reading it
    ended in a ``KeyError`` / ``TypeError`` / ``ValueError`` traceback."""
    try:
        yield
    except UnlearnError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise UnlearnError(f"{path} is not what this package writes ({error_line(e)}): edited by hand? restore it "
                           "from a backup") from None


def _refused_saved_settings(refused: UnlearnError, manifest: dict, version_dir: str,
                            data: bool = False) -> UnlearnError:
    """The error for settings checks that refused a run on a saved folder (``refused``): where
    the folder's own saved settings, as a run without overrides loads them, fail checks earlier
    code did not make (a malformed filter interval), their error, said so, for the check's advice,
    to give another value, cannot be followed for a saved model, whose settings no run may change
    (a probe followed it into "cannot change ... of a saved model"); else ``refused``, an override
    of this run being at fault (a saved runtime value that today's bounds refuse is not: a run
    drops it unless it overrides the key). ``data``: ``refused`` came from the dataset files'
    checks, on the files the model was trained on (every one's SHA-256 recorded and checked),
    which no override reaches: the folder's files or saved settings (a number for a ``.user``
    field's ``val_interval``, say), neither of which a saved model may change."""
    from recbole_unlearn.config import UnlearnConfig

    saved_refused = refused if data else None
    if not data:
        try:
            UnlearnConfig(manifest["model"], manifest["dataset"], config_dict=_saved_settings_to_load(manifest, {}))
        except UnlearnError as e:
            saved_refused = e
    if saved_refused is None:
        return refused
    if data:
        return UnlearnError(f"{os.path.join(version_dir, MANIFEST)}: the dataset files this model was trained on, as its "
                            f"saved settings load them, are refused by this code: {saved_refused}; neither may change "
                            "for a saved model, so train a new model folder (this one answers no request and does not "
                            "verify)")
    return UnlearnError(f"{os.path.join(version_dir, MANIFEST)}: the settings this model was saved with are refused by "
                        f"this code: {saved_refused}; a saved model's settings cannot be changed, so train a new model "
                        "folder with a valid value (this one answers no request and does not verify)")


def _saved_settings_to_load(manifest: dict, overrides: dict) -> dict:
    """The folder's saved ``config`` as a run answering requests takes it, before its
    ``overrides``: without each run's own keys (``RUN_OWN_KEYS``), the keys a run sets itself
    (``SET_BY_THE_RUN``: earlier code accepted and saved them, and such a folder then refused
    every request and ``--verify``), runtime settings today's
    bounds refuse (saved before them, such as ``ray_connect_timeout_s`` 100000, which refused
    every request: the run's own default instead), another installation's bundled ml-100k path
    (:func:`_without_other_installations_bundle`) and keys that were runtime keys before they were
    recorded (``FORMERLY_RUNTIME_KEYS``, where the version's settings lack them)."""
    from recbole_unlearn.config.configurator import SET_BY_THE_RUN

    config_dict = {k: v for k, v in manifest["config"].items() if k not in RUN_OWN_KEYS and k not in SET_BY_THE_RUN}
    for key in [k for k in config_dict if phase_of(k) == "runtime" and k not in overrides]:
        try:
            check_value(key, config_dict[key])
        except UnlearnError:
            config_dict.pop(key)
    config_dict = _without_other_installations_bundle(manifest, config_dict, overrides)
    for key in FORMERLY_RUNTIME_KEYS:  # given as a display choice, before it was recorded
        if key not in (manifest.get("settings") or {}):
            config_dict.pop(key, None)
    return config_dict


def _without_other_installations_bundle(manifest: dict, config_dict: dict, overrides: dict) -> dict:
    """``config_dict`` without its ``data_path`` where that is another RecBole installation's
    bundled ml-100k, gone (``.../recbole/dataset_example``, recorded by a folder trained without a
    ``data_path``): this installation's copy is read instead, as RecBole reads it, and the file
    must still have the recorded SHA-256 (it failed as "missing" after a new virtual environment
    once a given ``data_path`` was honoured for ml-100k). A ``data_path`` the run gives wins."""
    recorded = config_dict.get("data_path")
    bundled = os.path.join("recbole", "dataset_example")
    if (manifest.get("dataset") != "ml-100k" or "data_path" in overrides or not isinstance(recorded, str)
            or not os.path.normpath(recorded).endswith(os.sep + bundled) or os.path.exists(recorded)):
        return config_dict  # (a folder of that name still there, a user's own, is read as recorded)
    return {key: value for key, value in config_dict.items() if key != "data_path"}


def _settable(overrides: dict, manifest: dict) -> dict:
    """``overrides`` without the settings given as the saved model has them (a pipeline may
    repeat its training command's settings); refuses any other non-runtime key, as changing it
    would make a retrained shard incomparable to the others."""
    from recbole_unlearn.config.configurator import literal_values, method_names

    given = literal_values(dict(overrides))  # as a run reads them: "2" and numpy.int64(2) are 2
    if "unlearn_method" in given:  # "SISA", ["sisa"] and "[sisa]" name the method the folder records as "sisa"
        given["unlearn_method"] = ",".join(method_names(given["unlearn_method"]))
    forms = (manifest["config"], manifest.get("settings") or {})  # as the user gave it; as RecBole resolved it
    same = {k for k, v in given.items() if any(k in form and _same_value(v, form[k]) for form in forms)}
    fixed = sorted(k for k in overrides
                   if k not in same and phase_of(k) != "runtime" and k not in RELOCATABLE_KEYS)
    if fixed:
        raise UnlearnError(
            f"cannot change {', '.join(repr(k) for k in fixed)} of a saved model; only runtime keys "
            f"may be set (docs/config-keys.md), e.g. {', '.join(EXAMPLE_RUNTIME_KEYS)}"
        )
    return {k: v for k, v in overrides.items() if k not in same or phase_of(k) == "runtime"}


def _same_value(given, recorded) -> bool:
    """Whether ``given`` (parsed from the command line or a ``config_dict``) is ``recorded``
    (read back from JSON: tuples are lists there); ``True`` is not ``1``."""
    if isinstance(given, tuple):
        given = list(given)
    if type(given) is type(recorded):
        return given == recorded
    numbers = (int, float)
    return (isinstance(given, numbers) and isinstance(recorded, numbers) and not isinstance(given, bool)
            and not isinstance(recorded, bool) and given == recorded)


def open_store(model_dir: str, config_or_overrides=None) -> ModelStore:
    """The store of ``model_dir`` with the lock timeout of ``config_or_overrides`` (a config or
    a dict of overrides; the ``properties/overall.yaml`` default where it has none)."""
    from recbole_unlearn.config import default_setting
    from recbole_unlearn.config.configurator import literal_values

    timeout = None
    if config_or_overrides is not None:
        try:
            timeout = config_or_overrides["lock_timeout_s"]
        except KeyError:
            timeout = None
    if timeout is None:
        timeout = default_setting("lock_timeout_s")
    # checked here, before the lock is waited for: "abc" was a traceback, and -5 filelock's "wait for ever"
    timeout = literal_values({"lock_timeout_s": timeout})["lock_timeout_s"]
    check_value("lock_timeout_s", timeout)
    return ModelStore(model_dir, timeout)
