"""SRUGA: approximate unlearning by gradient ascent with KL and fine-tuning constraints
(thesis section 3.4; SPEC section 6).

Per step, a D_fgt batch ``x_fgt -> v`` and a D_rem training batch ``x_rem``:

* ``L_GA`` (``sruga_ga_loss``): ``bce``: ``-BCE_pos = mean(log sigmoid(s(x_fgt, v)))``, the
  positive-only BCE of the forgotten target, negated, so minimising ``L`` pushes the target's
  score down (BERT4Rec scores the [MASK] appended to the history, via its ``predict``). The
  thesis's models were trained with BCE, where ``sigmoid(s)`` is the model's own probability.
  A model trained with RecBole's softmax cross-entropy (``loss_type: CE``) puts memorised
  targets at logits near 10, where ``1 - sigmoid(s)``, the factor of that gradient, is about
  3e-4: the ascent stalls exactly on what was memorised. ``ce`` ascends the model's own loss
  instead, ``-CE = mean(log softmax(s(x_fgt))[v])`` over all items (still no sampled
  negatives); ``auto`` (the default) picks ``ce`` for CE-trained models and ``bce`` otherwise;
* ``L_KL = KL(softmax(agent(x_rem)) || softmax(model(x_rem)))`` over all items (forward KL to a
  frozen copy of the starting model);
* ``L_FT`` = the model's own training loss on ``x_rem`` (via :func:`training_loss`); where that
  loss is the cross-entropy of the full-ranking scores (SASRec, GRU4Rec with ``loss_type: CE``),
  ``L_KL`` and ``L_FT`` share one forward of the model (:func:`loss_is_full_ranking_ce`);

D_fgt histories exclude the forgotten items (SPEC section 2); a target whose history is then
empty (a user who asked to forget everything) is ascended with its raw prefix instead (see
:func:`ascent_samples`).

``L = eta_GA L_GA + eta_KL L_KL + eta_FT L_FT`` (a zero weight removes the term). The loop is
RecBole's ``Trainer`` (:class:`SRUGATrainer`): Adam, gradient clipping, ``eta_GA`` annealed after
every epoch; the steps run in eval mode (no dropout) unless ``sruga_dropout`` is True. Every
``sruga_eval_step`` epochs the checks run: ``sruga_forget_check`` (default Hit@10) on D_fgt and
``sruga_utility_check`` (default NDCG@10) on the validation targets. RecBole's early stopping ends
it when the forget metric has not decreased for ``sruga_patience`` checks; with
``sruga_stop_unseen`` it also stops once the forget metric is no higher than the starting model's
on the validation targets, interactions it never trained on (checked from the first epoch on,
never before it); if the utility metric fell below ``utility_floor`` times its starting value, it
restores the last state that was above the floor and stops, except where no epoch was kept yet:
stopping there would answer the request with the starting weights unchanged, so the step, too
large for this model, starts again from the starting weights at ``sruga_floor_backoff`` times the
learning rate (a fresh Adam, the annealing from its start), at most ``sruga_floor_restarts`` times
(the epochs count toward ``sruga_epochs``). A step whose loss is not finite is a floor hit that
needs no check (``stopped_by: non_finite_loss`` when it stops); epochs run after the last
scheduled check (``sruga_eval_step`` > 1) get a check of their own before they are kept. These checks rank all items for
every validation user; ``sruga_valid_users`` limits both (the utility check and the unseen stop's
reference) to a fixed random sample of that many users (the same users at every check; a shard's
step draws them among its own users) to make them cheaper.
"""
import copy
import time
from itertools import chain, cycle
from logging import getLogger
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from recbole.trainer import Trainer
from recbole.utils import dict2str, init_seed

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.data.utils import eval_loader, split_loaders
from recbole_unlearn.evaluator.metrics import full_ranking_metrics
from recbole_unlearn.trainer.approximate import (APPROXIMATE, ApproximateReport, ApproximateStep, ascent_samples,
                                                 give_model_to)
