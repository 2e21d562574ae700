"""The interface every unlearning method implements, and the registry that names them."""
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import torch

from recbole_unlearn.config.keys import METHOD_PHASES, settings_of
from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.data.extra_deletion import EXTRA_DELETIONS
from recbole_unlearn.data.similarity import SIMILARITY_PARTITION_KEYS, is_similarity_partitioner
from recbole_unlearn.evaluator.suite import EvaluationSuite
from recbole_unlearn.model.aggregators import AGGREGATORS, unread_aggregator_settings
from recbole_unlearn.serving import open_store
from recbole_unlearn.serving.ledger import queued_line
from recbole_unlearn.serving.lock import LOCK, LOCK_PID
from recbole_unlearn.serving.store import is_staging_name
from recbole_unlearn.trainer.approximate import APPROXIMATE, step_keys
from recbole_unlearn.trainer.training import TrainedModel
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.registry import Registry
from recbole_unlearn.utils.trial_write import dangling_link_problem, write_trial


@dataclass
class UnlearnResult:
    """The model state a method produced by forgetting, and what that took.

    Attributes:
        model: a RecBole ``SequentialRecommender`` (``full_sort_predict`` works on it).
        seconds: wall time of the forgetting step alone.
        forget_set: the forget set actually applied (with the method's extra deletions, if any).
        info: method-specific facts for ``results.json`` (shards retrained, epochs, ...).
    """

    model: torch.nn.Module
    seconds: float
    forget_set: ForgetSet
    info: Dict[str, object] = field(default_factory=dict)


class UnlearnMethod(ABC):
    """An unlearning method.

    Life cycle: ``fit()`` trains whatever the method deploys before any request (nothing for
    Retrain, K shard models for SISA, ...) and returns its wall seconds; ``forget(forget_set)``
    removes the forget set's influence and returns an :class:`UnlearnResult`.

    Args:
        config: the run's ``UnlearnConfig``.
        dataset: the loaded dataset (its log holds every interaction).
        suite: the experiment's loaders (D_raw / D_rem) and metrics.
        original: the single model trained on D_raw (starting point of approximate methods).

    ``deploys_model``: whether :meth:`fit` deploys a model that requests are later applied to
    (then :meth:`deployed` returns it); Retrain deploys nothing before a forget. ``trains_shards``:
    whether it trains shard models (Ray's and the shards' settings are read).
    """

    deploys_model = True
    trains_shards = False

    def __init__(self, config, dataset: UnlearnSequentialDataset, suite: EvaluationSuite, original: TrainedModel):
        self.config = config
        self.dataset = dataset
        self.suite = suite
        self.original = original
        #: the requests (``ForgetSet.requests``) of the request file the run forgets after this
        #: fit, set by the experiment: queued with the first version (:meth:`commit_first_version`)
        self.first_requests: Sequence = ()

    def commit_first_version(self, model) -> None:
        """Save ``model`` (just fitted) as the first version of :meth:`model_dir`, live with the
        run's file requests queued: a stop right after it went live left a folder trained on
        them with no trace of them."""
        open_store(self.model_dir(), self.config).commit(
            model, queued=[queued_line(r.id, r.file, r.line, r.rows) for r in self.first_requests])

    @classmethod
    def settings_used(cls, config) -> Dict[str, object]:
        """The fit, aggregate and forget settings this method's numbers depend on (a row's
        ``settings``; a grid reruns a row when one of them changes). By default every such
        setting except the keys of approximate steps the method does not run (``<step>_*``,
        and SRUGA's ``utility_floor``): a shared SRUGA key in a grid reran every SISA row, and a
        SISA row recorded SCIF's settings. A sharded method runs the step ``shard_unlearning``
        names."""
        used = set(cls.steps_used(config))
        unread = cls.unread_settings(config)
        return {k: v for k, v in settings_of(config.settings(), *METHOD_PHASES).items()
                if not any(k in step_keys(step) or k.startswith(f"{step}_") for step in APPROXIMATE.names()
                           if step not in used)
                and k not in unread}

    @classmethod
    def unread_settings(cls, config) -> Dict[str, str]:
        """``{setting: why nothing reads it}`` for the settings of a part this method runs that
        ``config`` turns off or replaces: a learned aggregator's under the untrained ``mean``, the
        cache's and layer sizes under ``static`` (:func:`unread_aggregator_settings`); a
        similarity partitioner's under ``random``; ``del_num`` with no extra deletion (the refusal
        of such a setting said only that the method did not use it)."""
        out: Dict[str, str] = {}
        if config["aggregator"] in AGGREGATORS.names():
            if not config["agg_cache"]:  # (the aggregator's own reason, where it reads none, comes next)
                out["agg_cache_max_mb"] = "agg_cache is False: nothing is cached"
            out.update(unread_aggregator_settings(config["aggregator"], config.settings()))
        if not is_similarity_partitioner(config["partitioner"]):
            out.update({k: f"the {config['partitioner']} partitioner pretrains and iterates nothing"
                        for k in SIMILARITY_PARTITION_KEYS})
        if EXTRA_DELETIONS.get(config["extra_deletion"]) is None:
            out["del_num"] = "no extra deletion runs (extra_deletion: none); set one, or drop del_num"
        for step in cls.steps_used(config):
            out.update(APPROXIMATE.get(step).unread_settings(config))
        return out

    @classmethod
    def reads_representations(cls, config) -> bool:
        """Whether a part this method runs with ``config`` reads its models' sequence
        representations or item embeddings (``model.representations``): an aggregator that
        ``reads_representations``, a similarity partitioner, an extra deletion or approximate step
        registered with ``reads_representations=True`` (a model that gives none is refused before
        the run writes anything: ``trainer.preflight``)."""
        used = cls.settings_used(config)
        aggregator, partitioner, extra = used.get("aggregator"), used.get("partitioner"), used.get("extra_deletion")
        return bool(
            (aggregator in AGGREGATORS.names() and AGGREGATORS.get(aggregator).reads_representations)
            or (partitioner is not None and is_similarity_partitioner(partitioner))
            or (extra in EXTRA_DELETIONS.names() and EXTRA_DELETIONS.traits(extra).get("reads_representations"))
            or any(APPROXIMATE.traits(step).get("reads_representations") for step in cls.steps_used(config)))

    @classmethod
    def steps_used(cls, config):
        """The approximate steps (names in ``APPROXIMATE``) this method runs with ``config``."""
        step = config["shard_unlearning"]
        return [step] if step and step != "retrain" else []

    @classmethod
    def check(cls, config, dataset: UnlearnSequentialDataset) -> None:
        """Raise ``UnlearnError`` for settings this method cannot run with. Called for every
        requested method before a run writes anything."""

    def fit(self) -> float:
        """Initial training of the deployed model(s); returns wall seconds (0 if none)."""
        return 0.0

    def fit_key(self) -> Optional[str]:
        """Identifies what :meth:`fit` trains, for methods whose fit can be shared by rows that
        differ only in how they forget or aggregate (e.g. SRU with CED vs NED, attention vs mean);
        ``None``: never shared."""
        return None

    def fitted_state(self):
        """What :meth:`adopt_fit` needs to reproduce this method's state right after ``fit``."""
        raise NotImplementedError

    def adopt_fit(self, state, seconds: float) -> float:
        """Take over a state from :meth:`fitted_state` of a method with the same ``fit_key``,
        whose fit took ``seconds``; returns the seconds this method's fit is reported with."""
        raise NotImplementedError

    @abstractmethod
    def forget(self, forget_set: ForgetSet) -> UnlearnResult:
        """Remove ``forget_set`` and return the resulting model state."""

    def deployed(self, forget_set: ForgetSet) -> UnlearnResult:
        """The fitted model as deployed, with nothing forgotten (a run with ``forget_protocol:
        none``; ``forget_set`` is that empty set): 0 seconds, nothing written. Only methods with
        ``deploys_model`` have one."""
        raise NotImplementedError


