"""Approximate unlearning steps, pluggable: the ``APPROXIMATE`` registry.

An approximate step takes a trained model, the forget set, D_rem (a ``keep`` mask) and the
config, updates the model's weights in place, and returns an :class:`ApproximateReport` (epochs
or steps run, why it stopped, forget Hit@10 before and after). Whoever calls it decides whether
the weights changed (``unlearnable``): the single approximately-unlearned model
(``unlearn_method: <name>``) and the affected shards of a sharded model
(``shard_unlearning: <name>``) both look the step up here, and every registered step is also an
``unlearn_method`` (``recbole_unlearn.unlearn.approximate``). A new method is one module with a
registered :class:`ApproximateStep` subclass plus one import line in ``trainer/__init__.py``.
"""
import functools
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from itertools import cycle
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from recbole.utils import init_seed
from recbole.data.interaction import cat_interactions

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.data.utils import eval_loader, train_loader
from recbole_unlearn.evaluator.metrics import full_ranking_metrics
from recbole_unlearn.trainer.trainer import training_loss
from recbole_unlearn.utils.eval_mode_gradients import eval_mode_gradients
from recbole_unlearn.utils.registry import Registry


#: why a model holder skipped the step: no training sample remains, so the model was reset to
#: its seeded initialisation (what retraining on nothing gives; exact, not approximate).
NOTHING_REMAINS = "nothing_remains"

#: the key :func:`steps_by_weights` gives a single model's step (shards go by their number)
WHOLE_MODEL = "*"


def steps_by_weights(approximate: Optional[dict]) -> Dict[str, dict]:
    """A forget's approximate steps (a report's or an audit line's ``approximate``: one step's
    record for a single model, ``{shard: record}`` for a sharded one) by the weights each acted
    on: :data:`WHOLE_MODEL` for the single model, else each shard's number as a string."""
    steps = approximate or {}
    if "stopped_by" in steps:
        return {WHOLE_MODEL: steps}
    return {str(shard): step for shard, step in steps.items() if isinstance(step, dict)}


def reset_weights(approximate: Optional[dict]) -> set:
    """Of :func:`steps_by_weights`, the weights a step reset to their seeded initialisation for
    want of data (:data:`NOTHING_REMAINS`): exact, as retraining on nothing, whether or not the
    weights moved (they may have been that initialisation already)."""
    return {weights for weights, step in steps_by_weights(approximate).items()
            if step.get("stopped_by") == NOTHING_REMAINS}


@dataclass
class ApproximateReport:
    """What an approximate step did. ``stopped_by``: why it stopped (method-specific, e.g.
    ``patience``, ``utility_floor``, ``unseen``, ``max_epochs``, ``empty``, ``non_finite_loss``,
    ``non_finite_weights`` (:func:`restore_if_not_finite`) or :data:`NOTHING_REMAINS`); ``history``: the
    checks it made, each a dict with ``epoch`` and ``forget_hit@10``; ``kept_epoch``: the epoch
    whose state the model ends with (0: the starting state); ``eval_seconds``: the part of
    ``seconds`` spent on those checks; ``epochs_key``: the setting that caps its epochs (SRUGA's
    ``sruga_epochs``), for a step that can stop by ``max_epochs``: its cap, which the run's cap note
    names and the leaderboard's ``cap_hit`` counts; ``finetune_epochs``: passes over D_rem its
    fine-tuning ran in all (Kookmin, Fanchuan: ``epochs_run`` counts their rounds, one pass of
    fine-tuning or a fifth of one alike); ``cap``: the value of ``epochs_key`` the step ran to,
    where that key caps something else than its epochs (SCIF's ``scif_cg_iterations``, with
    ``stopped_by: cg_iteration_cap``)."""

    epochs_run: int = 0
    stopped_by: str = "max_epochs"
    epochs_key: Optional[str] = None
    cap: Optional[int] = None
    finetune_epochs: Optional[float] = None
    seconds: float = 0.0
    eval_seconds: float = 0.0
    history: List[Dict[str, float]] = field(default_factory=list)
    kept_epoch: int = 0
    started: float = field(default_factory=time.perf_counter, repr=False, compare=False)

    def finish(self) -> "ApproximateReport":
        """Set ``seconds`` to the time since the report was created; returns it."""
        self.seconds = time.perf_counter() - self.started
        return self

    def forget_hit(self, epoch: int) -> Optional[float]:
        """Forget Hit@10 measured after ``epoch`` (``None`` if not measured)."""
        for entry in self.history:
            if entry["epoch"] == epoch:
                return entry["forget_hit@10"]
        return None

    def summary(self) -> dict:
        """What the step achieved, for audit lines: epochs run, why it stopped, forget Hit@10 of
        the starting model and of the state it ended with."""
        return dict({"epochs_run": self.epochs_run, "stopped_by": self.stopped_by,
                     "kept_epoch": self.kept_epoch, "forget_hit@10_before": self.forget_hit(0),
                     "forget_hit@10_after": self.forget_hit(self.kept_epoch)}, **self._extras())

    def to_json(self) -> dict:
        return dict({"epochs_run": self.epochs_run, "stopped_by": self.stopped_by, "kept_epoch": self.kept_epoch,
                     "eval_seconds": round(self.eval_seconds, 3), "history": self.history}, **self._extras())

    def _extras(self) -> dict:
        """The fields only some steps record (``epochs_key``, ``cap``, ``finetune_epochs``)."""
        out = {"epochs_key": self.epochs_key} if self.epochs_key else {}
        if self.cap is not None:
            out["cap"] = int(self.cap)
        if self.finetune_epochs is not None:
            out["finetune_epochs"] = float(self.finetune_epochs)  # unrounded: request steps sum them
        return out


