"""A membership-inference audit of forgetting: can an attacker tell the forgotten interactions
(F, members of the original model's training data) from held-out twins (H, drawn by the same
rule and never trained on by any model)?

This is a per-example, reference-calibrated likelihood-ratio attack in the spirit of LiRA
(Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022), "offline"
variant: the reference models are trained *without* F and H (on D_raw minus F and H, other
seeds), so they show how the score of each interaction looks when it was never trained on.

* Observation: ``phi(M, z)`` = the log-odds of item z's softmax probability under full ranking
  for model M, given z's user's history before z with every candidate (F and H) removed;
  the same inputs for every model.
* Calibration: ``s(M, z) = (phi(M, z) - mean_r phi(ref_r, z)) / sigma``, sigma the pooled
  standard deviation of the references' phi (one value for all z: with a handful of references
  a per-example variance is too noisy; LiRA uses a global variance with few references too).
* Outputs per model state: AUC of s on F vs H, TPR at 1% and 5% FPR, a bootstrap 95% interval
  of the AUC, residual memorisation ``RM = (AUC - 0.5) / (AUC_original - 0.5)``, and a verdict:
  ``member signal`` (interval above 0.5), ``indistinguishable`` (it contains 0.5) or
  ``over-forgetting`` (below 0.5: the forgotten items stand out by their absence).
* Gate: if the original model's interval does not lie above 0.5, it memorised nothing the
  attack can see, and every state is reported ``inconclusive`` instead of a number.
* Reference: Retrain never trained on F, so its interval must contain 0.5 (SPEC section 8).
  Where it does not (by chance about one forget set in twenty, or a miscalibrated attack), the
  other states' verdicts are judged against a reference that failed: they become
  ``inconclusive``, their numbers kept (:func:`apply_reference_gate`).

It is one attack, not a proof that nothing is left.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.utils.errors import UnlearnError

INCONCLUSIVE = "inconclusive"
INDISTINGUISHABLE = "indistinguishable"
#: the row (and a request step's matched model) every other state is judged against
REFERENCE = "retrain"


#: The audit's own settings: read only with ``audit: True``.
AUDIT_KEYS = ("audit_references", "audit_bootstrap", "audit_min_users", "audit_shuffles")


def auc(member: np.ndarray, nonmember: np.ndarray) -> float:
    """P(score of a member > score of a non-member), ties counting half (Mann-Whitney U / nm)."""
    scores = np.concatenate([member, nonmember])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks of ties
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for begin, end in zip(starts, ends):
        ranks[order[begin:end]] = (begin + end + 1) / 2.0
    n_m, n_n = len(member), len(nonmember)
    return float((ranks[:n_m].sum() - n_m * (n_m + 1) / 2.0) / (n_m * n_n))


def tpr_at_fpr(member: np.ndarray, nonmember: np.ndarray, fpr: float) -> float:
    """The largest share of members scoring above a threshold that at most ``fpr`` of the
    non-members exceed: ``floor(n x fpr)`` of ``n`` (the threshold is the next non-member score
    below them, ties included). ``member``: ``[m]``, ``nonmember``: ``[n]`` scores."""
    allowed = int(np.floor(len(nonmember) * fpr + 1e-9))  # non-members that may score above it
    if allowed >= len(nonmember):
        return 1.0
    threshold = np.sort(nonmember)[::-1][allowed]  # ties with it are not above it
    return float((member > threshold).mean())


def bootstrap_auc(scores: np.ndarray, is_member: np.ndarray, users: np.ndarray, rounds: int,
                  seed: int, relabel: Optional[Callable[[np.random.Generator], np.ndarray]] = None) -> List[float]:
    """95% percentile interval of the AUC over ``rounds`` resamplings *of users* (each drawn
    user brings all its F and H samples): a user's samples share that user's history, so they
    are not independent, and resampling single samples would give too narrow an interval.
    With ``relabel`` (a function of the generator returning ``[n]`` labels) every round draws
    its labels anew too, so the interval also covers the luck of the label draw."""
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(users, return_inverse=True)
    by_user = [np.flatnonzero(inverse == k) for k in range(len(unique))]
    values = []
    for _ in range(rounds):
        labels = is_member if relabel is None else relabel(rng)
        picked = np.concatenate([by_user[k] for k in rng.integers(0, len(unique), len(unique))])
        member = scores[picked][labels[picked]]
        nonmember = scores[picked][~labels[picked]]
        if len(member) and len(nonmember):
            values.append(auc(member, nonmember))
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def split_twins(config, dataset: UnlearnSequentialDataset, candidate: ForgetSet):
    """Split a candidate forget set at random (``forget_seed``) into the forget set F and its
    held-out twins H. Where every candidate interaction is a target (the ``thesis`` protocol),
    each user's candidate interactions are shuffled and dealt alternately to F and H, so F and H
    come from the same users in the same numbers (up to one per user) and user effects cancel;
    otherwise (``sru``: a target and everything after it) whole users are dealt. Returns
    ``(F, H)``.

    :func:`redeal_labels` deals by the same rule, vectorised; this per-user loop stays because
    its random stream fixes every saved cell's forget set (and with it the cell's fingerprint):
    dealing through :func:`redeal_labels` would draw other forget sets and orphan saved cells."""
    rng = np.random.default_rng([config["forget_seed"], len(candidate.requested)])
    owner = dataset.log_user
    source = candidate.source
    if np.array_equal(candidate.targets, candidate.requested):
        to_forget = []
        for user in candidate.users(dataset):
            rows = rng.permutation(candidate.requested[owner[candidate.requested] == user])
            to_forget.append(rows[rng.integers(0, 2)::2])  # a random start: odd counts favour neither
        forget_rows = np.concatenate(to_forget)
        return (ForgetSet(forget_rows, source=source),
                ForgetSet(np.setdiff1d(candidate.requested, forget_rows), source=f"{source} (held-out twins)"))
    shuffled = rng.permutation(candidate.users(dataset))
    half = (len(shuffled) + 1) // 2

    def part(chosen: np.ndarray, name: str) -> ForgetSet:
        rows = candidate.requested[np.isin(owner[candidate.requested], chosen)]
        targets = candidate.targets[np.isin(owner[candidate.targets], chosen)]
        return ForgetSet(rows, source=name, targets=targets)

    return part(shuffled[:half], source), part(shuffled[half:], f"{source} (held-out twins)")


def redeal_labels(users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``[n]`` member labels drawn again as :func:`split_twins` deals them: each user's samples
    shuffled and dealt alternately, from a random start, to F (True) and H. Permuting the real
    labels within each user instead is no null: a user with one candidate keeps its label, and
    where most users have one (Amazon Beauty) the original's true membership survived the
    permutation (AUC 0.60 instead of 0.5)."""
    n = len(users)
    order = np.lexsort((rng.random(n), users))  # grouped by user, in random order within a user
    new_user = np.concatenate([[True], users[order][1:] != users[order][:-1]]) if n else np.array([], bool)
    group = np.cumsum(new_user) - 1  # [n] the user group of each sorted position
    position = np.arange(n) - np.flatnonzero(new_user)[group]  # rank within the user's shuffled samples
    start = rng.integers(0, 2, int(new_user.sum()))  # a random start per user: odd counts favour neither
    labels = np.zeros(n, dtype=bool)
    labels[order] = (position - start[group]) % 2 == 0
    return labels


