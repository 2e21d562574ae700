"""Every recbole_unlearn config key, declared once: kind, range, phase (the default is the
key's value in ``properties/``).

From this one table come

* validation (:func:`check_values`): every declared key a config holds is checked against its
  kind and range, with a one-line ``config key '<key>' must be ...`` error;
* the keys a saved model lets a later process change (:func:`phase_of` ``"runtime"``);
* the keys a leaderboard row may vary (:data:`VARIANT_PHASES`: fit, aggregate, forget and
  runtime keys);
* the keys that do not change what a sharded method's shards learn (aggregate, forget and
  runtime keys), so that rows differing only in those share one shard fit;
* the settings written to ``results.json`` (every key but those declared ``recorded=False``);
* the fingerprint of a leaderboard cell (its ``data``-phase settings).

Phases: ``data`` (the data, the forget set and the original model: every method of a leaderboard
cell shares them; a key not declared here, e.g. RecBole's ``hidden_size``, is a data key),
``fit`` (how a method trains its deployable model), ``aggregate`` (how a sharded model combines
its frozen sub-models: the aggregator and its training), ``forget`` (how it forgets), ``runtime``
(where and how fast it runs; the numbers depend on it at most by float rounding: ``eval_batch_size``
batches SCIF's and Kookmin's sums, the aggregators' representation cache and partition
representations, and a thread count rounds training, which is why a slice stage records its own).

A module that brings its own keys (an approximate method with ``<name>_*`` settings in
``properties/method/<name>.yaml``) declares them with :func:`declare` next to its code, so a
new method stays one file.
"""
import functools
import math
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import yaml

from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.paths import properties_dir

PHASES = ("data", "fit", "aggregate", "forget", "runtime")
#: phases a leaderboard row (method variant) may set; data keys are shared by the whole cell.
VARIANT_PHASES = ("fit", "aggregate", "forget", "runtime")
#: phases that a row's numbers depend on beyond its cell's data settings.
METHOD_PHASES = ("fit", "aggregate", "forget")
#: phases that decide what a sharded method's shard sub-models learn in ``fit`` (the others,
#: aggregate, forget and runtime, never do).
SHARD_PHASES = ("data", "fit")


