"""Creating the dataset and RecBole dataloaders for D_raw, D_rem and D_fgt."""
import csv
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.interaction import Interaction
from recbole.data.utils import create_samplers, get_dataloader

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.utils.digests import file_sha256
from recbole_unlearn.utils.errors import UnlearnError, one_line
from recbole_unlearn.utils.intervals import interval_problem


def dataset_file(config) -> str:
    """The dataset's atomic file, ``<data_path>/<dataset>.inter`` (RecBole's ``data_path`` already
    ends with the dataset's folder)."""
    return os.path.join(config["data_path"], f"{config['dataset']}.inter")


#: RecBole's atomic file kinds, read from the dataset's folder when present (``<dataset>.<suffix>``)
ATOMIC_SUFFIXES = ("inter", "user", "item", "kg", "link", "net")


def atomic_files(config) -> List[str]:
    """``[n]`` paths of the dataset's atomic files that exist (the ``.inter`` file and any
    ``.user``, ``.item``, ... beside it, plus ``additional_feat_suffix``): every file RecBole's
    loading may read, so a saved model can check all of them, not the ``.inter`` file alone."""
    suffixes = list(ATOMIC_SUFFIXES) + list(config["additional_feat_suffix"] or [])
    paths = [os.path.join(config["data_path"], f"{config['dataset']}.{suffix}") for suffix in suffixes]
    return [path for path in paths if os.path.isfile(path)]