@dataclass
class AuditSamples:
    """The audit's fixed inputs: every F and H target with its history (candidates removed).

    Attributes:
        samples: ``Interaction`` of n samples.
        is_member: ``[n]`` bool, True for F.
        users: ``[n]`` the user of each sample (the bootstrap resamples users).
    """

    samples: Interaction
    is_member: np.ndarray
    users: np.ndarray

    @classmethod
    def build(cls, dataset: UnlearnSequentialDataset, forget: ForgetSet, held_out: ForgetSet) -> "AuditSamples":
        keep = dataset.full_keep()
        keep[forget.rows] = False
        keep[held_out.rows] = False
        targets = np.concatenate([forget.targets, held_out.targets])
        samples = dataset.samples(targets, keep)
        rows = dataset.history_rows(targets, keep)[0]  # targets that have a history, sample order
        return cls(samples, np.isin(rows, forget.targets), dataset.log_user[rows])


@torch.no_grad()
def observe(model: torch.nn.Module, samples: Interaction, batch_size: int, device) -> np.ndarray:
    """``[n]`` phi: log-odds of each target's full-ranking softmax probability."""
    model.eval()
    out = []
    for begin in range(0, len(samples), batch_size):
        batch = samples[begin:begin + batch_size].to(device)
        log_p = torch.log_softmax(model.full_sort_predict(batch).float(), dim=-1)
        target = log_p.gather(1, batch[model.ITEM_ID].view(-1, 1)).squeeze(1)
        # log(p / (1 - p)) = log p - log1p(-p), stable for p near 0 or 1
        out.append((target - torch.log1p(-target.exp().clamp(max=1 - 1e-7))).cpu().double().numpy())
    return np.concatenate(out) if out else np.array([], dtype=np.float64)


