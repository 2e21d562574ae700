"""SRUGA: approximate unlearning by gradient ascent with KL and fine-tuning constraints
(thesis section 3.4; SPEC section 6).

Per step, a D_fgt batch ``x_fgt -> v`` and a D_rem training batch ``x_rem``:

* ``L_GA`` (``sruga_ga_loss``): by default ``-BCE_pos = mean(log sigmoid(s(x_fgt, v)))``, the
  positive-only BCE of the forgotten target, negated, so minimising ``L`` pushes the target's
  score down (BERT4Rec scores the [MASK] appended to the history, via its ``predict``). The
  thesis's models were trained with BCE, where ``sigmoid(s)`` is the model's own probability.
  A model trained with RecBole's softmax cross-entropy (``loss_type: CE``) puts memorised
  targets at logits near 10, where ``1 - sigmoid(s)``, the factor of that gradient, is about
  3e-4: the ascent stalls exactly on what was memorised. ``ce`` ascends the model's own loss
  instead, ``-CE = mean(log softmax(s(x_fgt))[v])`` over all items (still no sampled
  negatives); ``auto`` picks ``ce`` for CE-trained models and ``bce`` otherwise;
* ``L_KL = KL(softmax(agent(x_rem)) || softmax(model(x_rem)))`` over all items (forward KL to a
  frozen copy of the starting model);
* ``L_FT`` = the model's own training loss on ``x_rem`` (via :func:`training_loss`); where that
  loss is the cross-entropy of the full-ranking scores (SASRec, GRU4Rec with ``loss_type: CE``),
  ``L_KL`` and ``L_FT`` share one forward of the model (:func:`loss_is_full_ranking_ce`);

D_fgt histories exclude the forgotten items (SPEC section 2); a target whose history is then
empty (a user who asked to forget everything) is ascended with its raw prefix instead (see
:func:`ascent_samples`).

``L = eta_GA L_GA + eta_KL L_KL + eta_FT L_FT`` (a zero weight removes the term), Adam,
gradient clipping, ``eta_GA`` annealed after every epoch; the steps run in training mode (the
model's dropout active) unless ``sruga_dropout`` is False. Every ``sruga_eval_step`` epochs the
forget Hit@10 on D_fgt and the validation NDCG@10 are measured: stop when Hit@10 has not
decreased for ``sruga_patience`` evaluations (with ``sruga_stop_unseen``, also once it is no
higher than the starting model's Hit@10 on the validation targets, interactions it never trained
on), or, if NDCG@10 fell below ``utility_floor`` times its starting value, restore the last state
that was above the floor and stop. These checks rank
all items for every validation user; ``sruga_valid_users`` limits the floor check to a fixed
random sample of that many users (the same users at every check) to make it cheaper.
"""
import copy
import time
from itertools import chain, cycle
from logging import getLogger
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from recbole.data.interaction import cat_interactions
from recbole.utils import init_seed

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.data.utils import eval_loader, split_loaders
from recbole_unlearn.evaluator.metrics import full_ranking_metrics
from recbole_unlearn.trainer.approximate import APPROXIMATE, ApproximateReport, ApproximateStep
from recbole_unlearn.trainer.trainer import cpu_state_dict, training_loss
from recbole_unlearn.utils.checks import require_bool, require_choice, require_non_negative_number, require_positive_int
from recbole_unlearn.utils.errors import UnlearnError


#: SRUGA's report is the approximate-step report (``stopped_by``: ``patience``,
#: ``utility_floor``, ``unseen`` (``sruga_stop_unseen``), ``max_epochs`` or ``empty``).
SRUGAReport = ApproximateReport


GA_LOSSES = ("bce", "ce", "auto")


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


