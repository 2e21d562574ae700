"""SCIF-style influence-function unlearning (Li et al., "Selective and Collaborative Influence
Function for Efficient Recommendation Unlearning", arXiv 2304.10199).

One Newton step on the training objective with the forgotten data taken out. With
``L(theta) = (1/n) sum_i l_i`` over the training samples (``l_i``: the full-ranking cross-entropy
of sample i, below; the loss a ``loss_type: CE`` model was trained on, and for a model trained
with BPR or BERT4Rec's masked loss a stand-in for it), forgetting removes some samples
and, collaboratively, changes others: the forgotten targets' samples go, and every later sample
of an affected user loses the forgotten items from its history (it is replaced by the same target
with the shorter history). The new objective's gradient at the trained ``theta`` is
``g = (1/n) (sum_added grad l - sum_removed grad l)`` and the step is

    theta <- theta - scif_scale * (H + scif_damping * I)^-1 g

with ``H`` the Hessian of the mean loss on ``scif_hessian_samples`` remaining samples, the
system solved by conjugate gradients with Hessian-vector products (double backpropagation) for
at most ``scif_cg_iterations`` iterations, and the step restricted to ``scif_params``
(``embeddings``: the item embeddings and output layers, the influence function's usual choice
for recommenders; ``all``: every parameter). The loss is the softmax cross-entropy of each
sample's target over all items, deterministic (eval mode), for every sequential model, whatever
its ``loss_type`` (README, "SRUGA (approximate unlearning)").

Guards: a non-finite value anywhere, negative curvature met by CG (``p^T A p <= 0``: the damped
Hessian is not positive definite there), a residual that grew instead of shrinking, or a step
longer than ``scif_max_step`` times the norm of the parameters it changes: the model is left
unchanged and the report says why (``stopped_by: fallback: <reason>``), so the request is
recorded ``applied_without_change``.
"""
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.trainer.approximate import (APPROXIMATE, ApproximateReport, ApproximateStep, ascent_rows,
                                                 begin_step, target_gradients)
from recbole_unlearn.config.keys import choice_key, declare, int_key, number_key

PARAM_SETS = ("embeddings", "all")
CG_CAP = "iteration cap"  # conjugate_gradient's reason where its iterations ran out before the tolerance


def selected_parameters(model: torch.nn.Module, which: str) -> List[torch.nn.Parameter]:
    """``embeddings``: the item embedding table and any output layer (``output*``); ``all``."""
    if which == "all":
        return [p for p in model.parameters() if p.requires_grad]
    return [p for name, p in model.named_parameters()
            if p.requires_grad and ("item_embedding" in name or name.startswith("output"))]


def hessian_vector_product(model, samples, params, vector: List[torch.Tensor], batch_size: int, device
                           ) -> List[torch.Tensor]:
    """``H v`` for the Hessian of the mean target cross-entropy over ``samples`` w.r.t. ``params``."""
    out = [torch.zeros_like(p) for p in params]
    for begin in range(0, len(samples), batch_size):
        batch = samples[begin:begin + batch_size].to(device)
        loss = F.cross_entropy(model.full_sort_predict(batch), batch[model.ITEM_ID], reduction="sum")
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vector))
        for acc, h in zip(out, torch.autograd.grad(dot, params)):
            acc += h.detach()
    return [h / len(samples) for h in out]