class MembershipAudit:
    """The audit of one experiment: fixed samples, reference statistics, the original's AUC.

    Args:
        config: ``audit_bootstrap``, ``forget_seed``, ``eval_batch_size``, ``device``.
        samples: the F / H samples.
        references: the reference models (trained on D_raw minus F and H, other seeds).
    """

    def __init__(self, config, samples: AuditSamples, references: List[torch.nn.Module]):
        self.config = config
        self.samples = samples
        phis = np.stack([self._phi(ref) for ref in references])  # [R, n]
        self.reference_mean = phis.mean(axis=0)
        variance = phis.var(axis=0, ddof=1) if len(references) > 1 else np.zeros(phis.shape[1])
        self.sigma = float(np.sqrt(variance.mean())) or 1.0
        self.original_auc: Optional[float] = None
        self.original_interval: Optional[List[float]] = None

    def _phi(self, model) -> np.ndarray:
        return observe(model, self.samples.samples, self.config["eval_batch_size"], self.config["device"])

    def scores(self, model) -> np.ndarray:
        """``[n]`` calibrated scores s(M, z)."""
        return (self._phi(model) - self.reference_mean) / self.sigma

    @staticmethod
    def _point(scores: np.ndarray, is_member: np.ndarray) -> Dict[str, float]:
        member, nonmember = scores[is_member], scores[~is_member]
        return {"auc": auc(member, nonmember), "tpr@1%fpr": tpr_at_fpr(member, nonmember, 0.01),
                "tpr@5%fpr": tpr_at_fpr(member, nonmember, 0.05)}

    @staticmethod
    def _rounded(point: Dict[str, float], interval: List[float]) -> Dict[str, object]:
        """A measurement as reported: the point values of :meth:`_point` and the AUC's interval."""
        return {"auc": round(point["auc"], 4), "auc_interval": [round(v, 4) for v in interval],
                "tpr@1%fpr": round(point["tpr@1%fpr"], 4), "tpr@5%fpr": round(point["tpr@5%fpr"], 4)}

    def _measure(self, scores: np.ndarray, is_member: np.ndarray,
                 users: Optional[np.ndarray] = None) -> Tuple[Dict[str, object], float]:
        """The measurement as reported, and its unrounded AUC (residual memorisation's input);
        ``users``: each sample's user (default: every sample's, ``samples.users``)."""
        users = self.samples.users if users is None else users
        interval = bootstrap_auc(scores, is_member, users, self.config["audit_bootstrap"], self.config["forget_seed"])
        point = self._point(scores, is_member)
        return self._rounded(point, interval), point["auc"]

    def shuffled(self, model) -> Dict[str, object]:
        """The same measurement with labels independent of membership: F / H labels dealt again
        at random, the way the twins were dealt (:func:`redeal_labels`). A sanity check: about
        0.5. One draw is as lucky as any other, so the AUC and TPRs are means over
        ``audit_shuffles`` draws, and the interval's bootstrap rounds draw labels anew as well as
        users (one draw's interval, around that draw's AUC, leaves out 0.5 in about 5% of draws:
        seen on converged GRU4Rec Beauty, 0.513 [0.501, 0.526], a draw at the 98th percentile)."""
        rng = np.random.default_rng(self.config["forget_seed"] + 1)
        scores, users = self.scores(model), self.samples.users
        wanted = self.config["audit_shuffles"]
        draws = []
        # a deal with every sample on one side measures nothing (a few users with one sample
        # each can draw one): it is drawn again, as the bootstrap skips such a round
        for _ in range(100 * wanted):
            labels = redeal_labels(users, rng)
            if labels.any() and not labels.all():
                draws.append(self._point(scores, labels))
                if len(draws) == wanted:
                    break
        if not draws:
            raise UnlearnError("the audit's shuffled-labels check found no deal of the labels with members and "
                               "non-members: too few samples (raise the forget ratio)")
        mean = {key: float(np.mean([d[key] for d in draws])) for key in draws[0]}
        interval = bootstrap_auc(scores, self.samples.is_member, users, self.config["audit_bootstrap"],
                                 self.config["forget_seed"], relabel=lambda g: redeal_labels(users, g))
        return dict(self._rounded(mean, interval), draws=len(draws))

    def set_original(self, model) -> Dict[str, object]:
        """Measure the original model (first): it decides whether the audit is conclusive."""
        self.original_scores = self.scores(model)
        result, self.original_auc = self._measure(self.original_scores, self.samples.is_member)
        self.original_interval = result["auc_interval"]
        return self._finish(result, self.original_auc, original=True)

    @property
    def conclusive(self) -> bool:
        return self.original_interval is not None and self.original_interval[0] > 0.5

    def report(self, model, member_users: Optional[np.ndarray] = None) -> Dict[str, object]:
        """The audit of one model state (after :meth:`set_original`). ``member_users``: count
        only the members of these users (internal ids; under ``request_steps`` the requests
        applied so far: the others are still trained on, by Retrain too) beside every held-out
        twin, with residual memorisation against the original's AUC on the same samples; fewer
        than ``audit_min_users`` users' members give no verdict (``inconclusive``)."""
        scores = self.scores(model)
        if member_users is None:
            return self._finish(*self._measure(scores, self.samples.is_member))
        chosen = ~self.samples.is_member | np.isin(self.samples.users, member_users)
        is_member, users = self.samples.is_member[chosen], self.samples.users[chosen]
        n_users = len(np.unique(users[is_member]))
        if n_users < self.config["audit_min_users"]:  # the interval would resample the twins alone
            n_f = int(is_member.sum())
            return {"verdict": INCONCLUSIVE, "members": n_f, "held_out": int(len(is_member) - n_f),
                    "member_users": n_users,
                    "reason": f"the requests so far hold the scored members of {n_users} users, fewer than "
                              f"audit_min_users ({self.config['audit_min_users']}): an interval over so few users "
                              "says nothing"}
        original, original_auc = self._measure(self.original_scores[chosen], is_member, users)
        if self.conclusive and original["auc_interval"][0] <= 0.5:  # the gate, on these members
            n_f = int(is_member.sum())
            return {"verdict": INCONCLUSIVE, "members": n_f, "held_out": int(len(is_member) - n_f),
                    "member_users": n_users,
                    "reason": f"on these members the original model's AUC interval {original['auc_interval']} does "
                              "not lie above 0.5: it memorised nothing of them this attack can see"}
        result, exact = self._measure(scores[chosen], is_member, users)
        return self._finish(result, exact, is_member=is_member, original_auc=original_auc)

    def _finish(self, result: Dict[str, object], exact_auc: float, original: bool = False,
                is_member: Optional[np.ndarray] = None, original_auc: Optional[float] = None) -> Dict[str, object]:
        is_member = self.samples.is_member if is_member is None else is_member
        original_auc = self.original_auc if original_auc is None else original_auc
        n_f = int(is_member.sum())
        result.update(members=n_f, held_out=int(len(is_member) - n_f))
        if not self.conclusive:
            return {"verdict": INCONCLUSIVE, "members": result["members"], "held_out": result["held_out"],
                    "reason": f"the original model's AUC interval {self.original_interval} does not lie above 0.5: "
                              "it memorised nothing this attack can see"}
        low, high = result["auc_interval"]
        result["verdict"] = ("member signal" if low > 0.5 else "over-forgetting" if high < 0.5
                             else INDISTINGUISHABLE)
        result["residual_memorisation"] = 1.0 if original else round(
            (exact_auc - 0.5) / (original_auc - 0.5), 4)
        return result