@dataclass(frozen=True)
class Key:
    """One config key. ``kind``: ``int``, ``number``, ``bool``, ``choice``, ``int_list``,
    ``str`` (a path), ``name`` (checked by the registry that holds the names), ``methods`` (a name,
    comma-separated names or a list) or ``any`` (not checked here; RecBole's own keys). ``low``/``high``: bounds, exclusive where ``open_low``/``open_high``;
    ``optional``: ``~`` (None) is allowed; ``recorded``: written to ``results.json``."""

    phase: str
    kind: str = "any"
    low: Optional[float] = None
    high: Optional[float] = None
    open_low: bool = False
    open_high: bool = False
    optional: bool = False
    choices: Tuple[str, ...] = ()
    recorded: bool = True
    any_case: bool = False  # a choice matched in any case (RecBole lower-cases ``learner``)

    def expectation(self) -> str:
        """What a valid value is, in words (``a positive integer``, ``in (0, 1]``, ...)."""
        if self.kind == "bool":
            text = "True or False"
        elif self.kind == "choice":
            text = "one of " + ", ".join(self.choices) + (" (any case)" if self.any_case else "")
        elif self.kind == "int_list":
            text = "a list of positive integers"
        elif self.kind == "str":
            text = "a non-empty string"
        elif self.kind == "name":
            text = "a name"
        elif self.kind == "methods":
            text = "a method name or a list of them"
        elif self.kind == "metric":
            text = "a full-ranking metric at a cut-off, one of " + ", ".join(f"{m}@k" for m in CHECK_METRICS)
        elif self.kind == "metric_names":
            text = "a list of RecBole's full-ranking metrics, each one of " + ", ".join(ranking_metrics()) + \
                " (any case)"
        elif self.kind == "mapping":
            text = "a mapping (key: value)"
        elif self.kind == "clip":
            text = ("a mapping of torch's clip_grad_norm_ arguments (" + ", ".join(sorted(CLIP_KEYS)) +
                    ") with a positive max_norm (and norm_type)")
        elif self.kind in ("int", "number"):
            noun = "integer" if self.kind == "int" else "number"
            if self.high is not None:
                text = (f"in {'(' if self.open_low else '['}{_num(self.low)}, "
                        f"{_num(self.high)}{')' if self.open_high else ']'}")
            elif self.low == 0 and self.open_low or self.low == 1 and self.kind == "int":
                text = f"a positive {noun}"
            elif self.low == 0:
                text = f"a non-negative {noun}"
            elif self.low is not None:
                text = f"an {noun} >= {_num(self.low)}" if noun == "integer" else f"a number >= {_num(self.low)}"
            else:
                text = f"an {noun}" if noun == "integer" else "a number"
        else:
            text = "anything"
        return text + (" or ~" if self.optional else "")

    def valid(self, value) -> bool:
        if value is None:
            return self.optional or self.kind == "any"
        if self.kind == "any":
            return True
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and (value.lower() if self.any_case else value) in self.choices
        if self.kind == "str":
            return isinstance(value, str) and bool(value)
        if self.kind == "name":
            return True
        if self.kind == "methods":
            items = value if isinstance(value, (list, tuple)) else [value]
            return bool(items) and all(isinstance(v, str) and v.strip() for v in items)
        if self.kind == "metric":
            return parse_metric(value) is not None
        if self.kind == "metric_names":
            return isinstance(value, list) and bool(value) and all(
                isinstance(v, str) and v.lower() in ranking_metrics() for v in value)
        if self.kind == "mapping":
            return isinstance(value, dict)
        if self.kind == "clip":  # torch.nn.utils.clip_grad_norm_'s keyword arguments
            return isinstance(value, dict) and "max_norm" in value and set(value) <= CLIP_KEYS and all(
                isinstance(value[k], (int, float)) and not isinstance(value[k], bool) and math.isfinite(value[k])
                and value[k] > 0 for k in ("max_norm", "norm_type") if k in value)
        if self.kind == "int_list":
            return isinstance(value, list) and bool(value) and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and (not isinstance(value, int) or abs(value) > INT_MAX):
            return False
        if not math.isfinite(value) or abs(value) > FLOAT32_MAX:  # 1e400 is inf; NaN passes every bound
            return False
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.open_high and value == self.high)):
            return False
        return True


#: the largest float32: a number setting beyond it overflows the tensors it reaches (a learning
#: rate of 1e300 ended a run with "value cannot be converted to type float without overflow")
FLOAT32_MAX = 3.4028234663852886e38
#: the largest int32: an integer setting beyond it overflowed where it reached C code (a batch size
#: of 1e20 in ``islice``, a thread count in torch, an attention size in an allocation)
INT_MAX = 2 ** 31 - 1

#: the keyword arguments ``clip_grad_norm`` may give ``torch.nn.utils.clip_grad_norm_``
CLIP_KEYS = {"max_norm", "norm_type", "error_if_nonfinite", "foreach"}

#: metrics a check may name (``<metric>@<k>``, RecBole's names in lower case).
CHECK_METRICS = ("hit", "ndcg", "recall", "mrr", "precision")


@functools.lru_cache(maxsize=None)
def ranking_metrics() -> Tuple[str, ...]:
    """RecBole's ranking metrics a full-ranking evaluation can compute (lower case): every
    registered one except those that need dataset-wide item counts (ItemCoverage, GiniIndex,
    AveragePopularity, TailPercentage ended runs in ``AttributeError`` after they started)."""
    from recbole.evaluator.register import metric_types, metrics_dict
    from recbole.utils import EvaluatorType

    return tuple(sorted(name for name, cls in metrics_dict.items() if metric_types.get(name) == EvaluatorType.RANKING
                        and not any(need.startswith("data.") for need in getattr(cls, "metric_need", []))))


