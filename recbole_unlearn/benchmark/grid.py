"""The leaderboard grid: models x datasets x method variants, read from one YAML file.

A grid file::

    models: [GRU4Rec, SASRec, BERT4Rec]
    datasets: [beauty, video]
    output_dir: results/leaderboard/my-grid   # one folder per (model, dataset) cell below it (default:
                                        # results/leaderboard/<this file's name without .yaml>);
                                        # one grid file per folder (another is refused)
    baseline: True                      # add RecBole's own pipeline as a row
    config:                             # settings shared by every cell (any config key; another
                                        # RecBole model's key only in the cells of models that read it)
      epochs: 5
      n_shards: 8
    methods:                            # label: unlearning settings of that row
      retrain: {}
      sisa: {}
      sru-ced: {unlearn_method: sru, extra_deletion: ced}
    targets:                            # optional: what each unlearn_method's rows must reach,
      sru: {ndcg_at_least: 0.9, forget_at_most: 1.0}          # as fractions of Retrain's D_rem
      sruga: {ndcg_at_least: 0.85, forget_at_most: 1.0, seconds_at_most: 0.02}  # NDCG@10, forget
                                        # Hit@10 and seconds; the report says which were met
    extends: converged-sasrec.yaml      # optional: start from another grid file (a path relative
                                        # to this file): this file's keys replace the base's, except
                                        # 'config' and 'targets', which merge key by key (a key set
                                        # to null here drops the base's value; the base's own nulls,
                                        # e.g. agg_max_samples: ~, are kept)
    reuse_cells_from: results/leaderboard/converged-sasrec   # optional: another grid's output_dir
                                        # whose cells of the same name lend this grid their original
                                        # model, audit references and Retrain row (see runner.py)

A label's ``unlearn_method`` defaults to the label. Per-method keys may only be fit, aggregate,
forget or runtime keys (``config/keys.py``: shards, partitioner, aggregator, extra deletion,
SRUGA weights, workers, ...): every data key (the data, the forget set, the original model) is shared, because
every method of a cell reuses the same trained original model and the same forget set.
"""
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import yaml
from recbole.config import Config

from recbole_unlearn.benchmark.report import TARGET_KINDS
from recbole_unlearn.config.keys import is_variant_key
from recbole_unlearn.unlearn import METHODS
from recbole_unlearn.utils.errors import UnlearnError, yaml_problem
from recbole_unlearn.utils.trial_write import dangling_link_problem
from recbole_unlearn.utils.yaml_keys import UniqueKeys

GRID_KEYS = {"models", "datasets", "output_dir", "baseline", "config", "methods", "targets", "reuse_cells_from"}
EXTENDS = "extends"
#: top-level keys whose mappings an extending grid merges into its base's, key by key
MERGED_KEYS = ("config", "targets")
REFERENCE = "retrain"


class _GridLoader(UniqueKeys, yaml.SafeLoader):
    """Safe YAML (no Python objects) that reads ``1e-3`` as a float, as RecBole's loader does,
    and refuses a key written twice (a second row of the same label replaced the first)."""


_GridLoader.yaml_implicit_resolvers = {
    key: list(value) for key, value in Config._build_yaml_loader(None).yaml_implicit_resolvers.items()
}


@dataclass
class Variant:
    """One row of a cell: ``label`` in the tables, ``method`` from the registry, ``overrides``."""

    label: str
    method: str
    overrides: Dict[str, object] = field(default_factory=dict)


@dataclass
class Cell:
    """One (model, dataset) pair: it trains one original model and runs every variant."""

    model: str
    dataset: str
    variants: List[Variant]

    @property
    def name(self) -> str:
        return f"{self.model}-{self.dataset}"