from recbole_unlearn.config.keys import Key, choice_key, declare, flag_key, int_key, name_key, number_key, parse_metric
from recbole_unlearn.trainer.trainer import UnlearnTrainer, cpu_state_dict, training_loss
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.eval_mode_gradients import eval_mode_gradients


#: SRUGA's report is the approximate-step report (``stopped_by``: ``patience``,
#: ``utility_floor``, ``unseen`` (``sruga_stop_unseen``), ``max_epochs``, ``non_finite_loss`` or ``empty``).
SRUGAReport = ApproximateReport


class _Diverged(Exception):
    """A SRUGA step's loss was not finite (raised from :meth:`SRUGATrainer._check_nan`)."""


GA_LOSSES = ("bce", "ce", "auto")

declare({  # defaults in properties/overall.yaml (sharded methods use them with shard_unlearning: sruga)
    "sruga_profile": name_key("forget", optional=True),  # properties/method/sruga-<profile>.yaml
    "sruga_ga": number_key("forget", open_low=False),
    "sruga_kl": number_key("forget", open_low=False),
    "sruga_ft": number_key("forget", open_low=False),
    "sruga_ga_loss": choice_key("forget", *GA_LOSSES),
    "sruga_learning_rate": number_key("forget"),  # positive: a rate of 0 never moves the weights
    "sruga_batch_size": int_key("forget"),
    "sruga_clip_norm": number_key("forget"),  # positive: norm 0 clips every gradient to nothing
    "sruga_anneal": number_key("forget", open_low=False),
    "sruga_epochs": int_key("forget"),
    "sruga_eval_step": int_key("forget"),
    "sruga_patience": int_key("forget"),
    "sruga_forget_check": Key("forget", "metric"),
    "sruga_utility_check": Key("forget", "metric"),
    "sruga_stop_unseen": flag_key("forget"),
    "sruga_dropout": flag_key("forget"),
    "utility_floor": number_key("forget", open_low=False, high=1),
    "sruga_floor_restarts": int_key("forget", low=0),
    "sruga_floor_backoff": number_key("forget", high=1),
    "sruga_valid_users": int_key("forget", optional=True),
})


def resolve_ga_loss(config, model) -> str:
    """The ascent loss ``sruga_ga_loss`` names for ``model``: ``auto`` is ``ce`` when the model
    trains with softmax cross-entropy (``model.loss_type == "CE"``), else ``bce``."""
    choice = config["sruga_ga_loss"]
    if choice == "auto":
        return "ce" if getattr(model, "loss_type", None) == "CE" else "bce"
    return choice


def ga_loss(model, fgt_batch, kind: str = "bce") -> torch.Tensor:
    """``L_GA`` for a D_fgt batch of B samples (histories ``[B, L]`` -> targets ``[B]``): minus
    the positive-only BCE of each forgotten target (``bce``, scores ``[B]`` from ``predict``) or
    minus its softmax cross-entropy over all items (``ce``, scores ``[B, n_items]`` from
    ``full_sort_predict``); a scalar, the mean over the batch."""
    if kind == "ce":
        return -F.cross_entropy(model.full_sort_predict(fgt_batch), fgt_batch[model.ITEM_ID])
    return F.logsigmoid(model.predict(fgt_batch)).mean()


def positive_bce(model, fgt_batch) -> torch.Tensor:
    """The positive-only BCE that gradient ascent raises (``sruga_ga_loss: bce``)."""
    return -ga_loss(model, fgt_batch, "bce")


def target_cross_entropy(model, fgt_batch) -> torch.Tensor:
    """The softmax cross-entropy of the forgotten targets that ``sruga_ga_loss: ce`` raises."""
    return -ga_loss(model, fgt_batch, "ce")


def kl_from_scores(scores: torch.Tensor, agent, rem_batch) -> torch.Tensor:
    """``KL(softmax(agent(x_rem)) || softmax(scores))``, ``scores`` ``[B, n_items]`` the model's
    full-ranking scores of ``rem_batch``; a scalar, averaged over the batch."""
    with torch.no_grad():
        target = torch.softmax(agent.full_sort_predict(rem_batch), dim=-1)
    return F.kl_div(torch.log_softmax(scores, dim=-1), target, reduction="batchmean")