def cutoff_of(value) -> Optional[int]:
    """The ``k`` of any ``<metric>@<k>`` (``"MAP@10"`` -> 10); ``None`` if ``value`` has none."""
    if not isinstance(value, str) or value.count("@") != 1:
        return None
    k = value.split("@")[1]
    return int(k) if k.isdigit() else None


def parse_metric(value) -> Optional[Tuple[str, int]]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``None`` if ``value`` is not such a metric."""
    if not isinstance(value, str) or value.count("@") != 1:
        return None
    name, k = value.lower().split("@")
    if name not in CHECK_METRICS or not k.isdigit() or int(k) < 1:
        return None
    return name, int(k)


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# Constructors for the table below and for modules that declare their own keys.
def int_key(phase, low=1, optional=False, **kw):
    return Key(phase, "int", low=low, optional=optional, **kw)


def number_key(phase, low=0, open_low=True, high=None, open_high=False, optional=False, **kw):
    return Key(phase, "number", low=low, open_low=open_low, high=high, open_high=open_high, optional=optional, **kw)


def flag_key(phase, **kw):
    return Key(phase, "bool", **kw)


def choice_key(phase, *choices, any_case=False):
    return Key(phase, "choice", choices=tuple(choices), any_case=any_case)


def name_key(phase, optional=False, **kw):
    """A name looked up in a registry (partitioner, aggregator, ...): the registry says which
    names exist (``unknown partitioner '0'; choose one of: ...``), so any value passes here."""
    return Key(phase, "name", optional=optional, **kw)


def path_key(phase, optional=False, **kw):
    """A file or folder path (or an address): a non-empty string."""
    return Key(phase, "str", optional=optional, **kw)


def _runtime_recbole():
    return Key("runtime", recorded=False)


#: the most torch threads a shard trains with (``shard_num_threads``) and a slice stage's record may
#: hold: a larger count was accepted, and the folder saved with it then refused every request
MAX_THREADS = 1024

KEYS: Dict[str, Key] = {
    # --- what to run -------------------------------------------------------------------
    "model": name_key("data"),
    "dataset": name_key("data"),
    "unlearn_method": Key("fit", "methods"),
    "include_retrain": flag_key("runtime"),
    "results_dir": path_key("runtime", recorded=False),
    "save_model": flag_key("runtime", recorded=False),
    "detect_anomaly": flag_key("runtime"),
    # --- forget set ----------------------------------------------------------------------
    "forget": path_key("runtime", optional=True),
    "forget_protocol": name_key("data"),
    "forget_user_ratio": number_key("data", high=1),
    "forget_item_ratio": number_key("data", high=1),
    "forget_skip_first": int_key("data", low=0),
    "forget_seed": int_key("data", low=0),
    "sru_forget_ratio": number_key("data", high=1),
    # --- sharded models ------------------------------------------------------------------
    "n_shards": int_key("fit"),
    "n_slices": int_key("fit"),
    "slice_epochs": int_key("fit", optional=True),
    "partitioner": name_key("fit"),
    "partition_seed": int_key("fit", low=0),
    "partition_balance": choice_key("fit", "users", "interactions"),
    "aggregator": name_key("aggregate"),
    "agg_epochs": int_key("aggregate"),
    "agg_learning_rate": number_key("aggregate"),
    "agg_max_samples": int_key("aggregate", optional=True),
    "validate_submodels": flag_key("fit"),
    "agg_cache": flag_key("aggregate"),
    "agg_cache_max_mb": number_key("aggregate"),
    "agg_hidden_size": int_key("aggregate", optional=True),
    "agg_attention_size": int_key("aggregate"),
    "partition_pretrain_epochs": int_key("fit"),
    "partition_iterations": int_key("fit"),
    "extra_deletion": name_key("forget"),
    "del_num": int_key("forget", low=0),
    "model_dir": path_key("runtime", optional=True, recorded=False),
    "shard_unlearning": name_key("forget"),
    "redraw_partition": flag_key("forget"),
    # --- repeated requests, audit -----------------------------------------------------------
    "request_steps": int_key("data"),
    "audit": flag_key("data"),
    "audit_references": int_key("data", low=2),
    "audit_bootstrap": int_key("data", low=100),
    "audit_min_users": int_key("data", low=2),
    "audit_shuffles": int_key("data"),
    # --- deletion requests for a saved model ----------------------------------------------
    "max_request_lines": int_key("runtime"),
    "max_request_line_bytes": int_key("runtime"),
    "max_batch": int_key("runtime"),
    "max_wait_s": number_key("runtime", open_low=False),
    "watch_poll_s": number_key("runtime", high=86400),  # a day; time.sleep overflowed from 1e10 s
    "watch_settle_s": number_key("runtime", open_low=False),
    "watch_idle_s": number_key("runtime", open_low=False, optional=True),
    "processed_request_files": choice_key("runtime", "keep", "delete"),
    "lock_timeout_s": number_key("runtime", open_low=False),
    "keep_previous_version": flag_key("runtime"),
    "busy_cpu_share": number_key("runtime", open_low=False, high=1),
    "preflight_users": int_key("runtime"),
    "preflight_topk_agreement": number_key("runtime", open_low=False, high=1),
    # --- parallel shard training ----------------------------------------------------------
    "num_workers": int_key("runtime"),
    "ray_address": path_key("runtime", optional=True),
    "ray_connect_timeout_s": number_key("runtime", high=86400),  # a day; the socket's timeout overflowed from 1e10 s
    "ray_cpus_per_shard": number_key("runtime"),
    "ray_gpus_per_shard": number_key("runtime", open_low=False),
    "shard_num_threads": int_key("runtime", optional=True, high=MAX_THREADS),
    "tensorboard": flag_key("runtime"),
    # --- metrics -------------------------------------------------------------------------------
    "utility_metrics": Key("data", "metric_names"),
    "utility_topk": Key("data", "int_list"),
    "forget_topk": Key("data", "int_list"),
    "sru_inference_topk": Key("data", "int_list"),
    "sru_inference_neg_num": int_key("data"),
    # --- RecBole settings we check (the rest of RecBole's keys are data keys, unchecked; a
    # model that cannot be built from them is refused before a run writes anything) ---------
    "MAX_ITEM_LIST_LENGTH": int_key("data"),
    "epochs": int_key("data"),
    "train_batch_size": int_key("data"),
    "learning_rate": number_key("data"),
    "weight_decay": number_key("data", open_low=False),
    "seed": int_key("data", low=0),
    "stopping_step": int_key("data"),
    "eval_step": int_key("data", low=0),  # 0: no validation (RecBole trains every epoch and keeps the last)
    "metrics": Key("data", "metric_names"),
    "valid_metric": Key("data", "str"),  # RecBole checks it is one of `metrics` at a cut-off of `topk`
    "topk": Key("data", "int_list"),
    "clip_grad_norm": Key("data", "clip", optional=True),
    # RecBole's optimisers; another name trained with Adam (a warning in the log) and was recorded as given
    "learner": choice_key("data", "adam", "adamw", "sgd", "adagrad", "rmsprop", "sparse_adam", any_case=True),
    "enable_amp": flag_key("data"),
    "enable_scaler": flag_key("data"),
    "mask_ratio": number_key("data", high=1),  # BERT4Rec's share of masked items
    # the sequential models' sizes and dropout rates (GRU4Rec, SASRec, BERT4Rec, ...)
    **{key: int_key("data") for key in ("hidden_size", "inner_size", "embedding_size", "n_layers", "n_heads",
                                        "num_layers")},
    **{key: number_key("data", open_low=False, high=1, open_high=True)
       for key in ("dropout_prob", "hidden_dropout_prob", "attn_dropout_prob")},
    # a layer norm's epsilon at or below 0 divides by zero: the loss became NaN mid-training
    "layer_norm_eps": number_key("data"),
    "eval_batch_size": int_key("runtime"),
    "show_progress": flag_key("runtime"),
    "use_gpu": flag_key("runtime", recorded=False),
    "gpu_id": _runtime_recbole(),
    "state": choice_key("runtime", "info", "debug", "warning", "error", "critical", any_case=True),  # RecBole took any other as INFO
    "worker": int_key("runtime", low=0, recorded=False),
    "loss_decimal_place": int_key("runtime", low=0, recorded=False),
    # every metric, validation scores included, is rounded to it: fewer places round scores into
    # ties (RecBole keeps the later epoch) and rises of forget Hit@10 out of sight
    "metric_decimal_place": int_key("data", low=4),
    # RecBole's keys that say where things are written or how they are logged, and the field
    # names its batch transform derives from ITEM_ID_FIELD: never part of the numbers.
    **{key: _runtime_recbole() for key in (
        "checkpoint_dir", "device", "log_wandb", "wandb_project", "save_dataset", "dataset_save_path",
        "save_dataloaders", "dataloaders_save_path", "local_rank", "world_size", "offset", "ip", "port",
        "nproc", "single_spec", "config_files",
        "MASK_INDEX", "MASK_ITEM_SEQ", "POS_ITEMS", "NEG_ITEMS")},
    # where the dataset is read from: a data key (another folder is other data), not recorded
    # (the folder differs between machines).
    "data_path": Key("data", recorded=False),
}


def declare(keys: Dict[str, Key]) -> None:
    """Add a module's own keys to the table (e.g. an approximate method's ``<name>_*``
    settings, whose defaults are in ``properties/method/<name>.yaml``). Declaring a key twice
    with a different spec is a programming error."""
    for name, spec in keys.items():
        if spec.phase not in PHASES:
            raise ValueError(f"config key {name}: unknown phase {spec.phase!r}")
        if name in KEYS and KEYS[name] != spec:
            raise ValueError(f"config key {name} is declared twice")
        KEYS[name] = spec


#: settings recorded now that were runtime (unrecorded) keys before: a saved folder whose
#: recorded settings lack one kept it in its ``config`` as a display choice, and loads with today's
#: default (``metric_decimal_place`` below today's minimum made such a folder unservable)
FORMERLY_RUNTIME_KEYS = ("metric_decimal_place",)


def phase_of(key: str) -> str:
    """The phase of ``key``; keys not declared here (RecBole's) are ``data`` keys."""
    spec = KEYS.get(key)
    return spec.phase if spec else "data"


def unused_method_keys(given: Iterable[str], used: Iterable[str]) -> List[str]:
    """The fit, aggregate and forget keys of ``given`` (the user's) not in ``used`` (what the
    run's methods use: ``settings_used``), sorted: recorded, they would read as if they had
    mattered (a grid row and a run refuse them)."""
    used = set(used)
    return sorted(k for k in given if phase_of(k) in METHOD_PHASES and k not in used)


def settings_of(settings: Dict[str, object], *phases: str) -> Dict[str, object]:
    """The entries of ``settings`` (a config's ``settings()``) whose keys are of ``phases``."""
    return {k: v for k, v in settings.items() if phase_of(k) in phases}


def is_recorded(key: str) -> bool:
    """Whether ``key`` belongs in the settings written to ``results.json``."""
    spec = KEYS.get(key)
    return spec is None or spec.recorded


def is_variant_key(key: str) -> bool:
    """Whether a leaderboard row may set ``key`` (fit, forget and runtime keys)."""
    return phase_of(key) in VARIANT_PHASES


def check_value(key: str, value) -> None:
    """Raise a one-line :class:`UnlearnError` if ``value`` is not valid for declared ``key``."""
    spec = KEYS.get(key)
    if spec is not None and not spec.valid(value):
        number = spec.kind in ("int", "number") and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)
        limit = ""
        if number and spec.kind == "int" and abs(value) > INT_MAX:
            limit = f" and at most {INT_MAX} (the largest int32)"
        elif number and abs(value) > FLOAT32_MAX:
            limit = " and at most 3.4e38 (the largest float32)"
        raise UnlearnError(f"config key '{key}' must be {spec.expectation()}{limit}, got {value!r}")


