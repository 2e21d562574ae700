"""The on-disk form of a :class:`ShardedUnlearnableModel` or :class:`SingleUnlearnableModel`.

Layout (sharded; a single model has ``model.pth`` instead of the shard and aggregator files)::

    <model_dir>/
      CURRENT                  name of the live version, e.g. "v000002" (replaced atomically)
      audit.jsonl              one JSON line per forget request, append-only, fsync'd
      v000002/
        manifest.json          format, versions, model class, settings, shard map, file hashes
        forgotten.json         forgotten interactions as [user_token, position] pairs
        shard_03_stage_00.pth  weights of shard 3 after slice stage 0 (weights only)
        aggregator.pth         aggregator weights (weights only)
        audit_entry.json       the audit line of the forget that made this version

A forget writes a complete new version folder (unchanged shard files are hard links), then
switches ``CURRENT`` with an atomic rename, then appends to the audit log. A process killed at
any point leaves ``CURRENT`` naming a complete version: the old one or the new one; if it died
after the switch but before the append, the next forget (or request stream) appends the line
from the version's ``audit_entry.json`` (:func:`reconcile_audit`). Every file
is read back without unpickling (JSON, ``torch.load(weights_only=True)``) and checked against the
SHA-256 recorded in the manifest.
"""
import hashlib
import hmac
import json
import os
import shutil
import time
import uuid
from typing import Dict, List, Optional, Tuple

import numpy as np
import recbole
import torch

import recbole_unlearn
from recbole_unlearn.trainer.trainer import load_checkpoint
from recbole_unlearn.unlearn.sharded_model import ForgetReport, ShardedUnlearnableModel
from recbole_unlearn.unlearn.single_model import SingleUnlearnableModel
from recbole_unlearn.utils.atomic import atomic_write, write_json
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.faults import fault_point