def kl_loss(model, agent, rem_batch) -> torch.Tensor:
    """``KL(softmax(agent) || softmax(model))`` over all items, averaged over the batch."""
    return kl_from_scores(model.full_sort_predict(rem_batch), agent, rem_batch)


def loss_is_full_ranking_ce(model, rem_batch) -> bool:
    """Whether ``model``'s training loss on ``rem_batch`` is the softmax cross-entropy of the
    full-ranking scores ``full_sort_predict`` (true of RecBole's next-item models with
    ``loss_type: CE`` such as SASRec and GRU4Rec, not of BERT4Rec's masked-item loss nor of BPR).
    Checked on the batch itself, without dropout, so that a model whose loss differs is never
    taken for one. When true, one forward of the model serves both ``L_KL`` and ``L_FT``."""
    if getattr(model, "loss_type", None) != "CE" or model.ITEM_ID not in rem_batch:
        return False
    was_training = model.training
    model.eval()
    with torch.no_grad():
        own = training_loss(model, rem_batch)
        ranked = target_cross_entropy(model, rem_batch)
    model.train(was_training)
    return not isinstance(own, tuple) and bool(torch.isclose(own, ranked, rtol=1e-5, atol=1e-6))


def remaining_loss(model, agent, rem_batch, eta_kl: float, eta_ft: float, shared_forward: bool) -> torch.Tensor:
    """``eta_KL L_KL + eta_FT L_FT`` on a D_rem batch (a zero weight skips its term). With
    ``shared_forward`` (see :func:`loss_is_full_ranking_ce`) both terms use one forward of the
    model: the scores ``[B, n_items]`` and their cross-entropy against the batch's next items."""
    if shared_forward and eta_kl and eta_ft:
        scores = model.full_sort_predict(rem_batch)
        return eta_kl * kl_from_scores(scores, agent, rem_batch) + eta_ft * F.cross_entropy(
            scores, rem_batch[model.ITEM_ID])
    loss = torch.zeros((), device=rem_batch[model.ITEM_SEQ].device)
    if eta_kl:
        loss = loss + eta_kl * kl_loss(model, agent, rem_batch)
    if eta_ft:
        loss = loss + eta_ft * training_loss(model, rem_batch)
    return loss


def stopping_valid_loader(config, dataset: UnlearnSequentialDataset, keep: np.ndarray, full_valid_loader):
    """The validation loader of the utility-floor check and of the unseen stop's reference:
    ``full_valid_loader`` (the validation target of every user with a history under ``keep``) or,
    with ``sruga_valid_users = n``, the validation targets of ``n`` of those users drawn once with
    ``seed`` (independently of the D_fgt batch order). Under ``shard_unlearning: sruga`` ``keep``
    holds one shard's rows, so the ``n`` are drawn among the shard's own users."""
    n_users = config["sruga_valid_users"]
    targets = dataset.history_rows(dataset.split_targets(keep)[1], keep)[0]
    if n_users is None or n_users >= len(targets):
        return full_valid_loader
    rng = np.random.default_rng([config["seed"], len(targets)])
    chosen = np.sort(rng.choice(targets, size=n_users, replace=False))
    return eval_loader(config, dataset, dataset.samples(chosen, keep))