@dataclass
class Grid:
    cells: List[Cell]
    config: Dict[str, object]
    output_dir: str
    baseline: bool
    source: str = ""
    #: ``{unlearn_method: {target kind: fraction of Retrain's value}}`` (see :data:`TARGET_KINDS`)
    targets: Dict[str, Dict[str, float]] = field(default_factory=dict)
    #: another grid's ``output_dir`` whose cells lend their original, references and Retrain row
    reuse_cells_from: Optional[str] = None
    #: whether ``output_dir`` is the default (the grid file sets none)
    default_output_dir: bool = False
    #: the keys the grid file's own ``config`` sets (``None``: all of ``config``); the others come
    #: from the grid files it ``extends``, shared so that the cells are the same ones
    own_config_keys: Optional[List[str]] = None


def _string_list(grid: dict, key: str, path: str) -> List[str]:
    value = grid.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UnlearnError(f"grid {path}: '{key}' must be a non-empty list of names")
    if len(set(value)) != len(value):
        raise UnlearnError(f"grid {path}: '{key}' lists a name twice")
    return value


#: runtime keys a grid row may not set: the runner gives every row of a cell the same forget set
#: and results folder, and each row its own model folder
RUNNER_KEYS = ("forget", "model_dir", "results_dir", "checkpoint_dir")
#: run settings a grid decides for every cell, with why (a grid's ``config`` took them and ignored
#: them: ``results_dir`` then reached the rows' model folders, where later request runs wrote)
GRID_DECIDES = {
    "results_dir": "a grid writes every cell's rows and leaderboard under output_dir",
    "save_model": "a grid keeps each cell's original.pth and every row's model folder, to resume and to serve "
                  "requests (delete the output folder when done with it)",
    "include_retrain": "a grid trains Retrain in every cell, the reference its rows are compared with",
}
#: a row label names files (``rows/<label>.json``): within a file name's 255 bytes
MAX_LABEL_BYTES = 200


def _variants(methods, path: str) -> List[Variant]:
    if isinstance(methods, list):  # [retrain, sisa] is shorthand for {retrain: {}, sisa: {}}
        if not all(isinstance(m, str) for m in methods):
            raise UnlearnError(f"grid {path}: 'methods' must map labels to settings")
        twice = sorted({m for m in methods if methods.count(m) > 1})
        if twice:  # one row ran, without a word
            raise UnlearnError(f"grid {path}: method '{twice[0]}' is written twice in 'methods'")
        methods = {m: {} for m in methods}
    if not isinstance(methods, dict) or not methods:
        raise UnlearnError(f"grid {path}: 'methods' must map labels to settings (at least one)")
    variants = []
    for label, overrides in methods.items():
        if overrides is not None and not isinstance(overrides, dict):  # dict() raised a TypeError traceback
            raise UnlearnError(f"grid {path}: method {label!r} must map settings to values (got "
                               f"{type(overrides).__name__} {overrides!r}); write {{}} or nothing for none")
        overrides = dict(overrides or {})
        if not isinstance(label, str) or not label or any(c in label for c in "/|") or \
                not label.isprintable() or len(label.encode("utf-8")) > MAX_LABEL_BYTES or \
                label in ("original", "recbole", ".", ".."):  # a row's files are models/<label>, rows/<label>.json
            raise UnlearnError(f"grid {path}: method label {label!r} is not allowed (a name of printable characters "
                               f"without '/' or '|', at most {MAX_LABEL_BYTES} bytes, other than original, recbole, "
                               ". and ..)")
        decided = sorted(k for k in overrides if k in GRID_DECIDES and k not in RUNNER_KEYS)
        if decided:  # taken and ignored, unsaid, and recorded in the row's files (r10round4 probe)
            raise UnlearnError(f"grid {path}: method '{label}' sets '{decided[0]}': {GRID_DECIDES[decided[0]]}")
        if "busy_cpu_share" in overrides:  # recorded, while the report read the config's (r12keys probe)
            raise UnlearnError(f"grid {path}: method '{label}' sets 'busy_cpu_share': a grid names busy rows by its "
                               "'config' value; set it there")
        owned = sorted(k for k in overrides if k in RUNNER_KEYS)
        if owned:  # recorded in the row file, yet the runner sets them per cell
            raise UnlearnError(f"grid {path}: method '{label}' sets {', '.join(repr(k) for k in owned)}, which the "
                               "runner sets for every row (the forget set is the cell's: put a request file under "
                               "'config'; a row's model folder is <cell>/models/<label>)")
        bad = sorted(k for k in overrides if not is_variant_key(k))
        if bad:
            raise UnlearnError(
                f"grid {path}: method '{label}' sets {', '.join(repr(k) for k in bad)}; per-method keys "
                "can only be unlearning settings (put shared settings under 'config')"
            )
        method = str(overrides.pop("unlearn_method", label))
        METHODS.get(method)  # unknown method -> one clear line
        if label == REFERENCE and method != REFERENCE:
            raise UnlearnError(f"grid {path}: the row '{REFERENCE}' is every speedup's reference: it must run "
                               f"unlearn_method {REFERENCE}, not {method!r} (give that row another label)")
        variants.append(Variant(label, method, overrides))
    if not any(v.label == REFERENCE for v in variants):
        variants.insert(0, Variant(REFERENCE, REFERENCE))  # the reference of every speedup
    else:
        variants.sort(key=lambda v: v.label != REFERENCE)
    return variants