def _dot(a: List[torch.Tensor], b: List[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def conjugate_gradient(apply, rhs: List[torch.Tensor], iterations: int, tolerance: float
                       ) -> Tuple[Optional[List[torch.Tensor]], str, int]:
    """Solve ``A x = rhs`` (``apply(v) = A v``). Returns ``(x, reason, iterations run)``: ``x`` is
    ``None`` with the reason when the solve cannot be trusted (non-finite values, negative
    curvature, a residual larger than at the start)."""
    x = [torch.zeros_like(r) for r in rhs]
    r = [t.clone() for t in rhs]
    p = [t.clone() for t in rhs]
    start = float(_dot(r, r))
    if start == 0.0:
        return x, "zero gradient", 0
    rs = start
    for step in range(1, iterations + 1):
        ap = apply(p)
        curvature = float(_dot(p, ap))
        if not np.isfinite(curvature):
            return None, "non-finite Hessian-vector product", step
        if curvature <= 0:
            return None, "negative curvature (raise scif_damping)", step
        alpha = rs / curvature
        x = [xi + alpha * pi for xi, pi in zip(x, p)]
        r = [ri - alpha * api for ri, api in zip(r, ap)]
        new_rs = float(_dot(r, r))
        if not np.isfinite(new_rs):
            return None, "non-finite residual", step
        if new_rs <= tolerance ** 2 * start:
            return x, "converged", step
        p = [ri + (new_rs / rs) * pi for ri, pi in zip(r, p)]
        rs = new_rs
    if rs > start:
        return None, "the residual grew (diverged)", iterations
    return x, CG_CAP, iterations


declare({  # defaults and their sources: properties/method/scif.yaml
    "scif_params": choice_key("forget", *PARAM_SETS),
    "scif_damping": number_key("forget", open_low=False),
    "scif_cg_iterations": int_key("forget"),
    "scif_cg_tolerance": number_key("forget"),
    "scif_hessian_samples": int_key("forget"),
    "scif_scale": number_key("forget"),
    "scif_max_step": number_key("forget"),
})


@APPROXIMATE.register("scif")
class SCIFStep(ApproximateStep):
    """One damped Newton step of the influence function (see the module doc)."""

    @classmethod
    def check_model(cls, config, model: torch.nn.Module) -> None:
        if not selected_parameters(model, config["scif_params"]):  # FPMC, RepeatNet: no item_embedding, no output
            raise ValueError(f"scif_params {config['scif_params']!r} selects no parameter of the model (it has no "
                             "item_embedding or output layer): set scif_params: all")

    @classmethod
    def acted_on_rows(cls, dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                      history_keep: np.ndarray) -> np.ndarray:
        """The targets with a sample, and every forgotten row that a training target of its user
        comes after, in the data the model trained on: that sample's history loses it, or the
        sample goes with it (a user's first item too, also batched with all its later rows)."""
        rows = forget_set.rows
        trained = history_keep.copy()
        trained[rows] = True  # the data before this forget
        targets = dataset.split_targets(trained)[0]  # [m] its training targets
        last = np.full(dataset.user_num, -1, dtype=np.int64)  # [users] the latest target's position
        np.maximum.at(last, dataset.log_user[targets], dataset.log_position[targets])
        in_a_history = rows[dataset.log_position[rows] < last[dataset.log_user[rows]]]
        return np.union1d(ascent_rows(dataset, forget_set, history_keep), in_a_history)

    def run(self, config, model, dataset: UnlearnSequentialDataset, forget_set: ForgetSet, keep: np.ndarray,
            history_keep: Optional[np.ndarray] = None) -> ApproximateReport:
        report, probe, history_keep = begin_step(config, model, dataset, forget_set, keep, history_keep, "newton_step")
        device, batch = config["device"], config["eval_batch_size"]
        prior = history_keep.copy()
        prior[forget_set.rows] = True  # the histories the model was trained with
        trained = keep.copy()
        trained[forget_set.rows] = True  # its training data (a shard's own, under shard_unlearning)
        targets_before = dataset.split_targets(trained)[0]
        affected = np.isin(dataset.log_user, forget_set.users(dataset))
        remaining = np.intersect1d(dataset.split_targets(keep)[0], np.flatnonzero(affected))
        removed = dataset.samples(np.union1d(forget_set.targets, remaining), prior)
        added = dataset.samples(remaining, history_keep)
        if len(removed) == 0:
            report.stopped_by = "empty"
            return report.finish()
        params = selected_parameters(model, config["scif_params"])
        n_train = max(1, len(targets_before))
        g_added = target_gradients(model, added, params, batch, device)
        g_removed = target_gradients(model, removed, params, batch, device)
        gradient = [(a - r) / n_train for a, r in zip(g_added, g_removed)]
        rng = np.random.default_rng(config["seed"])
        pool = dataset.split_targets(keep)[0]
        chosen = np.sort(rng.choice(pool, size=min(len(pool), config["scif_hessian_samples"]), replace=False))
        hessian_samples = dataset.samples(chosen, history_keep)
        damping = config["scif_damping"]

        def apply(vector):
            hv = hessian_vector_product(model, hessian_samples, params, vector, batch, device)
            return [h + damping * v for h, v in zip(hv, vector)]

        solution, reason, iterations = conjugate_gradient(apply, gradient, config["scif_cg_iterations"],
                                                          config["scif_cg_tolerance"])
        report.epochs_run = 1
        if solution is not None:
            step = [-config["scif_scale"] * x for x in solution]
            step_norm = float(torch.sqrt(_dot(step, step)))
            param_norm = float(torch.sqrt(sum((p.detach() ** 2).sum() for p in params)))
            if not np.isfinite(step_norm):
                solution, reason = None, "non-finite step"
            elif step_norm > config["scif_max_step"] * max(param_norm, 1e-12):
                solution, reason = None, f"step norm {step_norm:.3g} exceeds scif_max_step x parameter norm"
        if solution is None:
            report.stopped_by = f"fallback: {reason}"
            report.history[0]["cg"] = {"iterations": iterations, "reason": reason}
        else:
            with torch.no_grad():
                for p, delta in zip(params, step):
                    p.add_(delta)
            report.kept_epoch = 1
            if reason == CG_CAP:  # the step taken from a solve that did not converge: said as a cap, as
                report.stopped_by = "cg_iteration_cap"  # SRUGA's epochs (it read newton_step; r11peers)
                report.epochs_key, report.cap = "scif_cg_iterations", iterations
            probe(1, cg={"iterations": iterations, "reason": reason})
        return report.finish()
