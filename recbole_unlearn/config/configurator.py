"""RecBole's ``Config`` extended with recbole_unlearn's YAML defaults and key validation.

Precedence, lowest first (RecBole's order, with our layer in the middle):
RecBole's ``overall.yaml`` / model / dataset / quick-start files < ``properties/overall.yaml``
< ``properties/dataset/<dataset>.yaml`` < ``properties/method/<method>.yaml``
< config files < ``config_dict`` < command line.
"""
import ast
import copy
import functools
import importlib.util
import os
import re
from typing import Dict, FrozenSet, Iterable, List, Optional, Set

import numpy as np
import recbole
import yaml
from recbole.config import Config
from recbole.data.transform import construct_transform
from recbole.utils import ModelType, get_model
from recbole.utils import argument_list

from recbole_unlearn.compat import set_anomaly_detection
from recbole_unlearn.config.keys import KEYS, METHOD_PHASES, check_values, is_recorded, settings_of
from recbole_unlearn.utils.errors import UnlearnError, one_line, yaml_problem
from recbole_unlearn.utils.intervals import interval_problem
from recbole_unlearn.utils.paths import properties_dir, property_file
from recbole_unlearn.utils.yaml_keys import UniqueKeySafeLoader

# Keys that are not settings in any YAML but are accepted everywhere.
_ALWAYS_ALLOWED = {"model", "dataset", "config_files", "model_dir", "benchmark", "verify"}

# Keys RecBole reads that this package does not take, each with why: it was refused as "not a
# RecBole ... setting", which it is.
_NOT_TAKEN = {
    "encoding": "RecBole reads the dataset files in it, but this package reads and checks them (and "
                "request files) as UTF-8 alone: convert the files (e.g. iconv -f latin1 -t utf-8) and leave "
                "it out",
}


def _load_yaml(path: str, loader):
    """The document in ``path`` as ``loader`` reads it (``None`` for an empty file)."""
    with open(path, "r", encoding="utf-8") as f:
        return yaml.load(f.read(), Loader=loader)


def _read_yaml(path: str, loader) -> dict:
    return _load_yaml(path, loader) or {}


@functools.lru_cache(maxsize=None)
def setting_keys() -> FrozenSet[str]:
    """Every key a user may set in any run: RecBole's documented arguments, every key of
    RecBole's and our YAML files (all models' files too, so a key of another model is not a
    typo) and our declared keys (``config/keys.py``)."""
    keys: Set[str] = set(_ALWAYS_ALLOWED) | set(KEYS)
    for group in (
        argument_list.general_arguments,
        argument_list.training_arguments,
        argument_list.evaluation_arguments,
        argument_list.dataset_arguments,
    ):
        keys.update(group)
    recbole_props = os.path.join(os.path.dirname(recbole.__file__), "properties")
    for root in (recbole_props, properties_dir()):
        for folder, _, files in os.walk(root):
            for file in files:
                if file.endswith(".yaml") and file != "url.yaml":
                    keys.update(_read_yaml(os.path.join(folder, file), yaml.SafeLoader))
    return frozenset(keys)


def check_setting_keys(keys: Iterable[str]) -> None:
    """One error naming the keys of ``keys`` that are no setting (typos), or a RecBole setting
    this package does not take, with why."""
    keys = list(keys)
    for key in sorted(set(keys) & set(_NOT_TAKEN)):
        raise UnlearnError(f"config key '{key}': {_NOT_TAKEN[key]}")
    unknown = sorted(k for k in keys if k not in setting_keys())
    if unknown:
        raise UnlearnError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}: not a RecBole or recbole_unlearn setting"
        )


