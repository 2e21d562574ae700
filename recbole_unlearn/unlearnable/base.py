"""What every deployable, unlearnable model is: weights plus the set of interactions forgotten
so far, a ``forget`` that removes more of them, and the hooks the model folder
(``recbole_unlearn.serving.store``) needs to save and reload it.

The sharded models (SISA, SRU, RecEraser) and the single approximately-unlearned model
(SRUGA) both derive from :class:`UnlearnableModel`, so serving code never asks which kind it
holds.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.trainer.approximate import WHOLE_MODEL, reset_weights, steps_by_weights

EMPTY_ROWS = np.array([], dtype=np.int64)


@dataclass
class ForgetReport:
    """What one ``forget`` call did.

    Attributes:
        interactions: number of newly forgotten interactions (already-forgotten ones are skipped).
        shards: shards retrained (or approximately unlearned), ascending; ``[]`` for a single model.
        start_stages: for each retrained shard, the slice stage its retraining started from.
        seconds: wall time of the whole forget (shards, aggregator, approximate steps; the
            choice of extra deletions is added by ``serving.apply.apply_forget``).
        aggregator_seconds: the aggregator's part of ``seconds``.
        training: how the retrained sub-models and the aggregator trained (epochs, cap, best
            validation NDCG@10, cache size; see ``unlearnable.sharded.training_record``).
        changed: whether the weights that hold the forgotten data's influence changed. Exact
            retraining always changes them when there is something to forget; an approximate
            step that stopped before its first kept update (utility floor, unseen-data stop)
            returns them unchanged, and then this is False.
        approximate: for approximate forgets, what the step achieved (per shard for a sharded
            model): epochs run, why it stopped, forget Hit@10 before and after, ``changed``.
        unlearned_rows: for approximate forgets, the newly forgotten rows the step acted on
            (sorted, ``[n']``; ``ApproximateStep.acted_on_rows``: by default those it had a
            sample of): a request with none of them among its rows (a user's first item) was not
            acted on. ``None``: exact, every newly forgotten row's influence is gone.
    """

    interactions: int
    shards: List[int] = field(default_factory=list)
    start_stages: Dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    aggregator_seconds: float = 0.0
    training: Optional[Dict[str, object]] = None
    changed: bool = False
    approximate: Optional[Dict[str, object]] = None
    unlearned_rows: Optional[np.ndarray] = None

    def unchanged_for(self, group: Tuple[int, ...], rows: Optional[np.ndarray] = None) -> bool:
        """Whether the weights that held the forgotten data of a request touching ``group`` (its
        shards; ``(0,)`` for a single model) with log rows ``rows`` came back unchanged: the whole
        forget changed nothing, an approximately unlearned shard of ``group`` did not change
        (another shard of the same forget may have), or the approximate step had no sample of
        any of ``rows`` (it changed the weights for other requests only)."""
        if not self.interactions or self.reset_for_want_of_data(group):
            return False
        if not self.changed:
            return True
        if rows is not None and self.unlearned_rows is not None and not np.isin(rows, self.unlearned_rows).any():
            return True
        per_shard = self.approximate if self.shards and self.approximate else {}
        return any((per_shard.get(str(shard)) or {}).get("changed") is False for shard in group)

    def reset_for_want_of_data(self, group: Tuple[int, ...]) -> bool:
        """Whether the approximate step found nothing left to train on where the request's data
        was (the single model, or every shard of ``group``) and reset those weights to their
        seeded initialisation (:data:`NOTHING_REMAINS`): exact, as retraining on nothing, whether
        the weights moved or were that initialisation already (a request after an earlier reset
        was ``applied_without_change``, told to escalate; a probe)."""
        reset = reset_weights(self.approximate)
        if WHOLE_MODEL in steps_by_weights(self.approximate):
            return WHOLE_MODEL in reset
        return bool(group) and all(str(shard) in reset for shard in group)

    def to_json(self) -> dict:
        out = {
            "interactions": self.interactions,
            "shards_retrained": self.shards,
            "slices_retrained": {str(k): v for k, v in self.start_stages.items()},
            "seconds": round(self.seconds, 3),
            "aggregator_seconds": round(self.aggregator_seconds, 3),
            "changed": self.changed,
        }
        if self.training is not None:
            out["training"] = self.training
        if self.approximate is not None:
            out["approximate"] = self.approximate
        return out


def states_equal(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> bool:
    """Whether two ``state_dict``s hold identical tensors (same keys, bit-for-bit values)."""
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


class UnlearnableModel(ABC):
    """Weights + forgotten rows for one dataset.

    Args:
        config: the method's config.
        dataset: the loaded dataset (its log holds every interaction, forgotten ones included).
        forgotten: log rows forgotten so far, ``[n]`` int64.

    Subclasses set ``FORMAT`` (the manifest's format tag) and implement ``recommender``,
    ``forget``, ``rows_in_training_data`` and the storage hooks.
    """

    FORMAT = ""
    #: whether its forgets train shard models (Ray's and the shards' settings are read)
    TRAINS_SHARDS = False

    def __init__(self, config, dataset: UnlearnSequentialDataset, forgotten: np.ndarray = EMPTY_ROWS):
        self.config = config
        self.dataset = dataset
        self.forgotten = np.unique(np.asarray(forgotten, dtype=np.int64))
        self.version_dir: Optional[str] = None  # the model folder version it was loaded from / saved as

    # --- what it recommends with -----------------------------------------------------------
    @property
    @abstractmethod
    def recommender(self) -> torch.nn.Module:
        """The RecBole ``SequentialRecommender`` that serves (``full_sort_predict`` works)."""

    # --- forgotten rows --------------------------------------------------------------------
    def keep_mask(self) -> np.ndarray:
        """``[n_rows]`` bool, False for every interaction forgotten so far."""
        keep = self.dataset.full_keep()
        keep[self.forgotten] = False
        return keep

    def new_rows(self, rows: np.ndarray) -> np.ndarray:
        """The rows of ``rows`` not forgotten yet and not held out (audit twins: no model was
        trained on them), sorted and unique."""
        return np.setdiff1d(np.asarray(rows, dtype=np.int64), np.union1d(self.forgotten, self.dataset.held_out))

    def expand(self, forget_set: ForgetSet) -> ForgetSet:
        """``forget_set`` plus the model's extra deletions (none by default)."""
        return forget_set

    def group_of(self, rows: np.ndarray) -> Tuple[int, ...]:
        """The part of the model forgetting ``rows`` touches (shards; ``(0,)`` for a single
        model): requests of one group are coalesced into one forget."""
        return (0,)

    @abstractmethod
    def forget(self, rows: np.ndarray) -> ForgetReport:
        """Forget ``rows`` (log rows of training interactions); rows already forgotten are
        skipped. Changes the model in place."""

    @abstractmethod
    def rows_in_training_data(self) -> np.ndarray:
        """Every log row the model's current training samples (targets and histories) use."""

    # --- storage hooks (see recbole_unlearn.serving.store) --------------------------------
    @abstractmethod
    def weight_states(self) -> Dict[str, Dict[str, torch.Tensor]]:
        """``{file name: state_dict}`` of everything with weights."""

    def manifest_extras(self) -> dict:
        """Extra manifest entries (e.g. the shard map)."""
        return {}

    def check_trained_on(self) -> Tuple[int, int, List[str]]:
        """``(weight files checked, files that cannot be, files trained on other data than they
        should hold now)`` for ``--verify``. A single model is approximately unlearned (its
        weights started from the forgotten data), so none of its files can be checked."""
        return 0, len(self.weight_states()), []

    def unrecorded_retrained_files(self, line: dict) -> List[str]:
        """Weight files that the forget whose audit ``line`` made this version says it retrained
        exactly, yet that have no training record (``--verify``); none for a single model."""
        return []

    def unchanged_files(self, report: ForgetReport) -> List[str]:
        """Weight files ``forget`` did not change (hard-linked into the new version)."""
        return []

    @classmethod
    @abstractmethod
    def from_saved(cls, config, dataset, manifest: dict, load: Callable[[str], dict],
                   forgotten: np.ndarray) -> "UnlearnableModel":
        """Rebuild from a saved version; ``load(name)`` reads a checked weight file."""