def reference_failed(verdict: Optional[str], auc_text: str = "") -> Optional[str]:
    """Why the reference's audit (Retrain's ``verdict``, its AUC and interval in ``auc_text``)
    fails SPEC section 8's gate, its interval not containing 0.5; ``None`` where it holds (or no
    verdict was given: an inconclusive audit gives none to anyone)."""
    if verdict in (None, INDISTINGUISHABLE, INCONCLUSIVE):
        return None
    return (f"Retrain, the reference, reads {verdict}{auc_text}: it never trained on the forgotten interactions, "
            "so its interval must contain 0.5; this attack's verdicts on this forget set are not to be trusted "
            "(by chance on about one forget set in twenty: draw another with forget_seed)")


def _auc_text(audit: dict) -> str:
    interval = audit.get("auc_interval")
    return f" (AUC {audit['auc']} {interval})" if audit.get("auc") is not None and interval else ""


def _step_reference_failed(matched: dict) -> Optional[str]:
    """:func:`reference_failed` for a request step's matched Retrain (a record with
    ``audit_verdict`` and ``audit_auc``)."""
    auc_text = f" (AUC {matched['audit_auc']})" if matched.get("audit_auc") is not None else ""
    return reference_failed(matched.get("audit_verdict"), auc_text)


def _inconclusive(audit: dict, reason: str, **more) -> dict:
    """A row's ``audit`` judged against a reference that failed the gate: ``inconclusive`` with
    the ``reason``, its numbers and ``measured_verdict`` kept."""
    return dict(audit, verdict=INCONCLUSIVE, measured_verdict=audit.get("verdict"), reason=reason, **more)