def check_values(values: Dict[str, object], keys: Optional[Iterable[str]] = None) -> None:
    """Check every declared key of ``values`` (or only ``keys``) against the table."""
    for key in (values if keys is None else keys):
        if key in values:
            check_value(key, values[key])


def _defaults() -> Dict[str, Tuple[object, str]]:
    """``key -> (default, file)`` from ``properties/overall.yaml`` and ``properties/method/``."""
    out: Dict[str, Tuple[object, str]] = {}
    root = properties_dir()
    files = [os.path.join(root, "overall.yaml")] + sorted(
        os.path.join(root, "method", f) for f in os.listdir(os.path.join(root, "method")) if f.endswith(".yaml"))
    for path in files:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        rel = os.path.relpath(path, root)
        for key, value in data.items():
            out.setdefault(key, (value, rel))
    return out


DOC_INTRO = """# Configuration keys

Generated from `recbole_unlearn/config/keys.py` (the one table of recbole_unlearn's keys) and the
defaults in `properties/`; regenerate with

```bash
python -c "import recbole_unlearn.unlearn; from recbole_unlearn.config.keys import table_markdown; print(table_markdown(), end='')" > docs/config-keys.md
```

(importing `recbole_unlearn.unlearn` first: the methods declare their own keys; a test fails when
this file is out of date). Every key is checked against its valid values when
a config is built (`error: config key '<key>' must be ...`). The phase says what a key may
change: **data** keys (the data, the forget set, the original model) are shared by every row of
a leaderboard cell and make its fingerprint; a row may set **fit** (how a method trains its
deployable model), **aggregate** (how a sharded model combines its shards), **forget** (how it
forgets) and **runtime** keys; rows that differ only in aggregate, forget and runtime keys share
one fit; a saved model (`--model_dir=...`) accepts only runtime keys (and `data_path`; any other
key only with the value it was saved with). RecBole's own keys are data keys, except those that
say where things are written or how they are logged (`state`, `gpu_id`, `log_wandb`, ...: runtime; `device` and `checkpoint_dir`, which a run sets itself, are refused): those listed
here are checked, the others (`transform`, ...) are RecBole's to check, and a run whose model
cannot be built from them is refused with one line before it writes anything. Integers are at
most 2147483647 (the largest int32: larger ones overflowed where they reached C code). The
default shown is the first file that sets a key; a method's own file
(`properties/method/<method>.yaml`) sets some again for that method: SRU's `partitioner: kmeans`,
`aggregator: attention`, `extra_deletion: ced` and `del_num: 1`, RecEraser's `partitioner: inbp`
and `aggregator: receraser`.

"""


def table_markdown() -> str:
    """``docs/config-keys.md``: the table as Markdown (key, valid values, default and the file
    that sets it, phase, whether ``results.json`` records it)."""
    defaults = _defaults()
    lines = ["| key | valid values | default (file) | phase | in results.json |", "|---|---|---|---|---|"]
    for key in sorted(KEYS, key=lambda k: (PHASES.index(KEYS[k].phase), k)):
        spec = KEYS[key]
        if spec.kind == "any" and key not in defaults:
            continue  # RecBole's own runtime keys: nothing of ours to say
        if key in defaults:
            default, source = defaults[key]
            shown = f"`{'~' if default is None else default}` ({source})"
        else:
            shown = "RecBole's (its model or overall YAML)"
        lines.append(f"| `{key}` | {spec.expectation() if spec.kind != 'any' else 'RecBole checks it'} | "
                     f"{shown} | {spec.phase} | {'yes' if spec.recorded else 'no'} |")
    return DOC_INTRO + "\n".join(lines) + "\n"