METHODS: Registry[type] = Registry("unlearning method", "unlearn_method")


#: the prefix of the folder :func:`check_new_model_dir` makes and removes in ``model_dir`` to try it
#: (another run's check may find one there)
MODEL_DIR_TRIAL = ".recbole_unlearn-trial-"
#: a method's model folder without ``model_dir``: ``<run folder>/<method><MODEL_FOLDER_SUFFIX>``
MODEL_FOLDER_SUFFIX = "_model"


def _leftover_of_a_first_commit(name: str) -> bool:
    """Whether ``name`` in a folder without ``CURRENT`` is only what a run stopped while writing
    its first version leaves: the lock's files, a staging folder (``.v000001.tmp-...``), or the trial
    folder of another run's :func:`check_new_model_dir`."""
    return name in (LOCK, LOCK_PID) or is_staging_name(name) or name.startswith(MODEL_DIR_TRIAL)


def check_new_model_dir(config) -> None:
    """A method that saves a deployable model must not overwrite one already in ``model_dir``."""
    model_dir = config["model_dir"]
    if model_dir and os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise UnlearnError(f"model_dir {model_dir} is a file; give a new folder")
    dangling = dangling_link_problem(model_dir) if model_dir else None
    if dangling:  # the trial followed it; the commit met the link (r12fixes, r12round2 probes: lnk/, lnk/sub)
        raise UnlearnError(f"model_dir {model_dir}: {dangling}; give a folder, or a link to an existing one")
    if model_dir and os.path.isdir(model_dir) and not os.path.exists(os.path.join(model_dir, "CURRENT")) and \
            [name for name in os.listdir(model_dir) if not _leftover_of_a_first_commit(name)]:
        raise UnlearnError(f"model_dir {model_dir} is not empty (a model folder without its CURRENT file, or "
                           "another folder); give a new folder, so that no earlier log or version is taken over "
                           "(a training run killed before its first version went live leaves such a folder: "
                           "nothing in it is live; remove it and run again)")
    if model_dir and os.path.exists(os.path.join(model_dir, "CURRENT")):
        raise UnlearnError(
            f"model_dir {config['model_dir']} already holds a model; choose a new folder "
            "(or answer requests with it: --model_dir=... --forget=..., without --model, --dataset or "
            "--config_files)"
        )
    if model_dir:  # one below a file, or on a read-only mount, failed once everything had trained
        try:
            write_trial(model_dir, MODEL_DIR_TRIAL, "CURRENT")
        except OSError as e:
            raise UnlearnError(f"model_dir {model_dir} cannot be created ({e.strerror or e}); give a folder this "
                               "process can make and write in") from None