def step_keys(name: str) -> Tuple[str, ...]:
    """The settings of step ``name`` beyond its ``<name>_*`` keys (``OWN_KEYS``)."""
    return getattr(APPROXIMATE.get(name), "OWN_KEYS", ()) if name in APPROXIMATE.names() else ()


def _leaving_no_gradients(run):
    """``run`` (a step's), then the model's gradients dropped, however it ended: the last ones
    were computed from the forgotten samples and stayed on the live model's parameters (their
    largest rows named the forgotten user's items; r10residue probe)."""
    @functools.wraps(run)
    def wrapped(self, config, model: torch.nn.Module, *args, **kwargs):
        try:
            return run(self, config, model, *args, **kwargs)
        finally:
            model.zero_grad(set_to_none=True)
    return wrapped


class ApproximateStep(ABC):
    """One approximate unlearning method (stateless; its settings come from the config: its
    ``<name>_*`` keys and ``OWN_KEYS``).

    Every subclass's :meth:`run` runs under :func:`eval_mode_gradients` (steps differentiate
    eval-mode models; cuDNN's RNN kernels refuse that on CUDA) and leaves no gradient on the
    model (:func:`_leaving_no_gradients`), without the subclass doing anything."""

    #: settings of this step not named ``<name>_*`` (SRUGA: ``utility_floor``)
    OWN_KEYS: Tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            cls.run = _leaving_no_gradients(eval_mode_gradients()(cls.run))

    @classmethod
    def check(cls, config) -> None:
        """Raise ``UnlearnError`` for settings this step cannot run with (before anything runs)."""

    @classmethod
    def unread_settings(cls, config) -> Dict[str, str]:
        """``{setting: why nothing reads it}`` for this step's settings that others in ``config``
        turn off (SRUGA's ascent loss with no ascent term): refused where the user gave them, and
        left out of a row's settings, as a method's unread settings are."""
        return {}

    @classmethod
    def check_model(cls, config, model: torch.nn.Module) -> None:
        """Raise any error for a model this step cannot act on (``trainer.preflight`` tries it on
        a freshly built model before a run writes anything)."""

    @classmethod
    def acted_on_rows(cls, dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                      history_keep: np.ndarray) -> np.ndarray:
        """The rows of ``forget_set`` this step acts on (sorted log rows, ``[n']``): a request
        with none of them is recorded ``applied_without_change`` even when the step changed the
        weights for others. By default the targets it has a sample of (:func:`ascent_rows`)."""
        return ascent_rows(dataset, forget_set, history_keep)

    @abstractmethod
    def run(self, config, model: torch.nn.Module, dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
            keep: np.ndarray, history_keep: Optional[np.ndarray] = None) -> ApproximateReport:
        """Unlearn ``forget_set``'s targets from ``model`` in place.

        Args:
            model: a trained RecBole sequential model.
            forget_set: the interactions to forget (its targets are the samples to unlearn).
            keep: ``[n_rows]`` bool, D_rem (what the model should keep doing well on).
            history_keep: ``[n_rows]`` bool, rows histories may use (everything forgotten so far
                is False); ``None``: only ``forget_set`` is removed from histories.
        """