def _fgt_batches(samples, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(len(samples))
    for begin in range(0, len(order), batch_size):
        yield samples[torch.from_numpy(order[begin:begin + batch_size])]


#: RecBole's metric names for the ``<metric>@<k>`` checks (``sruga_forget_check``, ``sruga_utility_check``).
RECBOLE_METRIC = {"hit": "Hit", "ndcg": "NDCG", "recall": "Recall", "mrr": "MRR", "precision": "Precision"}


class PairedBatch:
    """One SRUGA step's input: a D_fgt batch (``[B, L]`` histories -> ``[B]`` forgotten targets)
    and the D_rem training batch it is paired with. ``to(device)`` as RecBole's ``Interaction``."""

    def __init__(self, fgt, rem):
        self.fgt, self.rem = fgt, rem

    def to(self, device) -> "PairedBatch":
        return PairedBatch(self.fgt.to(device), self.rem.to(device))


class PairedBatches:
    """One SRUGA epoch as the ``train_data`` of RecBole's ``Trainer``: every D_fgt sample once, in a
    new random order each epoch (``sruga_batch_size`` per batch), each batch paired with the next
    D_rem training batch (an endless cycle of RecBole's loader). ``dataset`` is what RecBole's
    ``Trainer.fit`` reads from a training loader."""

    def __init__(self, dataset, fgt_samples, batch_size: int, rem_batches, rng: np.random.Generator):
        self.dataset, self.fgt_samples, self.batch_size = dataset, fgt_samples, batch_size
        self.rem_batches, self.rng = rem_batches, rng

    def __len__(self) -> int:
        return -(-len(self.fgt_samples) // self.batch_size)

    def __iter__(self):
        for fgt in _fgt_batches(self.fgt_samples, self.batch_size, self.rng):
            yield PairedBatch(fgt, next(self.rem_batches))

    def get_model(self, model) -> None:
        """What RecBole's ``Trainer.fit`` calls with ``dynamic`` negatives: the D_rem loader
        behind ``rem_batches`` was given the model already (``give_model_to``)."""


def trainer_config(config):
    """SRUGA's settings as the RecBole ``Trainer`` keys they stand for: Adam at
    ``sruga_learning_rate`` without weight decay, ``sruga_clip_norm``, at most ``sruga_epochs``,
    checks every ``sruga_eval_step`` epochs, and RecBole's early stopping after ``sruga_patience``
    checks in a row without a new best (RecBole stops once more than ``stopping_step`` checks
    were), on a score where bigger is better (minus the forget metric)."""
    return config.override({
        "learner": "adam", "learning_rate": config["sruga_learning_rate"], "weight_decay": 0.0,
        "clip_grad_norm": {"max_norm": config["sruga_clip_norm"]}, "epochs": config["sruga_epochs"],
        "eval_step": config["sruga_eval_step"], "stopping_step": config["sruga_patience"] - 1,
        "valid_metric": f"minus forget {config['sruga_forget_check']}", "valid_metric_bigger": True,
    })


class SRUGATrainer(UnlearnTrainer):
    """SRUGA's loop as a RecBole ``Trainer``: RecBole builds the optimiser, runs the epochs
    (:meth:`_train_epoch` is RecBole's with SRUGA's loss), early-stops on the checks and logs;
    this class supplies the loss of a :class:`PairedBatch`, the annealing of ``eta_GA``, and the
    checks (:meth:`_valid_epoch`): the forget metric ``sruga_forget_check`` on D_fgt (the early
    stopping score, lower is better), the utility metric ``sruga_utility_check`` on the
    validation targets (the floor) and, for ``sruga_stop_unseen``, the forget metric on the
    validation targets. Falling below the floor restores the last state above it and stops, or,
    before any epoch was kept, starts again at a smaller rate (:meth:`_restart_smaller`);
    reaching the unseen level stops. Both stops go through RecBole's early stopping."""

    def __init__(self, config, model, agent, fgt_eval, valid_eval, shared_forward: bool, report: ApproximateReport):
        super().__init__(trainer_config(config), model)
        self.sruga = config
        self.agent, self.fgt_eval, self.valid_eval = agent, fgt_eval, valid_eval
        self.shared_forward, self.report = shared_forward, report
        self.ga_kind = resolve_ga_loss(config, model)
        self.weights = {"ga": config["sruga_ga"], "kl": config["sruga_kl"], "ft": config["sruga_ft"]}
        self.forget_check = config["sruga_forget_check"].lower()  # RecBole's result keys: "hit@10"
        self.utility_check = config["sruga_utility_check"].lower()
        self.eta_ga = self.weights["ga"]
        self.restarts_left = config["sruga_floor_restarts"]
        self.first_epoch = 0  # the epoch the current attempt started at (annealing restarts with it)
        self.checked_epoch = 0  # the epoch of the last check
        self.floor: Optional[float] = None
        self.unseen: Optional[float] = None
        self.last_good: Optional[dict] = None

    # --- the epoch: RecBole's, with SRUGA's loss ------------------------------------------------
    def _step_loss(self, batch: PairedBatch) -> torch.Tensor:
        """``eta_GA L_GA + eta_KL L_KL + eta_FT L_FT`` of one paired batch (a scalar)."""
        self.model.train(self.sruga["sruga_dropout"])  # eval mode (no dropout) when sruga_dropout is False
        loss = torch.zeros((), device=self.device)
        if self.eta_ga:
            loss = loss + self.eta_ga * ga_loss(self.model, batch.fgt, self.ga_kind)
        return loss + remaining_loss(self.model, self.agent, batch.rem, self.weights["kl"], self.weights["ft"],
                                     self.shared_forward)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.eta_ga = self.weights["ga"] * self.sruga["sruga_anneal"] ** (epoch_idx - self.first_epoch)
        try:
            return Trainer._train_epoch(self, train_data, epoch_idx, loss_func=self._step_loss,
                                        show_progress=show_progress)
        finally:
            self.report.epochs_run = epoch_idx + 1  # a diverged epoch ran too

    # --- the checks -------------------------------------------------------------------------
    def measure(self) -> Dict[str, float]:
        """The checks, in eval mode: ``forget_<forget check>`` and ``forget_hit@10`` (every
        approximate step reports it) on D_fgt, ``valid_<utility check>`` and ``valid_<forget
        check>`` on the validation targets."""
        began = time.perf_counter()
        self.model.eval()
        out = {}
        for prefix, loader, checks in (("forget_", self.fgt_eval, (self.forget_check, "hit@10")),
                                       ("valid_", self.valid_eval, (self.utility_check, self.forget_check))):
            parsed = [parse_metric(c) for c in checks]
            result = full_ranking_metrics(self.model, loader, self.sruga,
                                          sorted({RECBOLE_METRIC[m] for m, _ in parsed}), sorted({k for _, k in parsed}))
            for check in checks:
                out[prefix + check] = result.get(check, 0.0)
        self.report.eval_seconds += time.perf_counter() - began
        return out

    def start(self) -> Dict[str, float]:
        """Measure the starting model (epoch 0), set the floor and the unseen level; returns the
        checks."""
        initial = self.measure()
        self.report.history.append(dict(initial, epoch=0))
        self.floor = self.sruga["utility_floor"] * initial["valid_" + self.utility_check]
        if self.sruga["sruga_stop_unseen"]:
            self.unseen = initial["valid_" + self.forget_check]
        self.best_valid_score = -initial["forget_" + self.forget_check]
        self.last_good = cpu_state_dict(self.model)
        return initial

    def recalled_like_unseen(self, scores: Dict[str, float]) -> bool:
        return self.unseen is not None and scores["forget_" + self.forget_check] <= self.unseen

    def _stop_now(self, reason: str) -> float:
        """Make RecBole's early stopping stop after this check: a score below any best, one step
        short of the patience."""
        self.report.stopped_by = reason
        self.cur_step = self.stopping_step
        return -float("inf")

    def _valid_epoch(self, valid_data, show_progress=False):
        # RecBole's early stopping counts a tie as an improvement; SRUGA stops when the forget
        # metric does not go down, so the best is held one float step out of a tie's reach.
        self.best_valid_score = float(np.nextafter(self.best_valid_score, np.inf))
        scores = self.measure()
        verdict = self._judge(scores)
        self._log_check(scores, verdict)
        if verdict == "restart":
            self.cur_step -= 1  # RecBole's early stopping adds it back: the restart forgets this check
            return -float("inf"), scores
        if verdict != "kept":
            return self._stop_now(verdict), scores
        self.report.stopped_by = "patience"  # until another check or the last epoch says otherwise
        return -scores["forget_" + self.forget_check], scores

    def _log_check(self, scores: Dict[str, float], verdict: str) -> None:
        """One log line per check: the epoch, its training loss, the checks' numbers, the verdict."""
        loss = self.train_loss_dict.get(max(self.train_loss_dict)) if self.train_loss_dict else None
        getLogger().info(f"sruga: epoch {self.checked_epoch} checked (train loss "
                         f"{'n/a' if loss is None else format(float(loss), '.4f')}): {dict2str(scores)}; {verdict}")

    def _judge(self, scores: Dict[str, float]) -> str:
        """Record the check of the epoch just run and act on it: ``kept`` (its state is the last
        good one), ``unseen`` (kept, and recalled like unseen data), ``restart`` (below the floor
        with no epoch kept yet, epochs and restarts left: :meth:`_restart_smaller`) or
        ``utility_floor`` (below it: the last good state is restored)."""
        epoch = self.checked_epoch = self.report.epochs_run
        self.report.history.append(dict(scores, epoch=epoch, learning_rate=self.learning_rate))
        if scores["valid_" + self.utility_check] < self.floor:
            return self._fell(epoch, "utility_floor")
        self.last_good = cpu_state_dict(self.model)
        self.report.kept_epoch = epoch
        return "unseen" if self.recalled_like_unseen(scores) else "kept"

    def _fell(self, epoch: int, reason: str) -> str:
        """The epoch just run fell below the floor, or its loss was not finite (``reason``):
        restore the last good state, then restart at a smaller rate where that is the starting
        state and epochs and restarts are left; returns ``restart`` or ``reason``."""
        self.model.load_state_dict(self.last_good)
        if self.report.kept_epoch == 0 and self.restarts_left and epoch < self.epochs:
            self._restart_smaller(epoch)
            return "restart"
        return reason

    def _restart_smaller(self, epoch: int) -> None:
        """Start again from the starting weights (just restored) with a fresh Adam at
        ``sruga_floor_backoff`` x the learning rate and the annealing from its start."""
        self.restarts_left -= 1
        self.learning_rate *= self.sruga["sruga_floor_backoff"]
        self.optimizer = self._build_optimizer(params=self.model.parameters(), learning_rate=self.learning_rate)
        self.first_epoch = epoch
        self.report.stopped_by = "utility_floor"  # unless a later check says otherwise
        getLogger().info(f"sruga: epoch {epoch} fell below the utility floor (or its loss was not finite) before "
                         f"any epoch was kept; starting again at learning rate {self.learning_rate:g}")

    def _check_nan(self, loss):
        if not torch.isfinite(loss):  # RecBole raises ValueError on NaN; a diverged step is SRUGA's to handle
            raise _Diverged()

    def unlearn(self, train_data) -> None:
        """Run SRUGA on ``train_data`` (:class:`PairedBatches`) from the starting checks."""
        initial = self.start()
        getLogger().info(f"sruga: ascent loss {self.ga_kind}, one D_rem forward for KL and FT: "
                         f"{self.shared_forward}, start {initial}")
        # The unseen stop is checked after each epoch, never before the first: a model that
        # recalls D_fgt no better than its validation targets was still trained on it, and
        # whether it does sits on a knife's edge for an under-trained model (thread counts flip it).
        while True:
            try:
                # RecBole's own lines would show the score steering its early stopping (-inf for
                # a stop) and its 0-based epochs: SRUGA logs each check itself (_valid_epoch)
                self.fit(train_data, valid_data=self.valid_eval, verbose=False, saved=False,
                         show_progress=self.config["show_progress"])
                break
            except _Diverged:  # a non-finite loss: as a floor hit, without a check to run
                getLogger().warning(f"sruga: the loss of epoch {self.report.epochs_run} was not finite at learning "
                                    f"rate {self.learning_rate:g}")
                if self._fell(self.report.epochs_run, "non_finite_loss") != "restart":
                    self.report.stopped_by = "non_finite_loss"
                    self.model.eval()
                    return
                self.start_epoch = self.report.epochs_run  # RecBole's fit goes on from the next epoch
        if self.report.epochs_run > self.checked_epoch:  # epochs ran after the last check (sruga_eval_step > 1)
            scores = self.measure()
            verdict = self._judge(scores)
            self._log_check(scores, verdict)
            # no epoch is left to restart in (the cap ended the run), so a fall is a stop
            self.report.stopped_by = {"kept": "max_epochs", "restart": "utility_floor"}.get(verdict, verdict)
        elif self.report.stopped_by == "patience" and self.cur_step <= self.stopping_step:
            self.report.stopped_by = "max_epochs"  # the last check was not a stop
        getLogger().info(f"sruga: kept epoch {self.report.kept_epoch} of {self.report.epochs_run}, stopped by "
                         f"{self.report.stopped_by}")
        self.model.eval()


@eval_mode_gradients()
def sruga_unlearn(config, model: torch.nn.Module, dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                  keep: np.ndarray, history_keep: Optional[np.ndarray] = None) -> SRUGAReport:
    """Run SRUGA in place on ``model`` (:class:`SRUGATrainer`): forget ``forget_set``'s
    targets, with D_rem given by ``keep`` (only users whose rows are kept contribute D_rem
    batches) and ascent histories without the rows ``history_keep`` marks False (see
    :func:`ascent_samples`). Returns the report."""
    report = SRUGAReport(epochs_key="sruga_epochs")
    fgt_samples = ascent_samples(dataset, forget_set, history_keep)
    if len(fgt_samples) == 0:
        report.stopped_by = "empty"
        return report.finish()
    init_seed(config["seed"], config["reproducibility"])
    rng = np.random.default_rng(config["seed"])
    loaders = split_loaders(config, dataset, keep)
    give_model_to(config, loaders.train, model)
    fgt_eval = eval_loader(config, dataset, fgt_samples)
    valid_eval = stopping_valid_loader(config, dataset, keep, loaders.valid)
    agent = copy.deepcopy(model).eval()
    agent.requires_grad_(False)
    rem_batches = cycle(loaders.train)
    first_rem = next(rem_batches)
    shared_forward = bool(config["sruga_kl"] and config["sruga_ft"]) and \
        loss_is_full_ranking_ce(model, first_rem.to(config["device"]))
    batches = PairedBatches(dataset, fgt_samples, config["sruga_batch_size"], chain([first_rem], rem_batches), rng)
    SRUGATrainer(config, model, agent, fgt_eval, valid_eval, shared_forward, report).unlearn(batches)
    return report.finish()


@APPROXIMATE.register("sruga")
class SRUGAStep(ApproximateStep):
    """SRUGA (thesis section 3.4) as an approximate step: :func:`sruga_unlearn`."""

    OWN_KEYS = ("utility_floor",)

    @classmethod
    def unread_settings(cls, config) -> Dict[str, str]:
        out = {}
        if not config["sruga_floor_restarts"]:
            out["sruga_floor_backoff"] = "no restart runs (sruga_floor_restarts 0)"
        if config["sruga_epochs"] <= 1:  # (restarts count their epochs in sruga_epochs)
            out["sruga_anneal"] = "one epoch (sruga_epochs 1): eta_GA is annealed after each epoch"
        if not config["sruga_ga"]:
            out.update({key: "no ascent term (sruga_ga 0)" for key in ("sruga_ga_loss", "sruga_anneal")})
        return out

    @classmethod
    def check(cls, config) -> None:
        if not (config["sruga_ga"] or config["sruga_kl"] or config["sruga_ft"]):
            raise UnlearnError("sruga_ga, sruga_kl and sruga_ft are all 0: SRUGA's loss would be nothing "
                               "(give at least one a positive weight)")

    def run(self, config, model, dataset, forget_set, keep, history_keep=None) -> ApproximateReport:
        return sruga_unlearn(config, model, dataset, forget_set, keep, history_keep)