def ascent_samples(dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                   history_keep: Optional[np.ndarray] = None):
    """The (history -> forgotten target) samples SRUGA ascends on: D_fgt (histories without the
    forgotten items, and without every row ``history_keep`` marks False: everything forgotten
    by earlier requests), plus, for targets whose history is then empty (e.g. a user who asked
    to forget everything), the history the model was trained with minus earlier requests'
    rows, which is what it memorised. A user's first item never is a target: it has no history.

    Args:
        history_keep: ``[n_rows]`` bool; ``None`` = only ``forget_set`` is removed.
    """
    keep = forget_set.keep_mask(dataset, include_extra=False)
    prior = dataset.full_keep()
    if history_keep is not None:
        prior = history_keep.copy()
        prior[forget_set.rows] = True  # what the model was trained with after the earlier requests
        keep &= history_keep
    samples = dataset.samples(forget_set.targets, keep)
    covered = dataset.history_rows(forget_set.targets, keep)[0]
    missing = np.setdiff1d(forget_set.targets, covered)
    if len(missing) == 0:
        return samples
    raw = dataset.samples(missing, prior)
    if len(samples) == 0:
        return raw
    return cat_interactions([samples, raw])


def stopping_valid_loader(config, dataset: UnlearnSequentialDataset, keep: np.ndarray, full_valid_loader):
    """The validation loader of the utility-floor check: ``full_valid_loader`` (every user's
    validation target) or, with ``sruga_valid_users = n``, the validation targets of ``n``
    users drawn once with ``seed`` (independently of the D_fgt batch order)."""
    n_users = config["sruga_valid_users"]
    targets = dataset.split_targets(keep)[1]
    if n_users is None or n_users >= len(targets):
        return full_valid_loader
    rng = np.random.default_rng([config["seed"], len(targets)])
    chosen = np.sort(rng.choice(targets, size=n_users, replace=False))
    return eval_loader(config, dataset, dataset.samples(chosen, keep))