def _targets(targets, path: str) -> Dict[str, Dict[str, float]]:
    """Validate the optional ``targets`` mapping: known methods, known kinds, positive numbers."""
    if targets is None:
        return {}
    if not isinstance(targets, dict):
        raise UnlearnError(f"grid {path}: 'targets' must map unlearning methods to targets")
    out = {}
    for method, spec in targets.items():
        METHODS.get(method)
        if not isinstance(spec, dict) or not spec:
            raise UnlearnError(f"grid {path}: targets of '{method}' must map target kinds to fractions "
                               f"({', '.join(TARGET_KINDS)})")
        for kind, value in spec.items():
            if kind not in TARGET_KINDS:
                raise UnlearnError(f"grid {path}: unknown target '{kind}' for '{method}'; choose from "
                                   f"{', '.join(TARGET_KINDS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise UnlearnError(f"grid {path}: target '{kind}' of '{method}' must be a finite positive number "
                                   f"(a fraction of Retrain's), got {value!r}")
        out[method] = {kind: float(value) for kind, value in spec.items()}
    return out


def expand_grid(grid: dict, path: str = "<dict>") -> Grid:
    """Validate a grid document and expand it into cells (models outer, datasets inner)."""
    if not isinstance(grid, dict):
        raise UnlearnError(f"grid {path}: expected a YAML mapping")
    if EXTENDS in grid:
        raise UnlearnError(f"grid {path}: '{EXTENDS}' names a grid file, so it is read by load_grid only")
    unknown = sorted(set(grid) - GRID_KEYS)
    if unknown:
        raise UnlearnError(f"grid {path}: unknown key{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(repr(k) for k in unknown)}; allowed: {', '.join(sorted(GRID_KEYS))}")
    models = _string_list(grid, "models", path)
    datasets = _string_list(grid, "datasets", path)
    config = grid.get("config") or {}
    if not isinstance(config, dict):
        raise UnlearnError(f"grid {path}: 'config' must be a mapping of config keys")
    for key in ("model", "dataset", "unlearn_method", "model_dir", "benchmark", "config_files"):
        if key in config:
            raise UnlearnError(f"grid {path}: 'config' cannot set '{key}' (the grid decides it)")
    if "verify" in config:  # ran the grid and was recorded in every model folder's manifest
        if config["verify"] is not None and config["verify"] is not False:
            raise UnlearnError(f"grid {path}: 'config' cannot set 'verify': it checks a saved model folder "
                               "(--model_dir=<folder> --verify=True), not a grid")
        config = {key: value for key, value in config.items() if key != "verify"}  # (False: not recorded)
    for key, why in GRID_DECIDES.items():  # each was taken and ignored, unsaid (r10paths probe)
        if key in config:
            raise UnlearnError(f"grid {path}: 'config' cannot set '{key}': {why}")
    variants = _variants(grid.get("methods"), path)
    # a folder per grid file by default: two grids sharing one would be refused (runner.claim_output_dir)
    output_dir = grid.get("output_dir", os.path.join("results", "leaderboard", _stem(path)))
    if not isinstance(output_dir, str) or not output_dir:
        raise UnlearnError(f"grid {path}: 'output_dir' must be a folder path")
    dangling = dangling_link_problem(output_dir)
    if dangling:  # a bare [Errno 2], exit 1 (r12round3 probe)
        raise UnlearnError(f"grid {path}: output_dir {output_dir}: {dangling}")
    baseline = grid.get("baseline", True)
    if not isinstance(baseline, bool):
        raise UnlearnError(f"grid {path}: 'baseline' must be True or False")
    reuse = grid.get("reuse_cells_from")
    if reuse is not None and (not isinstance(reuse, str) or not reuse):
        raise UnlearnError(f"grid {path}: 'reuse_cells_from' must be a folder path (another grid's output_dir)")
    if reuse is not None and os.path.normpath(reuse) == os.path.normpath(output_dir):
        raise UnlearnError(f"grid {path}: 'reuse_cells_from' is this grid's own output_dir")
    cells = [Cell(m, d, variants) for m in models for d in datasets]
    return Grid(cells, dict(config), output_dir, baseline, path, _targets(grid.get("targets"), path), reuse,
                "output_dir" not in grid)