APPROXIMATE: Registry[type] = Registry("approximate unlearning method", "shard_unlearning")


def ascent_samples(dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                   history_keep: Optional[np.ndarray] = None):
    """The (history -> forgotten target) samples an approximate step unlearns: D_fgt (histories without the
    forgotten items, and without every row ``history_keep`` marks False: everything forgotten
    by earlier requests), plus, for targets whose history is then empty (e.g. a user who asked
    to forget everything), the history the model was trained with minus earlier requests'
    rows, which is what it memorised. A user's first item never is a target: it has no history.
    Every step unlearns and probes these: with D_fgt alone, a user who asked to forget everything
    left no sample, and Kookmin, Fanchuan and SCIF stopped at once (``empty``), weights unchanged.

    Args:
        history_keep: ``[n_rows]`` bool; ``None`` = only ``forget_set`` is removed.
    """
    keep, prior = _ascent_histories(dataset, forget_set, history_keep)
    samples = dataset.samples(forget_set.targets, keep)
    covered = dataset.history_rows(forget_set.targets, keep)[0]
    missing = np.setdiff1d(forget_set.targets, covered)
    if len(missing) == 0:
        return samples
    raw = dataset.samples(missing, prior)
    if len(samples) == 0:
        return raw
    return cat_interactions([samples, raw])


def _ascent_histories(dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                      history_keep: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """``(keep, prior)``, ``[n_rows]`` bool each: the rows :func:`ascent_samples`' histories use,
    and those it falls back on where a target's history is then empty."""
    keep = forget_set.keep_mask(dataset, include_extra=False)
    prior = dataset.full_keep()
    if history_keep is not None:
        prior = history_keep.copy()
        prior[forget_set.rows] = True  # what the model was trained with after the earlier requests
        keep &= history_keep
    return keep, prior


def ascent_rows(dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                history_keep: Optional[np.ndarray] = None) -> np.ndarray:
    """The targets of ``forget_set`` that get a sample in :func:`ascent_samples` (sorted log
    rows, ``[n']``): the forgotten interactions a step can act on. A user's first item is never
    among them, nor a target whose every earlier row was forgotten by an earlier request."""
    keep, prior = _ascent_histories(dataset, forget_set, history_keep)
    covered = dataset.history_rows(forget_set.targets, keep)[0]
    missing = np.setdiff1d(forget_set.targets, covered)
    return np.union1d(covered, dataset.history_rows(missing, prior)[0])


class ForgetProbe:
    """Forget Hit@10 of a forget set's targets (histories without anything forgotten, or the
    history the model was trained with where none is left: :func:`ascent_samples`), measured
    into an :class:`ApproximateReport`'s ``history`` (its time into ``eval_seconds``)."""

    def __init__(self, config, model: torch.nn.Module, dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                 history_keep: np.ndarray, report: ApproximateReport):
        self.config, self.model, self.report = config, model, report
        self.samples = ascent_samples(dataset, forget_set, history_keep)  # [n] samples
        self.loader = eval_loader(config, dataset, self.samples)

    def __call__(self, epoch: int, **extra) -> Optional[float]:
        """Measure (``None`` where there is no sample to measure on, e.g. a request for a user's
        first item, which is never a target: it was reported 0.0, measured on nothing)."""
        began = time.perf_counter()
        value = None
        if len(self.samples):
            value = full_ranking_metrics(self.model, self.loader, self.config, ["Hit"], [10]).get("hit@10")
        self.report.eval_seconds += time.perf_counter() - began
        self.report.history.append(dict({"epoch": epoch, "forget_hit@10": value}, **extra))
        return value


def begin_step(config, model: torch.nn.Module, dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
               keep: np.ndarray, history_keep: Optional[np.ndarray], stopped_by: str):
    """The start every step shares: a report (timed from now), the histories the step may use
    (``history_keep``, default ``keep``, never wider than ``keep``), and a :class:`ForgetProbe`
    on them whose forget Hit@10 at epoch 0 is measured with the model in eval mode. Returns
    ``(report, probe, history_keep)``; ``probe.samples`` are the forget samples. Torch is seeded
    with ``seed`` first, so a step's weights do not depend on what drew random numbers before it
    in the process (Fanchuan's did: a run with Retrain first gave another row than one without)."""
    init_seed(config["seed"], config["reproducibility"])
    report = ApproximateReport(stopped_by=stopped_by)
    history_keep = keep if history_keep is None else history_keep
    probe = ForgetProbe(config, model, dataset, forget_set, history_keep & keep, report)
    model.eval()
    probe(0)
    return report, probe, history_keep


def restore_if_not_finite(model: torch.nn.Module, start: Dict[str, torch.Tensor], report: ApproximateReport) -> bool:
    """If a step left any weight NaN or infinite (a rate far too high, a degenerate temperature),
    put the starting weights ``start`` back and say so in ``report`` (``stopped_by:
    non_finite_weights``, kept epoch 0): such a model scores at random, which forget Hit@10
    reads as perfect forgetting. Returns whether it did."""
    if all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()):
        return False
    model.load_state_dict(start)
    model.eval()
    report.stopped_by, report.kept_epoch = "non_finite_weights", 0
    return True