def _check_yaml_file(path: str) -> None:
    """One-line errors for a config file that is missing, a folder, not UTF-8, not YAML (the
    parser's own message spans several lines), a key written twice, or no mapping of settings
    (an empty file, or one of comments only, holds no setting and is fine)."""
    if os.path.isdir(path):
        raise UnlearnError(f"config file {path} is a folder, not a config file")
    if not os.path.isfile(path):
        raise UnlearnError(f"config file not found: {path}")
    try:
        settings = _load_yaml(path, UniqueKeySafeLoader)
    except UnicodeDecodeError:
        raise UnlearnError(f"config file {path} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise UnlearnError(f"config file {path} is not valid YAML{yaml_problem(e)}") from None
    if settings is not None and not isinstance(settings, dict):  # None: empty, or comments only
        raise UnlearnError(f"config file {path} must be a mapping of settings (key: value lines), "
                           f"got a {type(settings).__name__}")
    named = [k for k in (settings or {}) if not isinstance(k, str)]
    if named:
        raise UnlearnError(f"config file {path}: config keys must be names (strings), got {named[0]!r}")
    check_values(settings or {}, EARLY_KEYS)
    switches = sorted(COMMAND_LINE_SWITCHES & set(settings or {}))
    if switches:  # a run ignored them
        raise UnlearnError(f"config file {path}: {', '.join(switches)} {'is a' if len(switches) == 1 else 'are'} "
                           f"command-line switch{'' if len(switches) == 1 else 'es'}, not a setting: give "
                           f"{'it' if len(switches) == 1 else 'them'} on the command line")


#: keys RecBole's ``Config`` itself parses (a wrong kind fails there, as a traceback): checked first
EARLY_KEYS = ("valid_metric",)


def _plain(value):
    """``value`` with NumPy scalars and arrays turned into Python scalars and lists, and paths
    (``pathlib.Path``) into strings, also inside lists, tuples and dicts."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


#: keys that name a file or folder: their values stay strings (``--forget=2024`` is a file named 2024)
PATH_KEYS = frozenset({"forget", "model_dir", "results_dir", "data_path", "checkpoint_dir", "benchmark", "cells"})
#: command-line switches: never settings of a run (in a config file or ``config_dict`` a run ignored them)
COMMAND_LINE_SWITCHES = frozenset({"config_files", "benchmark", "verify", "cells"})
#: RecBole keys a run sets itself and refuses when given: ``device`` (from ``use_gpu`` and
#: ``gpu_id``) and ``checkpoint_dir`` (the run's folder)
SET_BY_THE_RUN = ("device", "checkpoint_dir")


#: a bracketed list of bare names (``[Hit,NDCG]``, ``[sisa, sruga]``), as a YAML flow sequence of
#: plain strings writes it
BARE_NAMES = re.compile(r"\[\s*[A-Za-z_][\w@.\-]*(\s*,\s*[A-Za-z_][\w@.\-]*)*\s*\]")


def literal_values(config_dict: dict) -> dict:
    """Turn string values into Python values in place (``"5"`` -> 5, ``"[10, 20]"`` -> a list,
    ``"true"`` -> True, ``"~"`` -> None as in YAML), as RecBole does for command-line and
    ``config_dict`` values, but with ``ast.literal_eval`` instead of RecBole's ``eval``: a value
    is only ever read as a literal, never run as code
    (``--epochs="__import__('os').system(...)"`` stays a string and is then rejected as a bad
    value). Anything that is not a literal stays a string. NumPy scalars (a sweep written with
    numpy, through the Python API) become the Python numbers they hold, in lists too."""
    for key, param in config_dict.items():
        if not isinstance(param, str):
            config_dict[key] = _plain(param)
            continue
        text = param.strip()
        if key in PATH_KEYS:
            continue  # as given
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            lowered = text.lower()
            value = {"true": True, "false": False, "~": None, "null": None}.get(lowered, param)
            if BARE_NAMES.fullmatch(text):  # [Hit,NDCG]: a list, as YAML reads it (a string, as RecBole kept it)
                value = [name.strip() for name in text[1:-1].split(",")]
        config_dict[key] = value
    return config_dict


def default_setting(key: str):
    """The default of ``key`` in ``properties/overall.yaml``, else in RecBole's own
    ``overall.yaml`` (``state``, ...; for code that runs before a config exists, e.g. opening a
    saved model's folder)."""
    for folder in (properties_dir(), os.path.join(os.path.dirname(recbole.__file__), "properties")):
        defaults = _read_yaml(os.path.join(folder, "overall.yaml"), yaml.SafeLoader)
        if key in defaults:
            return defaults[key]
    raise KeyError(f"{key} has no default in properties/overall.yaml nor in RecBole's")


def method_names(value) -> List[str]:
    """``unlearn_method`` may be one name, a comma-separated string (also in brackets, as RecBole's
    command line writes a list: ``[a,b]`` stays a string when its names are not quoted) or a list."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        names = (v.strip().strip("'\"").strip().lower() for v in text.split(","))
        return [name for name in names if name]
    if not isinstance(value, (list, tuple)):  # a number or flag names no method: read as the name it spells
        return [str(value).strip().lower()]
    return [str(v).strip().lower() for v in value]


def check_config_dict(config_dict) -> None:
    """One-line errors for a ``config_dict`` (``None`` allowed) that is no dict, or whose keys
    are not all strings (the API's runs, requests and ``--verify`` alike)."""
    if config_dict is not None and not isinstance(config_dict, dict):
        raise UnlearnError(f"config_dict must be a dict of settings, got {type(config_dict).__name__}")
    named = [k for k in (config_dict or {}) if not isinstance(k, str)]
    if named:
        raise UnlearnError(f"config keys must be names (strings), got {named[0]!r} in config_dict")


def _check_argument_kinds(model, dataset, config_file_list, config_dict) -> None:
    """One-line errors for arguments of the wrong kind from the Python API (a list of pairs as
    ``config_dict`` raised AttributeError; a string as ``config_file_list`` was read one
    character at a time)."""
    for name, value in (("model", model), ("dataset", dataset)):
        if value is not None and not isinstance(value, str):
            raise UnlearnError(f"{name} must be a {name} name (a string), got {type(value).__name__}")
    if config_file_list is not None and (not isinstance(config_file_list, (list, tuple))
                                         or not all(isinstance(p, (str, os.PathLike)) for p in config_file_list)):
        raise UnlearnError(f"config_file_list must be a list of file names, got {type(config_file_list).__name__}")
    check_config_dict(config_dict)
    for name, value in (("model", model), ("dataset", dataset)):
        other = (config_dict or {}).get(name)
        if value is not None and other is not None and other != value:  # one was run, the other ignored
            raise UnlearnError(f"{name} is given twice: {value!r} as the argument and {other!r} in config_dict; "
                               "give it once")
    for name, value in (("model", (config_dict or {}).get("model")), ("dataset", (config_dict or {}).get("dataset"))):
        if value is not None and not isinstance(value, str):
            raise UnlearnError(f"config key '{name}' must be a {name} name (a string), got {value!r}")
    check_values(config_dict or {}, EARLY_KEYS)  # before RecBole's Config reads them (and fails otherwise)


def _yaml_keys(folder: str) -> Dict[str, frozenset]:
    """``{file name without .yaml: its top-level keys}`` of the YAML files in ``folder``."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yaml"):
            with open(os.path.join(folder, name), "r", encoding="utf-8") as f:
                out[name[:-len(".yaml")]] = frozenset(yaml.safe_load(f) or {})
    return out


@functools.lru_cache(maxsize=None)
def _recbole_model_keys() -> Dict[str, frozenset]:
    """Each RecBole model's settings (``recbole/properties/model/<Model>.yaml``)."""
    return _yaml_keys(os.path.join(os.path.dirname(recbole.__file__), "properties", "model"))


@functools.lru_cache(maxsize=None)
def _recbole_shared_keys() -> frozenset:
    """The settings every RecBole model can read: its overall and dataset YAML files'."""
    root = os.path.join(os.path.dirname(recbole.__file__), "properties")
    keys = set(_yaml_keys(root).get("overall", frozenset()))
    for found in _yaml_keys(os.path.join(root, "dataset")).values():
        keys |= found
    return frozenset(keys)


@functools.lru_cache(maxsize=None)
def _own_keys() -> frozenset:
    """This package's settings (its ``properties/`` YAML files' keys and the keys of its phases
    beyond RecBole's data), which a RecBole model's YAML may hold too (``aggregator``)."""
    keys = {key for key, spec in KEYS.items() if spec.phase != "data"}
    root = properties_dir()
    for folder in (root, os.path.join(root, "method"), os.path.join(root, "dataset")):
        for found in _yaml_keys(folder).values():
            keys |= found
    return frozenset(keys)


def unread_model_settings(model: str, keys: Iterable[str]) -> List[str]:
    """The keys of ``keys`` that another RecBole model's YAML declares and ``model``'s does not
    (nor RecBole's overall or dataset YAML, nor this package's): ``model`` never reads them, sorted."""
    per_model = _recbole_model_keys()
    own = per_model.get(model, frozenset())
    others = frozenset().union(*(found for name, found in per_model.items() if name != model))
    return sorted(k for k in keys
                  if k in others and k not in own and k not in _recbole_shared_keys() and k not in _own_keys())


def _has_cut_off(metric) -> bool:
    """Whether RecBole reports ``metric`` at each ``topk`` (``ndcg@10``) or once, without one
    (GAUC: ``gauc``); a name RecBole does not know is taken as cut (its own error names it)."""
    from recbole.evaluator.base_metric import TopkMetric
    from recbole.evaluator.register import metrics_dict

    known = metrics_dict.get(str(metric).lower())
    return known is None or issubclass(known, TopkMetric)


class UnlearnConfig(Config):
    """RecBole ``Config`` for recbole_unlearn.

    Differences from RecBole's ``Config``:
      * our ``properties/`` defaults are layered in (see module docstring);
      * ``model`` and ``dataset`` default to the values in ``properties/overall.yaml``;
      * the command line is *not* read implicitly (our CLI parses it and passes a dict), so the
        Python API behaves the same under pytest or in a notebook;
      * every external key must be a known RecBole / recbole_unlearn setting, otherwise a
        one-line :class:`UnlearnError` names it;
      * only sequential models are accepted.
    """

    def __init__(
        self,
        model=None,
        dataset=None,
        config_file_list: Optional[List[str]] = None,
        config_dict: Optional[dict] = None,
    ):
        _check_argument_kinds(model, dataset, config_file_list, config_dict)
        if config_file_list is not None:
            config_file_list = [os.fspath(path) for path in config_file_list]
        config_dict = copy.deepcopy(config_dict)  # RecBole converts values in place: the caller's dict stays as given
        for path in config_file_list or []:
            _check_yaml_file(path)
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except UnlearnError:
            raise
        except (ValueError, KeyError, TypeError, SyntaxError, NotImplementedError, RuntimeError, yaml.YAMLError) as e:
            raise UnlearnError(f"bad configuration: {one_line(e)}") from None  # RecBole's own refusals
        self._check_keys()
        self._check_setting()
        set_anomaly_detection(self["detect_anomaly"])
        # RecBole's batch transforms (BERT4Rec's mask_itemseq) write the field names they add
        # (MASK_ITEM_SEQ, POS_ITEMS, ...) into the config of the first dataloader built with
        # it, and BERT4Rec reads them from its own config. Build the transform here so every
        # config has them, including those made before any dataloader exists (benchmark rows).
        construct_transform(self)

    # --- RecBole hooks -----------------------------------------------------------------
    def _load_cmd_line(self) -> dict:
        return {}

    def _load_config_files(self, file_list):
        # RecBole's, except that a file with no setting (empty, or comments only) adds none: it
        # updated the settings with None ("'NoneType' object is not iterable")
        settings = {}
        for path in file_list or []:
            settings.update(_read_yaml(path, self.yaml_loader))
        return settings

    def _convert_config_dict(self, config_dict: dict) -> dict:
        return literal_values(config_dict)

    def _get_model_and_dataset(self, model, dataset):
        defaults = _read_yaml(os.path.join(properties_dir(), "overall.yaml"), self.yaml_loader)
        if model is None:
            model = self.external_config_dict.get("model", defaults["model"])
        if dataset is None:
            dataset = self.external_config_dict.get("dataset", defaults["dataset"])
        if isinstance(model, str):
            try:
                model_class = get_model(model)
            except (ValueError, ImportError, AttributeError):
                # RecBole's lookup ends in exlib_recommender, which imports optional packages
                raise UnlearnError(f"unknown model '{model}': not a RecBole model") from None
            model_name = model
        else:
            model_class, model_name = model, model.__name__
        if getattr(model_class, "type", None) != ModelType.SEQUENTIAL:
            raise UnlearnError(
                f"model '{model_name}' is not a sequential recommender; recbole_unlearn "
                "supports RecBole's sequential models (GRU4Rec, SASRec, BERT4Rec, ...)"
            )
        return model_name, model_class, str(dataset)

    def _set_default_parameters(self):
        # RecBole's, except that a data_path the user gave is read for ml-100k too: RecBole puts its
        # bundled copy there for that name, so a user's own ml-100k was replaced without a word;
        # and a partial eval_args completes from our defaults, as RecBole completes one from its
        # own: {mode: full} was completed with RecBole's random split and refused for a split the
        # user never set
        given, ours = self.external_config_dict.get("eval_args"), self.internal_config_dict.get("eval_args")
        if isinstance(given, dict) and isinstance(ours, dict):
            self.final_config_dict["eval_args"] = {**ours, **given}
        super()._set_default_parameters()
        given = self.external_config_dict.get("data_path")
        if self.dataset == "ml-100k" and given is not None:
            self.final_config_dict["data_path"] = os.path.join(given, self.dataset)

    def _init_device(self):
        """RecBole's, except that ``use_gpu: False`` runs on the CPU (RecBole 1.2.1 never reads it)
        and that a ``CUDA_VISIBLE_DEVICES`` the environment sets is kept unless the user gives
        ``gpu_id``: RecBole set it to ``gpu_id`` (default ``0``) in every process, so one started
        without a GPU (``CUDA_VISIBLE_DEVICES=``) saw GPU 0 again, and one given its GPUs by a
        scheduler took another's."""
        if "local_rank" in self.final_config_dict:  # RecBole's distributed set-up: refused later, as unsupported
            return super()._init_device()
        gpu_id = self.final_config_dict["gpu_id"]
        gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
        self.final_config_dict["gpu_id"] = gpu_id
        use_gpu = self.final_config_dict.get("use_gpu") is not False
        if use_gpu and ("gpu_id" in self.external_config_dict or "CUDA_VISIBLE_DEVICES" not in os.environ):
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id  # RecBole's way of choosing the GPU
        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES", gpu_id).strip()
        on_gpu = use_gpu and bool(visible) and torch.cuda.is_available()
        self.final_config_dict.update(single_spec=True, local_rank=0,
                                      device=torch.device("cuda" if on_gpu else "cpu"))

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        self._recbole_internal_keys = set(self.internal_config_dict)
        overall = os.path.join(properties_dir(), "overall.yaml")
        self._update_internal_config_dict(overall)
        for name in ("dataset", "model"):
            path = property_file(name, f"{dataset if name == 'dataset' else model}.yaml")
            if path:
                self._update_internal_config_dict(path)
        self._apply_profiles()

    def _apply_profiles(self) -> None:
        """A key ``<name>_profile: <profile>`` (e.g. ``sruga_profile: thesis``) puts
        ``properties/method/<name>-<profile>.yaml`` over our defaults, below the user's own keys;
        its keys (``profile_keys``) stay above a method's ``properties/method/<method>.yaml``
        (:meth:`for_method`), which replaced them unsaid (r11peers probe: a new step's profile
        did nothing; SRUGA's worked only because its own YAML sets no key)."""
        external, internal = self.external_config_dict, self.internal_config_dict
        self.profile_keys: Set[str] = set()
        for key in sorted(k for k in set(internal) | set(external) if k.endswith("_profile")):
            profile = external.get(key, internal.get(key))
            if profile is None:
                continue
            name = key[: -len("_profile")]
            path = property_file("method", f"{name}-{profile}.yaml") if isinstance(profile, str) else None
            if not path:
                raise UnlearnError(f"config key '{key}' must name a file properties/method/{name}-<profile>.yaml "
                                   f"or be ~, got {profile!r}")
            self._update_internal_config_dict(path)
            self.profile_keys |= set(_read_yaml(path, self.yaml_loader))

    # --- validation --------------------------------------------------------------------
    def known_keys(self) -> Set[str]:
        """Every key a user may set: :func:`setting_keys` and this run's internal keys."""
        return setting_keys() | self._recbole_internal_keys | set(self.internal_config_dict)

    def _check_keys(self) -> None:
        known = self.known_keys()
        check_setting_keys(k for k in self.external_config_dict if k not in known)
        if "checkpoint_dir" in self.external_config_dict:  # replaced by the run's folder: nothing went there
            raise UnlearnError(f"config key 'checkpoint_dir' is set by the run (its folder under results_dir), got "
                               f"{self.external_config_dict['checkpoint_dir']!r}: set results_dir (and model_dir "
                               "for the saved model) instead")
        if "device" in self.external_config_dict:  # RecBole replaces it: --device=cuda:3 ran on the CPU unsaid
            raise UnlearnError(f"config key 'device' is set from use_gpu and gpu_id (RecBole derives it), got "
                               f"{self.external_config_dict['device']!r}: leave it out and set those")

    def _check_setting(self) -> None:
        if self["benchmark_filename"]:  # an AttributeError's line from the dataset, after RecBole read the files
            raise UnlearnError(f"benchmark_filename: pre-split files are not read ({self['benchmark_filename']!r}): "
                               "recbole_unlearn splits one .inter file leave-one-out itself (the forget set must be "
                               "training interactions it knows); leave it out")
        eval_args = self["eval_args"] or {}
        split = eval_args.get("split") or {}
        if split != {"LS": "valid_and_test"} or eval_args.get("order") != "TO":
            raise UnlearnError(
                "recbole_unlearn needs leave-one-out splits: eval_args.split "
                "{'LS': 'valid_and_test'} and eval_args.order TO"
            )
        mode = eval_args.get("mode")
        modes = set(mode.values()) if isinstance(mode, dict) else {mode}
        if modes != {"full"}:
            raise UnlearnError("recbole_unlearn evaluates with full ranking: eval_args.mode must be 'full'")
        check_values(self.final_config_dict)  # kinds and ranges: recbole_unlearn/config/keys.py
        for key in ("save_dataset", "save_dataloaders"):  # RecBole's pickled caches of the whole dataset
            if self[key]:
                raise UnlearnError(f"{key}: True is not supported: it writes a pickled copy of every interaction, "
                                   "forgotten ones included, which no forget removes (and a pickle is code to load)")
        if self["log_wandb"] and importlib.util.find_spec("wandb") is None:  # a request run too (a runtime key)
            raise UnlearnError("log_wandb: True (given, or a saved model's setting) needs the wandb package (pip "
                               "install wandb), which is not installed; --log_wandb=False turns it off")
        negatives = self["train_neg_sample_args"] or {}
        if self["loss_type"] == "BPR" and negatives.get("distribution") in (None, "none"):
            raise UnlearnError("loss_type BPR trains on sampled negatives, and train_neg_sample_args is ~ (none): set "
                               "it, e.g. \"{'distribution': 'uniform', 'sample_num': 1}\", or use loss_type CE "
                               "(training failed with KeyError 'neg_item_id' after the run folder was written)")
        if negatives.get("distribution") in ("uniform", "popularity"):  # RecBole divides and reshapes by these
            for key, needed in (("sample_num", True), ("candidate_num", bool(negatives.get("dynamic")))):
                value = negatives.get(key)
                if needed and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                    what = "sample_num must be" if key == "sample_num" else "dynamic negatives need candidate_num,"
                    raise UnlearnError(f"train_neg_sample_args: {what} a positive integer, got {value!r}")
        unused = self["unused_col"] or {}
        needed = {self["USER_ID_FIELD"], self["ITEM_ID_FIELD"]}
        fields = unused.get("inter", []) if isinstance(unused, dict) else None
        if not isinstance(unused, dict) or set(unused) - {"inter"} or not isinstance(fields, list) \
                or not all(isinstance(f, str) for f in fields) or needed & set(fields):
            raise UnlearnError(f"unused_col {unused!r}: give {{'inter': [fields]}} of fields other than "
                               f"{' and '.join(sorted(needed))}, which every sample needs (only the .inter "
                               "file's fields reach the samples)")
        for key in ("user_inter_num_interval", "item_inter_num_interval"):
            problem = interval_problem(self[key], counts=True)
            if problem:
                raise UnlearnError(f"{key} {self[key]!r}: {problem}")
        value_intervals = self["val_interval"]
        if value_intervals is not None and not isinstance(value_intervals, dict):
            raise UnlearnError(f"val_interval {value_intervals!r}: give {{field: interval}} (an interval string such as "
                               "'[0,inf)' for a float field, a list of tokens for a token field)")
        for field, interval in (value_intervals or {}).items():  # which one a field takes: by its type, when loaded
            if not isinstance(interval, (str, list, tuple)):
                raise UnlearnError(f"val_interval {field} {interval!r}: '{interval}' is not an interval: give an "
                                   "interval string such as '[0,inf)' for a float field, a list of tokens for a token "
                                   "field")
        self._check_column_choices()
        metrics, topk = self["metrics"] or [], self["topk"] or []
        metrics, topk = [metrics] if isinstance(metrics, str) else metrics, [topk] if isinstance(topk, int) else topk
        computed = {f"{m}@{k}".lower() if _has_cut_off(m) else str(m).lower() for m in metrics for k in topk}
        if str(self["valid_metric"]).lower() not in computed:
            raise UnlearnError(f"valid_metric '{self['valid_metric']}' is not one of the validation metrics "
                               f"(metrics x topk: {', '.join(sorted(computed))})")
        given = self.external_config_dict.get("valid_metric_bigger")
        if given is not None and given != self["valid_metric_bigger"]:  # RecBole replaced the user's value
            raise UnlearnError(f"valid_metric_bigger {given!r}: RecBole derives it from valid_metric "
                               f"({self['valid_metric']}: {self['valid_metric_bigger']}) and ignores a value given; "
                               "leave it out")

    def _check_column_choices(self) -> None:
        """``load_col`` and ``unload_col`` have RecBole's form, ``{file suffix: [fields]}`` (``'*'``:
        every field, for ``load_col``), ``load_col`` with the ``.inter`` file's, and name no file's
        fields in both (RecBole refuses that, naming our default ``load_col`` the user never gave).
        Settings alone, so a saved folder holding another form is blamed on its settings; the
        fields' names are checked against the files (``data.utils``). Earlier code passed a string
        (it unloaded nothing) and keys such as ``('inter',)`` or ``1`` (recorded as if they
        mattered; r10round6 probe)."""
        load_col, unload_col = self["load_col"], self["unload_col"]

        def fields(value, star: bool) -> bool:
            return (star and value == "*") or isinstance(value, (list, tuple)) and all(isinstance(f, str) for f in value)

        if unload_col is not None and not (isinstance(unload_col, dict) and all(
                isinstance(k, str) and fields(v, False) for k, v in unload_col.items())):
            raise UnlearnError(f"unload_col {unload_col!r}: give {{file suffix: [fields]}} of the fields to leave out, "
                               "e.g. {'inter': ['rating']}")
        if load_col is None:
            return
        if not (isinstance(load_col, dict) and fields(load_col.get("inter"), True) and all(
                isinstance(k, str) and fields(v, True) for k, v in load_col.items())):
            raise UnlearnError(f"load_col {load_col!r}: give the .inter file's fields to load, {{'inter': [fields]}} "
                               "or {'inter': '*'} (other files' keys beside it)")
        for suffix, left_out in (unload_col or {}).items():
            if left_out and load_col.get(suffix) not in (None, "*"):
                given = "" if "load_col" in self.external_config_dict else " (the default)"
                raise UnlearnError(f"unload_col {unload_col!r}: load_col {load_col!r}{given} lists the {suffix} file's "
                                   f"fields too, and RecBole takes one of them a file: give load_col "
                                   f"{{'{suffix}': '*'}} (or None) with unload_col, or leave the fields out of load_col")

    # --- helpers -----------------------------------------------------------------------
    def other_models_settings(self) -> List[str]:
        """The user's settings (``external_config_dict``) that another RecBole model's YAML
        declares and this model's does not (nor RecBole's overall or dataset YAML): this model
        never reads them (``--model=SASRec --num_layers=5``, GRU4Rec's key; SASRec's is
        ``n_layers``), sorted."""
        return unread_model_settings(self["model"], self.external_config_dict)

    @property
    def methods(self) -> List[str]:
        return method_names(self["unlearn_method"])

    def method_defaults(self, method: str) -> Dict[str, object]:
        """The keys of ``properties/method/<method>.yaml``."""
        path = property_file("method", f"{method}.yaml")
        return _read_yaml(path, self.yaml_loader) if path else {}

    def for_method(self, method: str) -> "UnlearnConfig":
        """A copy of this config with ``properties/method/<method>.yaml`` applied to every key
        the user did not set, nor a ``<name>_profile`` (so several methods in one run keep their own defaults). A sharded
        method whose affected shards forget with an approximate method
        (``shard_unlearning: <name>``) also gets ``properties/method/<name>.yaml``."""
        defaults = self.method_defaults(method)
        step = self.external_config_dict.get("shard_unlearning", defaults.get("shard_unlearning"))
        if step and step not in ("retrain", method):
            defaults = dict(self.method_defaults(str(step)), **defaults)
        values = {k: v for k, v in defaults.items()
                  if k not in self.external_config_dict and k not in getattr(self, "profile_keys", ())}
        clone = self.override(dict(values, unlearn_method=method))
        check_values(clone.final_config_dict, defaults)
        clone.method = method
        clone.method_keys = sorted(defaults)
        return clone

    def override(self, values: Dict[str, object]) -> "UnlearnConfig":
        """A copy of this config with ``values`` replacing final settings (e.g. a short
        pretraining run); this config is unchanged."""
        clone = copy.copy(self)
        clone.final_config_dict = dict(self.final_config_dict)
        clone.final_config_dict.update(values)
        return clone

    def saved_config_dict(self) -> Dict[str, object]:
        """What a later process needs to rebuild this config exactly: the user's own keys, the
        method's YAML defaults as resolved, and ``data_path`` (and a given ``results_dir``) made absolute."""
        # keep_previous_version: a run's retention choice, never recorded (a folder that kept it kept
        # the version from before every later forget)
        skip = {"model", "dataset", "forget", "model_dir", "config_files", "benchmark", "keep_previous_version"}
        out = {k: _jsonable(v) for k, v in self.external_config_dict.items() if k not in skip}
        method = getattr(self, "method", None)
        if method:
            out["unlearn_method"] = method
            for key in getattr(self, "method_keys", self.method_defaults(method)):
                out[key] = _jsonable(self[key])
        # every fit, aggregate and forget setting as resolved, so that a later default (a new
        # SRUGA rate, say) never changes how a saved model forgets
        for key, value in settings_of(self.settings(), *METHOD_PHASES).items():
            out.setdefault(key, value)
        # RecBole stores <data_path>/<dataset> in data_path; save the parent, absolute.
        out["data_path"] = os.path.abspath(os.path.dirname(os.path.normpath(self["data_path"])))
        if isinstance(out.get("results_dir"), str):  # the training run's, not a later run's working directory
            out["results_dir"] = os.path.abspath(out["results_dir"])
        return out

    def settings(self, extra_keys: Iterable[str] = ()) -> Dict[str, object]:
        """Every recorded setting (``recorded`` in ``config/keys.py``), JSON-serialisable (for
        ``results.json``)."""
        out: Dict[str, object] = {}
        for key in sorted(self.final_config_dict):
            if not is_recorded(key):
                continue
            value = self.final_config_dict[key]
            if key == "unlearn_method":  # a list (API) or a comma string (CLI): recorded as the CLI's
                value = ",".join(method_names(value))
            out[key] = _jsonable(value)
        for key in extra_keys:
            out[key] = _jsonable(self[key])
        return out


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)