MODEL_CLASSES = {
    ShardedUnlearnableModel.FORMAT: ShardedUnlearnableModel,
    SingleUnlearnableModel.FORMAT: SingleUnlearnableModel,
}
CURRENT = "CURRENT"
AUDIT = "audit.jsonl"
SECRET = "audit.key"
PENDING_AUDIT = "audit_entry.json"
# Keys a later process may change when it loads a saved model (they do not change the numbers).
RUNTIME_KEYS = {
    "num_workers", "ray_address", "ray_cpus_per_shard", "ray_gpus_per_shard", "shard_num_threads",
    "state", "show_progress", "use_gpu", "gpu_id", "forget", "results_dir", "tensorboard",
    "model_dir", "eval_batch_size", "worker", "max_request_lines", "max_batch", "max_wait_s",
    "watch_poll_s", "watch_idle_s",
}


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: str) -> dict:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UnlearnError(f"model file missing: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnlearnError(f"model file {path} is not valid JSON: {e}") from None


def current_version(model_dir: str) -> Optional[str]:
    path = os.path.join(model_dir, CURRENT)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        name = f.read().strip()
    if not name.startswith("v") or not name[1:].isdigit():
        raise UnlearnError(f"{path} does not name a model version: {name!r}")
    return name


def save_model(model, model_dir: str, reused: Optional[Dict[str, str]] = None,
               audit_entry: Optional[dict] = None) -> str:
    """Write ``model`` (a :class:`ShardedUnlearnableModel` or :class:`SingleUnlearnableModel`)
    as a new version of ``model_dir`` and make it current.

    Args:
        reused: ``{file name: path}`` of weight files that did not change (hard-linked).
        audit_entry: the audit line of the forget that produced this version; stored in the
            version (``audit_entry.json``) so that :func:`reconcile_audit` can append it if the
            process dies between the switch and the audit append.

    Returns:
        The new version's folder.
    """
    os.makedirs(model_dir, exist_ok=True)
    previous = current_version(model_dir)
    number = int(previous[1:]) + 1 if previous else 1
    name = f"v{number:06d}"
    final = os.path.join(model_dir, name)
    staging = os.path.join(model_dir, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    if os.path.isdir(final):  # left by a process killed after the rename, before the switch
        shutil.rmtree(final)
    os.makedirs(staging)
    try:
        files: Dict[str, str] = {}
        for fname, state in model.weight_states().items():
            target = os.path.join(staging, fname)
            if reused and fname in reused:
                _link_or_copy(reused[fname], target)
            else:
                atomic_write(target, lambda f, s=state: torch.save(s, f))
            files[fname] = file_sha256(target)
        dataset = model.dataset
        forgotten = [[str(u), int(p)] for u, p in zip(
            dataset.id2token(dataset.uid_field, dataset.log_user[model.forgotten]),
            dataset.log_position[model.forgotten])]
        write_json(os.path.join(staging, "forgotten.json"), forgotten)
        files["forgotten.json"] = file_sha256(os.path.join(staging, "forgotten.json"))
        if audit_entry is not None:
            write_json(os.path.join(staging, PENDING_AUDIT), dict(audit_entry, version=name))
            files[PENDING_AUDIT] = file_sha256(os.path.join(staging, PENDING_AUDIT))
        write_json(os.path.join(staging, "manifest.json"), _manifest(model, files))
        fault_point("version_staged")
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fault_point("version_renamed")
    atomic_write(os.path.join(model_dir, CURRENT), lambda f: f.write(name.encode()))
    _prune(model_dir, keep={name, previous})
    return final


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _prune(model_dir: str, keep: set) -> None:
    """Remove versions other than the current and the previous one, and stale staging folders."""
    for entry in os.listdir(model_dir):
        path = os.path.join(model_dir, entry)
        stale_version = entry.startswith("v") and entry[1:].isdigit() and entry not in keep
        if os.path.isdir(path) and (stale_version or entry.startswith(".v")):
            shutil.rmtree(path, ignore_errors=True)


def _manifest(model, files: Dict[str, str]) -> dict:
    config = model.config
    data_file = os.path.join(config["data_path"], f"{config['dataset']}.inter")
    return {
        "format": model.FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": {"recbole_unlearn": recbole_unlearn.__version__, "recbole": recbole.__version__,
                     "torch": torch.__version__},
        "model": config["model"],
        "dataset": config["dataset"],
        "data_path": os.path.abspath(config["data_path"]),
        "data_sha256": file_sha256(data_file),
        "config": config.saved_config_dict(),
        "settings": config.settings(),
        **model.manifest_extras(),
        "n_forgotten": int(len(model.forgotten)),
        "files": files,
    }


def _checked_path(version_dir: str, files: Dict[str, str], name: str) -> str:
    path = os.path.join(version_dir, name)
    if name not in files:
        raise UnlearnError(f"manifest of {version_dir} does not list {name}")
    if not os.path.isfile(path):
        raise UnlearnError(f"model file missing: {path}")
    if file_sha256(path) != files[name]:
        raise UnlearnError(f"model file {path} does not match its checksum in manifest.json (modified or truncated)")
    return path


def read_manifest(model_dir: str) -> Tuple[str, dict]:
    """``(version folder, manifest)`` of the current version; one-line errors for bad folders."""
    if not os.path.isdir(model_dir):
        raise UnlearnError(f"model folder not found: {model_dir}")
    name = current_version(model_dir)
    if name is None:
        raise UnlearnError(f"{model_dir} is not a recbole_unlearn model folder (no {CURRENT} file)")
    version_dir = os.path.join(model_dir, name)
    manifest = _read_json(os.path.join(version_dir, "manifest.json"))
    if manifest.get("format") not in MODEL_CLASSES:
        raise UnlearnError(f"{version_dir}/manifest.json: unsupported format {manifest.get('format')!r}")
    return version_dir, manifest


def load_model(model_dir: str, overrides: Optional[dict] = None):
    """Load the current version of ``model_dir`` in a fresh process.

    ``overrides`` may only change :data:`RUNTIME_KEYS` (workers, logging, ...); anything that
    would change the numbers is refused, so a retrained shard stays comparable to the others.
    """
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data.utils import create_unlearn_dataset

    version_dir, manifest = read_manifest(model_dir)
    overrides = dict(overrides or {})
    fixed = sorted(k for k in overrides if k not in RUNTIME_KEYS)
    if fixed:
        raise UnlearnError(
            f"cannot change {', '.join(repr(k) for k in fixed)} of a saved model; "
            f"only {', '.join(sorted(RUNTIME_KEYS))} may be set"
        )
    config_dict = dict(manifest["config"])
    config_dict.update(overrides)
    config = UnlearnConfig(manifest["model"], manifest["dataset"], config_dict=config_dict)
    data_file = os.path.join(config["data_path"], f"{config['dataset']}.inter")
    if not os.path.isfile(data_file):
        raise UnlearnError(f"the model's dataset file is missing: {data_file}")
    if file_sha256(data_file) != manifest["data_sha256"]:
        raise UnlearnError(f"dataset file {data_file} changed since the model was trained")
    dataset = create_unlearn_dataset(config)
    files = manifest["files"]
    forgotten = _forgotten_rows(_read_json(_checked_path(version_dir, files, "forgotten.json")), dataset)
    model_class = MODEL_CLASSES[manifest["format"]]

    def load(name: str) -> dict:
        return load_checkpoint(_checked_path(version_dir, files, name))

    model = model_class.from_saved(config, dataset, manifest, load, forgotten)
    model.version_dir = version_dir
    return model


def _forgotten_rows(pairs: List[list], dataset) -> np.ndarray:
    token_ids = dataset.field2token_id[dataset.uid_field]
    rows = []
    for user, position in pairs:
        if user not in token_ids:
            raise UnlearnError(f"forgotten.json names user {user!r}, missing from the dataset")
        start = dataset.user_start[token_ids[user]]
        rows.append(start + int(position))
    return np.array(rows, dtype=np.int64)


def forget_and_save(model, model_dir: str, forget_set, method: str,
                    extra: Optional[dict] = None) -> Tuple[ForgetReport, dict]:
    """Forget ``forget_set`` (with its extra deletions), write the new version (unchanged shard
    files hard-linked), switch to it, then append the audit entry. Returns the report and the
    audit entry."""
    reconcile_audit(model_dir)
    version_dir, _ = read_manifest(model_dir)
    key = audit_secret(model_dir)
    rows = forget_set.rows
    source = forget_set.source
    new_rows = np.setdiff1d(rows, model.forgotten)
    report = model.forget(rows)
    entry = {
        "request_id": uuid.uuid4().hex,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "method": method,
        "source": source,
        "requested_interactions": int(len(forget_set.requested)),
        "extra_deleted": int(len(forget_set.extra)),
        **report.to_json(),
        **(extra or {}),
        "forgotten_hmac": interaction_hmacs(key, model.dataset, new_rows),
    }
    if report.interactions:
        reused = {name: os.path.join(version_dir, name) for name in model.unchanged_files(report)}
        entry["version"] = os.path.basename(save_model(model, model_dir, reused, audit_entry=entry))
        fault_point("current_switched")
    else:
        entry["version"] = os.path.basename(version_dir)
    append_audit(model_dir, entry)
    fault_point("audit_appended")
    return report, entry


def reconcile_audit(model_dir: str) -> Optional[dict]:
    """If the current version was written by a forget whose audit line never made it to the
    log (the process died between the switch and the append), append that line now, marked
    ``recovered``. Returns the appended entry, or ``None`` when the log was complete."""
    version_dir, manifest = read_manifest(model_dir)
    if PENDING_AUDIT not in manifest["files"]:
        return None
    pending = _read_json(_checked_path(version_dir, manifest["files"], PENDING_AUDIT))
    if any(e.get("request_id") == pending["request_id"] for e in read_audit(model_dir)):
        return None
    pending["recovered"] = True
    append_audit(model_dir, pending)
    return pending


def audit_secret(model_dir: str, create: bool = True) -> Optional[bytes]:
    """The model's audit key (32 random bytes in ``audit.key``, created once, mode 0600). It is
    kept outside the log so the log alone cannot be used to test guesses of forgotten pairs
    (plain hashes of small integer ids are trivially reversible). ``None`` if missing and not
    ``create``."""
    path = os.path.join(model_dir, SECRET)
    if not os.path.exists(path):
        if not create:
            return None
        atomic_write(path, lambda f: f.write(os.urandom(32)))
        os.chmod(path, 0o600)
    with open(path, "rb") as f:
        key = f.read()
    if len(key) != 32:
        raise UnlearnError(f"{path} is not a 32-byte audit key")
    return key


def interaction_hmacs(key: bytes, dataset, rows: np.ndarray) -> List[str]:
    """HMAC-SHA256 of each forgotten (user token, item token) pair, hex; ``[n]``."""
    users = dataset.id2token(dataset.uid_field, dataset.log_user[rows])
    items = dataset.id2token(dataset.iid_field, dataset.log_item[rows])
    return [hmac.new(key, f"{u}\t{i}".encode(), hashlib.sha256).hexdigest() for u, i in zip(users, items)]


def append_audit(model_dir: str, entry: dict) -> None:
    """Append one JSON line to ``audit.jsonl`` and fsync it."""
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(os.path.join(model_dir, AUDIT), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_audit(model_dir: str) -> List[dict]:
    path = os.path.join(model_dir, AUDIT)
    if not os.path.isfile(path):
        return []
    entries = []
    with open(path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                raise UnlearnError(f"{path} line {number} is not valid JSON") from None
    return entries


def verify_model(model_dir: str) -> dict:
    """Re-check a saved model: every file matches its checksum (by loading it), no shard's or
    the single model's remaining training data contains a forgotten interaction, and every
    (user, item) HMAC in the audit log is a forgotten pair of the model. Raises ``UnlearnError``
    naming the first problem; returns counts."""
    model = load_model(model_dir)
    forgotten = set(model.forgotten.tolist())
    leaked = forgotten.intersection(model.rows_in_training_data().tolist())
    if leaked:
        raise UnlearnError(f"{model_dir}: {len(leaked)} forgotten interactions are still in training data")
    entries = read_audit(model_dir)
    key = audit_secret(model_dir, create=False)
    if key is None:
        if any(entry.get("forgotten_hmac") for entry in entries):
            raise UnlearnError(f"{model_dir}/{SECRET} is missing: the audit log cannot be checked")
        key = b""
    known = set(interaction_hmacs(key, model.dataset, model.forgotten))
    for number, entry in enumerate(entries, start=1):
        missing = [h for h in entry.get("forgotten_hmac", []) if h not in known]
        if missing:
            raise UnlearnError(f"{model_dir}/{AUDIT} line {number}: {len(missing)} audited pairs are not forgotten")
    return {"model_dir": model_dir, "forgotten": len(forgotten), "audit_entries": len(entries),
            "version": os.path.basename(model.version_dir)}