def _stem(path: str) -> str:
    """The grid file's name without ``.yaml`` / ``.yml`` (``grid`` for a grid given as a dict)."""
    name = os.path.basename(path) or "grid"
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _read_document(path: str) -> dict:
    if not os.path.isfile(path):
        raise UnlearnError(f"grid file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            document = yaml.load(f, Loader=_GridLoader)
    except yaml.YAMLError as e:
        raise UnlearnError(f"grid {path} is not valid YAML{yaml_problem(e)}") from None
    except UnicodeDecodeError:  # a traceback (a config file's bytes got this line already)
        raise UnlearnError(f"grid {path} is not UTF-8 text") from None
    if not isinstance(document, dict):
        raise UnlearnError(f"grid {path}: expected a YAML mapping")
    return document


def _merged(base: dict, child: dict, path: str) -> dict:
    """``child`` over ``base``: top-level keys replace, :data:`MERGED_KEYS` merge key by key
    (a key set to ``None`` in ``child`` drops the base's value)."""
    document = dict(base)
    for key, value in child.items():
        if key in MERGED_KEYS and value is not None:
            inherited = base.get(key) or {}
            if not isinstance(value, dict) or not isinstance(inherited, dict):
                raise UnlearnError(f"grid {path}: '{key}' must be a mapping to merge with the base grid's")
            value = dict(inherited, **value)
            for k in [k for k, v in value.items() if v is None and k in child[key]]:
                del value[k]  # a null written here drops the base's value; the base's own nulls stay
        document[key] = value
    return document


def _resolve(path: str, seen: List[str]) -> dict:
    """The document of grid file ``path`` with its ``extends`` chain applied (cycles refused)."""
    real = os.path.realpath(path)
    if real in seen:
        raise UnlearnError(f"grid {path}: '{EXTENDS}' goes round in a circle ({' -> '.join(seen + [real])})")
    document = _read_document(path)
    base_name = document.pop(EXTENDS, None)
    if base_name is None:
        return document
    if not isinstance(base_name, str) or not base_name:
        raise UnlearnError(f"grid {path}: '{EXTENDS}' must name a grid file")
    base_path = os.path.join(os.path.dirname(path), base_name)
    return _merged(_resolve(base_path, seen + [real]), document, path)


def load_grid(path: str) -> Grid:
    """Read and expand a grid YAML file, after the grid files it ``extends`` (one clear error for
    a missing or malformed file)."""
    grid = expand_grid(_resolve(path, []), path)
    own = _read_document(path).get("config")
    # a key set to null drops an inherited value: it sets nothing
    grid.own_config_keys = sorted(k for k, v in own.items() if v is not None) if isinstance(own, dict) else []
    return grid