def _fgt_batches(samples, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(len(samples))
    for begin in range(0, len(order), batch_size):
        yield samples[torch.from_numpy(order[begin:begin + batch_size])]


def sruga_unlearn(config, model: torch.nn.Module, dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                  keep: np.ndarray, history_keep: Optional[np.ndarray] = None) -> SRUGAReport:
    """Run SRUGA in place on ``model``: forget ``forget_set``'s targets, with D_rem given by
    ``keep`` (only users whose rows are kept contribute D_rem batches) and ascent histories
    without the rows ``history_keep`` marks False (see :func:`ascent_samples`). Returns the
    report."""
    start = time.perf_counter()
    logger = getLogger()
    report = SRUGAReport()
    device = config["device"]
    fgt_samples = ascent_samples(dataset, forget_set, history_keep)
    if len(fgt_samples) == 0:
        report.stopped_by = "empty"
        return report
    init_seed(config["seed"], config["reproducibility"])
    rng = np.random.default_rng(config["seed"])
    loaders = split_loaders(config, dataset, keep)
    fgt_eval = eval_loader(config, dataset, fgt_samples)
    valid_eval = stopping_valid_loader(config, dataset, keep, loaders.valid)
    weights = {"ga": config["sruga_ga"], "kl": config["sruga_kl"], "ft": config["sruga_ft"]}
    ga_kind = resolve_ga_loss(config, model)
    agent = copy.deepcopy(model).eval()
    agent.requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["sruga_learning_rate"])
    rem_batches = cycle(loaders.train)
    first_rem = next(rem_batches)
    shared_forward = bool(weights["kl"] and weights["ft"]) and loss_is_full_ranking_ce(model, first_rem.to(device))
    rem_batches = chain([first_rem], rem_batches)

    def measure() -> Dict[str, float]:
        began = time.perf_counter()
        hit = full_ranking_metrics(model, fgt_eval, config, ["Hit"], [10]).get("hit@10", 0.0)
        valid = full_ranking_metrics(model, valid_eval, config, ["NDCG", "Hit"], [10])
        report.eval_seconds += time.perf_counter() - began
        return {"forget_hit@10": hit, "valid_ndcg@10": valid.get("ndcg@10", 0.0),
                "valid_hit@10": valid.get("hit@10", 0.0)}

    initial = measure()
    report.history.append(dict(initial, epoch=0))
    floor = config["utility_floor"] * initial["valid_ndcg@10"]
    unseen_hit = initial["valid_hit@10"] if config["sruga_stop_unseen"] else None

    def recalled_like_unseen(scores: Dict[str, float]) -> bool:
        return unseen_hit is not None and scores["forget_hit@10"] <= unseen_hit

    max_epochs = config["sruga_epochs"]
    if recalled_like_unseen(initial):  # D_fgt is recalled no better than unseen data: nothing to undo
        report.stopped_by = "unseen"
        max_epochs = 0
    best_hit, stale = initial["forget_hit@10"], 0
    last_good = cpu_state_dict(model)
    logger.info(f"sruga: ascent loss {ga_kind}, one D_rem forward for KL and FT: {shared_forward}, start {initial}")
    for epoch in range(1, max_epochs + 1):
        model.train(config["sruga_dropout"])  # eval mode (no dropout) when sruga_dropout is False
        eta_ga = weights["ga"] * config["sruga_anneal"] ** (epoch - 1)
        for fgt_batch in _fgt_batches(fgt_samples, config["sruga_batch_size"], rng):
            fgt_batch = fgt_batch.to(device)
            rem_batch = next(rem_batches).to(device)
            loss = torch.zeros((), device=device)
            if eta_ga:
                loss = loss + eta_ga * ga_loss(model, fgt_batch, ga_kind)
            loss = loss + remaining_loss(model, agent, rem_batch, weights["kl"], weights["ft"], shared_forward)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config["sruga_clip_norm"])
            optimizer.step()
        report.epochs_run = epoch
        if epoch % config["sruga_eval_step"]:
            continue
        scores = measure()
        report.history.append(dict(scores, epoch=epoch))
        logger.info(f"sruga epoch {epoch}: {scores}")
        if scores["valid_ndcg@10"] < floor:
            model.load_state_dict(last_good)
            report.stopped_by = "utility_floor"
            break
        last_good = cpu_state_dict(model)
        report.kept_epoch = epoch
        if recalled_like_unseen(scores):
            report.stopped_by = "unseen"
            break
        if scores["forget_hit@10"] < best_hit:
            best_hit, stale = scores["forget_hit@10"], 0
        else:
            stale += 1
            if stale >= config["sruga_patience"]:
                report.stopped_by = "patience"
                break
    if report.stopped_by == "max_epochs":
        report.kept_epoch = report.epochs_run  # the last epochs may have run after the last check
    model.eval()
    report.seconds = time.perf_counter() - start
    return report


def check_sruga_settings(config) -> None:
    """One-line errors for bad ``sruga_*`` / ``utility_floor`` values."""
    require_non_negative_number(config, "sruga_ga", "sruga_kl", "sruga_ft", "sruga_learning_rate",
                                "sruga_clip_norm", "sruga_anneal")
    require_positive_int(config, "sruga_batch_size", "sruga_epochs", "sruga_eval_step", "sruga_patience")
    require_choice(config, "sruga_ga_loss", GA_LOSSES)
    require_bool(config, "sruga_stop_unseen", "sruga_dropout")
    users = config["sruga_valid_users"]
    if users is not None and (not isinstance(users, int) or isinstance(users, bool) or users < 1):
        raise UnlearnError(f"config key 'sruga_valid_users' must be a positive integer or ~ (all users), got {users!r}")
    floor = config["utility_floor"]
    if not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
        raise UnlearnError(f"config key 'utility_floor' must be in [0, 1], got {floor!r}")


@APPROXIMATE.register("sruga")
class SRUGAStep(ApproximateStep):
    """SRUGA (thesis section 3.4) as an approximate step: :func:`sruga_unlearn`."""

    @classmethod
    def check(cls, config) -> None:
        check_sruga_settings(config)

    def run(self, config, model, dataset, forget_set, keep, history_keep=None) -> ApproximateReport:
        return sruga_unlearn(config, model, dataset, forget_set, keep, history_keep)