def atomic_digests(config, known: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """``{file name: SHA-256}`` of every atomic file of the dataset (``.inter``, ``.item``, ...);
    ``known``: digests already computed, by file name (not read again)."""
    known = known or {}
    return {name: known[name] if name in known else file_sha256(path)
            for name, path in ((os.path.basename(p), p) for p in atomic_files(config))}


def check_dataset_files(config, named_fields: bool = True) -> None:
    """Fail with one clear line (and no download attempt) if ``<data_path>/<dataset>.inter``
    is missing (RecBole would otherwise try to download known dataset names), lacks the user,
    item or time column, has a line without a time, or an atomic file RecBole reads has a line with
    another number of fields than its header (:func:`_check_field_count`). ``named_fields``:
    also refuse files and fields ``load_col`` / ``unload_col`` name that do not exist (a saved
    folder's are checked with :func:`named_fields_problem` instead: RecBole ignores them, so its
    model was trained as without them)."""
    path = dataset_file(config)
    if not os.path.isfile(path):
        raise UnlearnError(
            f"dataset '{config['dataset']}' not found: expected the atomic file {path} "
            "(see dataset/README.md to convert or download one)"
        )
    separator = config["field_separator"]
    try:
        with open(path, "r", encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n").split(separator)
            _check_no_byte_order_mark(config, path, header)  # it said: no column 'user_id'
            columns = [col.split(":")[0] for col in header]
            for key in ("USER_ID_FIELD", "ITEM_ID_FIELD", "TIME_FIELD"):
                if config[key] not in columns:
                    raise UnlearnError(
                        f"dataset '{config['dataset']}' has no column '{config[key]}' ({key}) in {path}; "
                        "sequential unlearning needs user, item and time of every interaction"
                    )
            _check_header_types(config, path, header)
            _check_load_col(config)
            if named_fields:
                _check_named_fields(config, header)
            _check_value_intervals(config, header)
            _check_times(config, path, f, header, columns.index(config["TIME_FIELD"]), separator)
    except UnicodeDecodeError:
        raise UnlearnError(f"dataset '{config['dataset']}': line {_first_line_not_utf8(path)} of {path} is not UTF-8 "
                           "text, which RecBole reads: convert the file (e.g. iconv -f latin1 -t utf-8)") from None
    for other in atomic_files(config):
        if other != path and _read_by_recbole(config, other):
            _check_feature_file(config, other, separator)


#: the column types of RecBole's atomic files
ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


def _check_header_types(config, path: str, header: List[str]) -> None:
    """Every header column is ``name:type`` of RecBole's types, and the user and item ids are
    token columns (a missing type ended in "not enough values to unpack", a float user id in
    "need at least one array to concatenate", a ``token_seq`` item id in "unhashable type")."""
    where = f"dataset '{config['dataset']}'"
    for column in header:
        name, colon, kind = column.partition(":")
        if not colon or not name or kind not in ATOMIC_TYPES:
            raise UnlearnError(f"{where}: column {column!r} in the header of {path} is not 'name:type' with a type "
                               f"of RecBole's atomic files ({', '.join(ATOMIC_TYPES)})")
    kinds = dict(column.partition(":")[::2] for column in header)
    for key in ("USER_ID_FIELD", "ITEM_ID_FIELD"):
        if kinds.get(config[key]) != "token":
            raise UnlearnError(f"{where}: column '{config[key]}' ({key}) must be a token column ('{config[key]}:token' "
                               f"in the header of {path}), got '{config[key]}:{kinds.get(config[key])}'")


def _loaded_field_kinds(config, inter_header: List[str]) -> Dict[str, str]:
    """``{field: RecBole type}`` of the fields the run loads: the ``.inter`` file's (``header``)
    and those of every other atomic file RecBole reads, each narrowed by ``load_col``."""
    load_col = config["load_col"]
    kinds = {}
    for suffix, header in _atomic_headers(config, inter_header).items():
        if suffix != "inter" and not _reads_suffix(config, suffix):
            continue
        wanted = None if load_col is None or load_col.get(suffix) == "*" else load_col.get(suffix) or []
        for column in header:
            name, _, kind = column.partition(":")
            if (wanted is None or name in wanted) and name not in _unloaded(config, suffix):
                kinds[name] = kind
    return kinds


def _atomic_headers(config, inter_header: List[str]) -> Dict[str, List[str]]:
    """``{file suffix: header columns}`` of the ``.inter`` file (``inter_header``) and of every
    other atomic file RecBole's sequential dataset may read (``.user``, ``.item``,
    ``additional_feat_suffix``), whatever ``load_col`` says; a byte-order mark is named as such."""
    headers = {"inter": inter_header}
    for path in atomic_files(config):
        suffix = os.path.basename(path).rsplit(".", 1)[-1]
        if suffix in _feature_suffixes(config):
            with open(path, "r", encoding="utf-8", errors="replace") as f:
                header = f.readline().rstrip("\r\n").split(config["field_separator"])
            _check_no_byte_order_mark(config, path, header)  # not a field named '\ufeffitem_id'
            headers[suffix] = header
    return headers


def _unloaded(config, suffix: str) -> List[str]:
    """The fields of the ``suffix`` file that ``unload_col`` leaves out (RecBole reads both keys)."""
    unload_col = config["unload_col"]
    fields = unload_col.get(suffix) if isinstance(unload_col, dict) else None
    return list(fields) if isinstance(fields, (list, tuple)) else []


def _check_value_intervals(config, header: List[str]) -> None:
    """``val_interval`` names loaded fields: an interval string for a float field (RecBole reads
    ``str()`` of it: a number, or a list of one, passed, and RecBole then dropped one arbitrary
    row, of the ``.inter`` file or of a ``.user`` / ``.item`` file with its user's or item's
    interactions), a list of tokens for a token field (a string ended in pandas' TypeError); a
    sequence field, which RecBole cannot filter by value, or a field the run does not load (its
    "Field [...] not defined") is refused."""
    intervals = config["val_interval"] or {}
    if not intervals:
        return
    kinds = _loaded_field_kinds(config, header)
    for field, interval in intervals.items():
        kind = kinds.get(field)
        if kind is None:
            problem = "the run loads no such field (load_col, or no atomic file holds it)"
        elif kind == "float":
            problem = interval_problem(str(interval))
        elif kind == "token":
            problem = None if isinstance(interval, (list, tuple)) else \
                f"{field} is a token field: give the list of tokens to keep"
        else:
            problem = f"{field} is a {kind} field, which RecBole cannot filter by value"
        if problem:
            raise UnlearnError(f"val_interval {field} {interval!r}: {problem}")


def _check_load_col(config) -> None:
    """``load_col``, where given, names the ``.inter`` file's fields the run loads, the user and
    item ids among them (without an ``inter`` key RecBole ended in a ``TypeError``, without an id
    in "could not be loaded: 'item_id'"; the time is checked with the times)."""
    for key in ("USER_ID_FIELD", "ITEM_ID_FIELD", "TIME_FIELD"):  # RecBole's "is not exist in interaction"
        if config[key] in _unloaded(config, "inter"):
            raise UnlearnError(f"dataset '{config['dataset']}': unload_col leaves out '{config[key]}' ({key}), which "
                               "every interaction needs")
    load_col = config["load_col"]
    if load_col is None:
        return
    fields = load_col["inter"]  # its form is the configurator's to check
    if fields == "*":  # RecBole: every field
        return
    for key in ("USER_ID_FIELD", "ITEM_ID_FIELD"):
        if config[key] not in fields:
            raise UnlearnError(f"dataset '{config['dataset']}': load_col leaves out '{config[key]}' ({key}), which "
                               "every interaction needs")


def _check_named_fields(config, inter_header: List[str]) -> None:
    """Every file ``load_col`` and ``unload_col`` name is an atomic file of the dataset that
    RecBole reads, and every field they name is in its header: a field that is none (a typo) and
    a file that does not exist were accepted and recorded as if they mattered (r10round6 probe)."""
    headers = {suffix: [column.partition(":")[0] for column in header]
               for suffix, header in _atomic_headers(config, inter_header).items()}
    for key in ("load_col", "unload_col"):
        for suffix, fields in (config[key] or {}).items():
            if not fields:  # names nothing ({'item': []} reads no .item file, whether or not there is one)
                continue
            if suffix not in headers:
                raise UnlearnError(f"{key} {suffix!r}: RecBole's sequential dataset reads no {config['dataset']}.{suffix} "
                                   f"file here (the files it reads: {', '.join(sorted(headers))})")
            unknown = [] if fields == "*" else [field for field in fields if field not in headers[suffix]]
            if unknown:
                raise UnlearnError(f"{key} {suffix} {unknown[0]!r}: {config['dataset']}.{suffix} has no such field (its "
                                   f"fields: {', '.join(headers[suffix])})")


def named_fields_problem(config) -> Optional[str]:
    """What :func:`_check_named_fields` refuses in ``config`` (files and fields ``load_col`` /
    ``unload_col`` name that do not exist), or ``None``: a saved folder whose settings name such
    (earlier code accepted them, and RecBole ignores them) is served with a warning, not refused
    (r10round2 probe). The ``.inter`` file has passed :func:`check_dataset_files` already."""
    with open(dataset_file(config), "r", encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split(config["field_separator"])
    try:
        _check_named_fields(config, header)
    except UnlearnError as problem:
        return str(problem)
    return None


def _first_line_not_utf8(path: str) -> int:
    """The number of the first line of ``path`` that is not UTF-8 text."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def _check_no_byte_order_mark(config, path: str, header: List[str]) -> None:
    """RecBole reads a byte-order mark as part of the first column's name (the ``.inter`` file's
    user column went missing; a ``.user`` / ``.item`` file ended in pandas' "Usecols do not match
    columns")."""
    if header and header[0].startswith("\ufeff"):
        raise UnlearnError(f"dataset '{config['dataset']}': {path} starts with a byte-order mark, which RecBole "
                           "reads as part of the first column's name; save the file as UTF-8 without it")


def _check_feature_file(config, path: str, separator: str) -> None:
    """Every record of a ``.user`` / ``.item`` / ... file RecBole reads holds its header's number
    of fields and one line: pandas reads a quoted separator as text, and a quote left open merges
    the lines up to the next one into one row (items dropped unsaid with their interactions, by
    ``filter_inter_by_user_or_item``). A separator of several characters (pandas reads it as a
    pattern; the csv module takes one character) is split as it stands."""
    with open(path, "r", encoding="utf-8", errors="replace", newline="") as f:
        if len(separator) != 1:
            header = f.readline().rstrip("\r\n").split(separator)
            _check_no_byte_order_mark(config, path, header)
            for number, line in enumerate(f, start=2):
                _check_field_count(config, path, number, line.rstrip("\r\n").split(separator), header)
            return
        records = csv.reader(f, delimiter=separator)
        header = next(records, [])
        _check_no_byte_order_mark(config, path, header)
        last = records.line_num
        for parts in records:
            if records.line_num > last + 1:
                raise UnlearnError(f"dataset '{config['dataset']}': a quoted field of {path} runs over lines {last + 1} "
                                   f"to {records.line_num}, which RecBole's reader merges into one row; close or "
                                   "remove the quote")
            _check_field_count(config, path, last + 1, parts or [""], header)
            last = records.line_num


def _feature_suffixes(config) -> Tuple[str, ...]:
    """The atomic files besides ``.inter`` RecBole's sequential dataset may read: ``.user``,
    ``.item`` and ``additional_feat_suffix`` ones (never ``.kg``, ``.link`` or ``.net``)."""
    return ("user", "item") + tuple(config["additional_feat_suffix"] or [])


def _read_by_recbole(config, path: str) -> bool:
    """Whether RecBole's sequential dataset loads the atomic file ``path`` with ``config``: the
    ``.user`` and ``.item`` files and ``additional_feat_suffix`` ones, unless ``load_col`` names
    other sources only (it then skips them unread); never ``.kg``, ``.link`` or ``.net``."""
    return _reads_suffix(config, os.path.basename(path).rsplit(".", 1)[-1])


def _reads_suffix(config, suffix: str) -> bool:
    """:func:`_read_by_recbole` by the file's suffix."""
    if suffix not in _feature_suffixes(config):
        return False
    load_col = config["load_col"]
    return load_col is None or (isinstance(load_col, dict) and bool(load_col.get(suffix)))  # [] reads nothing


def _check_field_count(config, path: str, number: int, parts: List[str], header: List[str]) -> None:
    """A data line of a file RecBole reads (split into ``parts``) must hold as many fields as its
    ``header`` (a blank line is skipped, as RecBole's reader does): with one more (a trailing
    tab), pandas takes the first column for the row index and reads every other column shifted
    (items as users, times as items); with fewer, it reads the missing ones as missing values."""
    if len(parts) != len(header) and not (len(parts) == 1 and not parts[0].strip()):  # pandas skips a blank line
        trailing = " (a separator at its end?)" if len(parts) == len(header) + 1 and not parts[-1] else ""
        raise UnlearnError(f"dataset '{config['dataset']}': line {number} of {path} has {len(parts)} fields, its "
                           f"header {len(header)}{trailing}; RecBole would read its columns shifted or missing")


def _check_times(config, path: str, lines, header, column: int, separator: str) -> None:
    """The time column orders every user's sequence (its last two are the validation and test
    targets), so it must be a float column that RecBole loads, with a number on every line:
    RecBole orders a token column by token id, and fills a missing float with the column's
    mean, which moved an interaction to the end of its user's sequence, silently."""
    field = config["TIME_FIELD"]
    where = f"dataset '{config['dataset']}'"
    if header[column].partition(":")[2] != "float":
        raise UnlearnError(f"{where}: column '{field}' (TIME_FIELD) must be a float column ('{field}:float' in "
                           f"the header of {path}), got '{header[column]}'")
    load_col = config["load_col"]
    if isinstance(load_col, dict) and load_col.get("inter") != "*" and field not in (load_col.get("inter") or [field]):
        raise UnlearnError(f"{where}: load_col leaves out '{field}' (TIME_FIELD), which orders every sequence")
    interactions = 0
    for number, line in enumerate(lines, start=2):
        parts = line.rstrip("\r\n").split(separator)
        if len(parts) == 1 and not parts[0].strip():  # pandas skips a line of spaces, too
            continue
        interactions += 1
        if '"' not in line:  # (a quote is refused as such when RecBole reads the file)
            _check_field_count(config, path, number, parts, header)
        text = parts[column].strip() if column < len(parts) else ""
        try:
            finite = math.isfinite(float(text))
        except ValueError:
            finite = False
        if not finite:
            raise UnlearnError(f"{where}: the {field} on line {number} is not a number ({text!r}) in {path}; "
                               "every interaction needs its time")
    if not interactions:  # RecBole: "Some feat is empty, please check the filtering settings"
        raise UnlearnError(f"{where}: {path} holds no interaction (a header alone)")


def create_unlearn_dataset(config, known: Optional[Dict[str, str]] = None,
                           files_checked: bool = False) -> UnlearnSequentialDataset:
    """Load the dataset through RecBole's pipeline (filtering, id remapping). Its
    ``file_digests`` are the SHA-256 of the atomic files it was read from (what a saved model
    records, and checks before answering requests), taken before and after the read: a file
    that changed meanwhile is refused. ``known``: digests the caller took just before;
    ``files_checked``: the caller ran :func:`check_dataset_files` with ``config`` already."""
    if not files_checked:
        check_dataset_files(config)
    before = atomic_digests(config, known)
    try:
        dataset = UnlearnSequentialDataset(config)
    except (ValueError, KeyError) as e:
        raise UnlearnError(f"dataset '{config['dataset']}' could not be loaded: {one_line(e)}") from None
    after = atomic_digests(config)
    if after != before:
        changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
        raise UnlearnError(f"dataset file{'s' if len(changed) > 1 else ''} {', '.join(changed)} in "
                           f"{config['data_path']} changed while {'they were' if len(changed) > 1 else 'it was'} "
                           "read: run again once the dataset no longer changes")
    dataset.file_digests = before
    return dataset


@dataclass
class SplitLoaders:
    """RecBole dataloaders of one split (train / valid / test) built from one ``keep`` mask."""

    train: object
    valid: object
    test: object


def split_loaders(config, dataset: UnlearnSequentialDataset, keep: Optional[np.ndarray] = None) -> SplitLoaders:
    """RecBole train / valid / test dataloaders of the log rows selected by ``keep``.

    Uses RecBole's own samplers and dataloader classes, so negative sampling (BPR models),
    transforms (BERT4Rec's ``mask_itemseq``) and full-sort evaluation work as in RecBole.
    ``train`` is ``None`` when ``keep`` leaves no training sample (every user's training data
    forgotten): torch's random sampler refuses an empty dataset.
    """
    built = dataset.build_split(keep)
    # without ``keep``: every row but the audit's held-out twins, which no model trains on
    samplers = create_samplers(config, sampler_source(dataset, dataset.full_keep() if keep is None else keep), built)
    train = None
    if len(built[0]):
        train = get_dataloader(config, "train")(config, built[0], samplers[0], shuffle=config["shuffle"])
    valid = get_dataloader(config, "valid")(config, built[1], samplers[1], shuffle=False)
    test = get_dataloader(config, "test")(config, built[2], samplers[2], shuffle=False)
    return SplitLoaders(train, valid, test)


def train_loader(config, dataset: UnlearnSequentialDataset, train: UnlearnSequentialDataset, rows: np.ndarray):
    """A RecBole training dataloader over ``train``, a :meth:`~UnlearnSequentialDataset.sample_dataset`
    of ``dataset`` holding at least one sample (torch's random sampler refuses an empty one), its
    negatives drawn by :func:`sampler_source` of ``rows``."""
    sampler = create_samplers(config, sampler_source(dataset, rows), [train, train, train])[0]
    return get_dataloader(config, "train")(config, train, sampler, shuffle=config["shuffle"])


def sampler_source(dataset: UnlearnSequentialDataset, rows: Optional[np.ndarray]) -> UnlearnSequentialDataset:
    """The dataset RecBole's negative sampler draws from: ``dataset`` with only the log rows
    ``rows`` (``[n_rows]`` bool; ``None``: all of them). RecBole's ``RepeatableSampler`` counts
    item popularity (``distribution: popularity``) over every row of the dataset it is given
    (as RecBole does, the rows' validation and test items included); given the whole log, a
    model trained on D_rem or on one shard drew its negatives by counts of forgotten rows and of
    other shards' users. Item ids and ``item_num`` are the dataset's either way."""
    if rows is None or rows.all():
        return dataset
    return dataset.copy(dataset.log_feat[torch.from_numpy(np.flatnonzero(rows))])


def eval_loader(config, dataset: UnlearnSequentialDataset, samples: Interaction) -> FullSortEvalDataLoader:
    """A full-ranking RecBole dataloader over arbitrary (history -> target) samples (e.g. D_fgt)."""
    return FullSortEvalDataLoader(config, dataset.copy(samples), None, shuffle=False)