def target_gradients(model, samples, params: List[torch.nn.Parameter], batch_size: int, device,
                     divide_by: float = 1.0) -> List[torch.Tensor]:
    """Gradients w.r.t. ``params`` of the summed softmax cross-entropy of every sample's target
    over all items (``full_sort_predict``) divided by ``divide_by`` (``len(samples)``: the mean),
    ``batch_size`` samples at a time; a parameter the loss does not reach gets zeros."""
    grads = [torch.zeros_like(p) for p in params]
    for begin in range(0, len(samples), batch_size):
        batch = samples[begin:begin + batch_size].to(device)
        loss = F.cross_entropy(model.full_sort_predict(batch), batch[model.ITEM_ID], reduction="sum") / divide_by
        for acc, g in zip(grads, torch.autograd.grad(loss, params, allow_unused=True)):
            if g is not None:
                acc += g
    return grads


def give_model_to(config, loader, model: torch.nn.Module) -> None:
    """With ``dynamic`` negatives, RecBole's training loader picks hard negatives with the model
    (``get_model``); its own ``Trainer.fit`` does that, a loop of ours must too (a loader without
    it died in RecBole's sampler)."""
    if (config["train_neg_sample_args"] or {}).get("dynamic", False):
        loader.get_model(model)


class RemainingBatches:
    """An endless iterator over D_rem training batches (RecBole's loader: negatives, BERT4Rec's
    masking); ``per_epoch`` batches make one pass. Later passes replay the first pass's batches
    in the same order (``itertools.cycle``), not reshuffled: Kookmin's and Fanchuan's defaults
    fine-tune for less than one pass. ``model``: the model being unlearned, which RecBole's
    ``dynamic`` negative sampling scores candidates with."""

    def __init__(self, config, dataset: UnlearnSequentialDataset, keep: np.ndarray, model: torch.nn.Module):
        loader = train_loader(config, dataset, dataset.sample_dataset(dataset.split_targets(keep)[0], keep), keep)
        give_model_to(config, loader, model)
        self.per_epoch = max(1, len(loader))
        self._batches = cycle(loader)

    def __next__(self):
        return next(self._batches)

    def steps(self, epochs: float) -> int:
        """Optimiser steps in ``epochs`` (a fraction allowed) passes, at least one."""
        return max(1, math.ceil(epochs * self.per_epoch))

    def passes(self, epochs: float) -> float:
        """The passes over D_rem that :meth:`steps` of ``epochs`` make (whole batches: 0.2 of a
        6-batch pass is 2 steps, a third of a pass)."""
        return self.steps(epochs) / self.per_epoch


def fine_tune(config, model: torch.nn.Module, batches: RemainingBatches, epochs: float,
              optimizer: torch.optim.Optimizer) -> float:
    """``epochs`` (a fraction allowed) of optimiser steps of the model's own training loss on
    D_rem ``batches``; returns the passes over D_rem they made (:meth:`RemainingBatches.passes`)."""
    model.train()
    for _ in range(batches.steps(epochs)):
        batch = next(batches).to(config["device"])
        loss = training_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return batches.passes(epochs)