def _has_reference_row(rows: List[dict]) -> bool:
    return any(row.get("method") == REFERENCE for row in rows)


def apply_reference_gate(rows: List[dict]) -> Optional[str]:
    """Judge ``rows`` (a run's or a grid cell's result rows, each with ``method`` and, audited,
    ``audit``) against their Retrain row: where its audit fails the gate
    (:func:`reference_failed`), every other audited row but the original gets the verdict
    ``inconclusive`` with the reason, its numbers and ``measured_verdict`` kept. Idempotent.
    Returns the reason, or ``None`` where the reference holds or there is none."""
    reference = next((row.get("audit") for row in rows if row.get("method") == REFERENCE), None) or {}
    reason = reference_failed(reference.get("verdict"), _auc_text(reference))
    if reason is None:
        return None
    for row in rows:
        audit = row.get("audit")
        if row.get("method") in (REFERENCE, "original") or not audit or audit.get("verdict") == INCONCLUSIVE:
            continue
        row["audit"] = _inconclusive(audit, reason)
    return reason


def _last_matched_retrain(row: dict) -> dict:
    """The audit record of the Retrain matched to a row's last request step (``{}``: none)."""
    return ((row.get("steps") or [{}])[-1] or {}).get("retrain") or {}


def _judged_rows(rows: List[dict]) -> List[dict]:
    """Method rows (not the original) whose audit gave a verdict."""
    return [row for row in rows if row.get("method") != "original" and row.get("audit")
            and row["audit"].get("verdict") not in (None, INCONCLUSIVE)]


def apply_step_reference_gate(rows: List[dict]) -> Optional[str]:
    """Where ``rows`` hold no Retrain row (``include_retrain: False``), judge each row with
    request steps against its last step's matched Retrain, which forgot what the row forgot (the
    row was marked unchecked; r11round2 probe): its audit names that ``reference``, and is
    ``inconclusive`` the way :func:`apply_reference_gate` makes it where that Retrain fails the
    gate. Returns the first such failure's reason (a ``warning: audit:`` line and the document's
    ``audit.reference_failed``; a row went inconclusive unsaid, r11round5 probe), or ``None``."""
    if _has_reference_row(rows):
        return None
    failed = None
    for row in _judged_rows(rows):
        matched = _last_matched_retrain(row)
        if matched.get("audit_verdict") is None:
            continue
        reason, step_reference = _step_reference_failed(matched), "the last request step's matched Retrain"
        row["audit"] = (_inconclusive(row["audit"], reason, reference=step_reference) if reason
                        else dict(row["audit"], reference=step_reference))
        failed = failed or (f"{row['method']}: {reason}" if reason else None)
    return failed


def reference_not_run(rows: List[dict]) -> Optional[str]:
    """Why ``rows`` (a run's) hold no reference check, where the run audited a method's model and
    trained no Retrain (``include_retrain: False``) nor request steps' matched ones
    (:func:`apply_step_reference_gate`, called first): each such row's audit is marked
    ``reference_checked: false`` (its verdict passed as checked; r11audit probe). Idempotent;
    ``None`` where a Retrain row is there or no such row has a verdict."""
    if _has_reference_row(rows):
        return None
    unchecked = [row for row in _judged_rows(rows) if not row["audit"].get("reference")]
    for row in unchecked:
        row["audit"] = dict(row["audit"], reference_checked=False)
    return ("Retrain, the reference, did not run (include_retrain: False), so SPEC section 8's check that its "
            "interval contains 0.5 was not made: a forget set drawn so that this attack misjudges it (about one in "
            "twenty) goes unseen") if unchecked else None


def gate_step_on_reference(step: Dict[str, object], reference: Dict[str, object]) -> None:
    """A request step's record (``audit_verdict``, ``audit_auc``) judged against the Retrain
    matched to the same requests (``reference``, a record of the same form), as
    :func:`apply_reference_gate` judges rows."""
    reason = _step_reference_failed(reference)
    if reason is not None and step.get("audit_verdict") not in (None, INCONCLUSIVE):
        step.update(audit_measured_verdict=step["audit_verdict"], audit_verdict=INCONCLUSIVE, audit_reason=reason)
