"""The membership-inference audit proves itself on a model that memorised (issue: did it really
forget?): gate 1, the original is flagged; gate 2, Retrain is not; gate 3, shuffled labels give
0.5; gate 4, one more epoch of fine-tuning on D_rem is still flagged."""
import copy
import os

import numpy as np
import pytest

from recbole_unlearn import run_recbole_unlearn
from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.evaluator.audit import (INCONCLUSIVE, AuditSamples, MembershipAudit, auc, bootstrap_auc,
                                            gate_step_on_reference, redeal_labels, tpr_at_fpr)
from recbole_unlearn.trainer.trainer import UnlearnTrainer
from recbole_unlearn.trainer.training import new_model
from recbole_unlearn.unlearn.experiment import Experiment
from recbole_unlearn.utils.errors import UnlearnError

from conftest import MEMORISING_GRU4REC, load_model, tiny_dict

#: GRU4Rec on ml-tiny without dropout, 40 epochs at a high rate: it memorises its training data
#: (measured: original AUC about 0.89, Retrain about 0.51).
#: The shared memorising settings, audited, with half of the users in the forget set.
MEMORISING = dict(MEMORISING_GRU4REC, audit=True, forget_user_ratio=0.5)


def _contains_half(interval) -> bool:
    return interval[0] <= 0.5 <= interval[1]


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    config = UnlearnConfig("GRU4Rec", config_dict=tiny_dict(unlearn_method="retrain", **MEMORISING))
    experiment = Experiment(config)
    experiment.open(str(tmp_path_factory.mktemp("audit")))
    experiment.train_original()
    original_audit = experiment.prepare_audit()
    return config, experiment, original_audit


def test_twins_are_exchangeable_and_never_trained_on(memorised):
    config, experiment, _ = memorised
    forget, held_out = experiment.forget_set, experiment.held_out
    assert not np.intersect1d(forget.rows, held_out.rows).size
    assert abs(len(forget.rows) - len(held_out.rows)) <= len(forget.users(experiment.data))  # up to one per user
    owner = experiment.data.log_user
    counts = np.bincount(owner[np.concatenate([forget.rows, held_out.rows])])
    both = set(np.flatnonzero(counts >= 2).tolist())  # a user with two candidates has one in F, one in H
    assert both <= set(forget.users(experiment.data)) & set(held_out.users(experiment.data))
    keep = experiment.data.full_keep()
    assert not keep[held_out.rows].any()  # no model trains on H or sees it in a history
    used = experiment.data.rows_used(experiment.data.split_targets(keep)[0], keep)
    assert not np.isin(held_out.rows, used).any()


def test_gate_1_the_original_is_flagged(memorised):
    _, experiment, original = memorised
    assert original["verdict"] == "member signal" and original["auc_interval"][0] > 0.5
    assert original["residual_memorisation"] == 1.0 and experiment.audit.conclusive
    assert experiment.audit_cost["references_trained"] == 2 and experiment.audit_cost["seconds"] > 0


def test_gate_2_retrain_is_indistinguishable(memorised):
    config, experiment, _ = memorised
    row, _ = experiment.run_method(config.for_method("retrain"))
    assert _contains_half(row["audit"]["auc_interval"]), row["audit"]
    assert row["audit"]["verdict"] == "indistinguishable"
    assert abs(row["audit"]["residual_memorisation"]) < 0.5


def test_gate_3_shuffled_labels_give_one_half(memorised):
    _, _, original = memorised
    assert _contains_half(original["shuffled_labels"]["auc_interval"]), original["shuffled_labels"]


def test_gate_3_holds_where_most_users_have_one_candidate():
    """On Amazon Beauty most audited users have a single candidate. Permuting the labels within
    each user left those labels as they were, so the original's real membership came through the
    "shuffled" check (AUC 0.60 [0.59, 0.62] on the converged SASRec). Labels dealt again the way
    the twins were dealt are a null: 0.5 within the interval; the old permutation is not."""
    rng = np.random.default_rng(0)
    users = np.concatenate([np.arange(300), np.repeat(np.arange(300, 350), 4)])  # 300 singletons, 50 of 4
    is_member = np.zeros(len(users), dtype=bool)
    for mine in np.split(np.arange(len(users)), np.flatnonzero(np.diff(users)) + 1):
        is_member[rng.permutation(mine)[rng.integers(0, 2)::2]] = True
    scores = is_member * 2.0 + rng.normal(size=len(users))  # a model that memorised its members
    within_user = is_member.copy()
    for user in np.unique(users):
        mine = np.flatnonzero(users == user)
        within_user[mine] = rng.permutation(within_user[mine])
    old = bootstrap_auc(scores, within_user, users, 300, 1)
    assert old[0] > 0.5  # the old check flagged a signal with "shuffled" labels
    labels = redeal_labels(users, np.random.default_rng(1))
    counts = {u: labels[users == u].sum() for u in (0, 300)}
    assert counts[0] in (0, 1) and counts[300] == 2  # dealt like the twins: alternately per user
    assert _contains_half(bootstrap_auc(scores, is_member, users, 300, 1, relabel=lambda g: redeal_labels(users, g)))


def test_gate_3_does_not_hang_on_the_luck_of_one_label_draw():
    """On the converged GRU4Rec Beauty cell one draw of shuffled labels gave 0.513 [0.501, 0.526]:
    that draw put 50.7% of the true members into the new F and 48.8% into the new H (98th
    percentile of 500 draws, whose mean was 0.4999), and one draw's interval, centred on its own
    AUC, leaves out 0.5 in about 5% of draws. Averaged over draws, with every bootstrap round
    drawing labels anew, the check contains 0.5 for every seed here; one draw per seed does not."""
    rng = np.random.default_rng([3, 1500])  # a stream no seed of the loop below reproduces
    users = np.concatenate([np.arange(1100), np.repeat(np.arange(1100, 1500), 2)])  # 57% singletons
    is_member = redeal_labels(users, rng)
    scores = is_member * 1.2 + rng.normal(size=len(users))  # memorised: AUC about 0.8

    audit = MembershipAudit.__new__(MembershipAudit)
    audit.samples = AuditSamples(None, is_member, users)
    audit.scores = lambda model: scores
    one_draw = []
    for seed in range(40):
        audit.config = dict(forget_seed=seed, audit_bootstrap=200, audit_shuffles=20)
        result = audit.shuffled(None)
        assert _contains_half(result["auc_interval"]) and abs(result["auc"] - 0.5) < 0.01, (seed, result)
        assert result["draws"] == 20
        labels = redeal_labels(users, np.random.default_rng(seed + 1))
        one_draw.append(_contains_half(bootstrap_auc(scores, labels, users, 200, seed)))
    assert not all(one_draw)  # the single-draw check of before misses 0.5 for some seeds


def test_redealt_labels_are_dealt_per_user_and_independent_of_membership():
    rng = np.random.default_rng(5)
    users = np.repeat(np.arange(400), np.tile([1, 2, 3, 4], 100))
    first = redeal_labels(users, rng)
    for user, count in ((0, 1), (1, 2), (2, 3), (3, 4)):
        assert first[users == user].sum() in ((count // 2, (count + 1) // 2))  # alternately, per user
    draws = np.stack([redeal_labels(users, rng) for _ in range(400)])  # [draws, samples]
    share = draws.mean(axis=0)
    assert share.min() > 0.38 and share.max() < 0.62  # every sample, singletons too, is in F half the time
    both = draws[:, users == 3][:, :2].all(axis=1).mean()  # two given samples of a user with four
    assert abs(both - 1 / 6) < 0.05  # both in F as often as two of four dealt at random: 1/6


def test_gate_4_fine_tuning_on_d_rem_is_not_forgetting(memorised):
    config, experiment, _ = memorised
    tuned = copy.deepcopy(experiment.original.model)
    trainer = UnlearnTrainer(config, tuned)
    trainer.epochs = 1
    trainer.fit(experiment.suite.rem.train, None, verbose=False, saved=False)
    result = experiment.audit.report(tuned)
    assert result["verdict"] == "member signal" and result["auc_interval"][0] > 0.5, result


def test_a_model_that_memorised_nothing_makes_the_audit_inconclusive(memorised):
    config, experiment, _ = memorised
    untrained = new_model(config, experiment.suite.raw.train.dataset)
    audit = MembershipAudit(config, AuditSamples.build(experiment.data, experiment.forget_set, experiment.held_out),
                            [new_model(config.override({"seed": s}), experiment.suite.raw.train.dataset)
                             for s in (1, 2)])
    result = audit.set_original(untrained)
    assert result["verdict"] == INCONCLUSIVE and "auc" not in result
    assert audit.report(experiment.original.model)["verdict"] == INCONCLUSIVE


def test_auc_and_tpr():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5
    assert auc(np.array([1.0, 3.0]), np.array([2.0])) == 0.5
    member, nonmember = np.arange(100, 200, dtype=float), np.arange(100, dtype=float)
    assert tpr_at_fpr(member, nonmember, 0.05) == 1.0


def test_results_json_and_saved_models_carry_the_audit(in_tmp, capsys):
    """(Without Retrain, ``include_retrain: False``, SPEC section 8's reference check is not made:
    the verdicts passed as checked, unsaid; r11audit probe. They are marked, and a note says so.)"""
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
        unlearn_method="sisa", n_shards=2, model_dir=str(in_tmp / "m"), shard_num_threads=1, save_model=False,
        include_retrain=False, results_dir=str(in_tmp / "r"), **dict(MEMORISING, epochs=3)))
    assert [row["method"] for row in doc["rows"]] == ["original", "sisa"]
    assert doc["rows"][1]["audit"]["verdict"] != INCONCLUSIVE  # (what the check is about)
    assert doc["rows"][1]["audit"]["reference_checked"] is False and "reference_checked" not in doc["rows"][0]["audit"]
    assert "Retrain, the reference, did not run (include_retrain: False)" in doc["audit"]["reference_not_run"]
    assert "note: audit: Retrain, the reference, did not run" in capsys.readouterr().out
    assert doc["audit"]["references"] == 2
    assert doc["forget_set"]["held_out_twins"]["interactions"] > 0
    assert all("verdict" in row["audit"] for row in doc["rows"])
    # each method row's own audit (its scoring and bootstrap) was timed nowhere: audit.seconds
    # covers the references and the original's (a probe)
    assert all(row["audit"]["seconds"] >= 0 for row in doc["rows"] if row["method"] != "original"), doc["rows"]
    model = load_model(str(in_tmp / "m"))  # the twins stay out of a saved model's training data
    assert len(model.dataset.held_out) == doc["forget_set"]["held_out_twins"]["interactions"]
    assert not np.isin(model.dataset.held_out, model.rows_in_training_data()).any()


def test_the_audit_needs_a_sampled_forget_set(in_tmp):
    (in_tmp / "req.csv").write_text("2\n")
    with pytest.raises(UnlearnError, match="audit needs held-out twins"):
        run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(audit=True, forget=str(in_tmp / "req.csv")))


@pytest.mark.parametrize("protocol", ["thesis", "sru"])
def test_an_audit_with_too_few_users_is_refused_before_anything_is_written(tmp_path, protocol):
    """A forget set of one user gave every state a zero-width interval (the bootstrap resamples
    users): Retrain was reported "member signal" at 0.83 [0.83, 0.83]. Under the ``sru`` protocol
    one candidate user left no twins, and the run crashed in the bootstrap after training. Both
    are refused before training, with one line."""
    from recbole_unlearn import run_recbole_unlearn
    from recbole_unlearn.utils.errors import UnlearnError

    with pytest.raises(UnlearnError, match=r"audit needs at least audit_min_users \(10\) users"):
        run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
            unlearn_method="retrain", audit=True, forget_protocol=protocol, results_dir=str(tmp_path / "r"),
            **{"forget_user_ratio" if protocol == "thesis" else "sru_forget_ratio": 0.01}), verbose=False)
    assert not os.path.exists(tmp_path / "r")


def test_the_shuffled_check_of_a_small_audit_draws_again_a_deal_with_an_empty_side():
    """Two users in F and two in H, one sample each (``audit_min_users: 2``): one of the 20 draws
    of shuffled labels put every sample on one side, and the run ended in an ``IndexError``
    traceback after training (found by probing). Such a draw measures nothing and is drawn again."""
    users = np.arange(4)
    audit = MembershipAudit.__new__(MembershipAudit)
    audit.samples = AuditSamples(None, np.array([True, True, False, False]), users)
    audit.scores = lambda model: np.array([0.3, 0.1, 0.4, 0.2])
    for seed in range(30):
        audit.config = dict(forget_seed=seed, audit_bootstrap=50, audit_shuffles=20)
        result = audit.shuffled(None)
        assert result["draws"] == 20 and 0.0 <= result["auc"] <= 1.0, (seed, result)


def test_tpr_at_fpr_allows_the_whole_share_of_non_members_above_its_threshold():
    """With 100 non-members, 1% FPR allows one of them above the threshold; the threshold let
    none (``floor((n - 1) x fpr)``), so the TPR was measured at a lower FPR than it said (found by
    probing)."""
    assert tpr_at_fpr(np.full(10, 98.5), np.arange(100.0), 0.01) == 1.0
    assert tpr_at_fpr(np.full(10, 18.5), np.arange(20.0), 0.05) == 1.0
    assert tpr_at_fpr(np.full(10, 97.5), np.arange(100.0), 0.01) == 0.0  # two above: 2% FPR
    tied = np.array([5.0] * 3 + [1.0] * 97)  # three non-members tie at the top: none may go above
    assert tpr_at_fpr(np.array([5.0, 6.0]), tied, 0.01) == 0.5
    rng = np.random.default_rng(0)
    for _ in range(300):  # against the definition, by brute force over every threshold
        member, nonmember = rng.integers(0, 30, rng.integers(1, 40)), rng.integers(0, 30, rng.integers(1, 150))
        fpr = rng.choice([0.01, 0.05, 0.1])
        best = max((member > t).mean() for t in np.concatenate([member, nonmember, [-1.0]])
                   if (nonmember > t).mean() <= fpr)
        assert tpr_at_fpr(member.astype(float), nonmember.astype(float), fpr) == best


@pytest.mark.parametrize("protocol", ["thesis", "sru"])
def test_an_audit_whose_doubled_forget_ratio_exceeds_every_user_is_refused(tmp_path, protocol):
    """The audit draws its candidates at twice the forget ratio; a ratio above 0.5 was capped at
    every user without a word, so 0.6 and 1.0 forgot the same half (found by probing)."""
    with pytest.raises(UnlearnError, match=r"at most 0\.5 with audit"):
        run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
            unlearn_method="retrain", audit=True, forget_protocol=protocol, results_dir=str(tmp_path / "r"),
            **{"forget_user_ratio" if protocol == "thesis" else "sru_forget_ratio": 0.6}), verbose=False)
    assert not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("extra", ["ned", "red"])
def test_extra_deletions_never_pick_a_held_out_twin(extra):
    """Under ``audit: True`` NED and RED (and CED, by the same candidate list) chose held-out
    twins, which no model ever trained on, as extra deletions: they used up ``del_num`` and the
    row counted them as forgotten (found by probing: 44 of 251 extras on ml-tiny)."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data.extra_deletion import apply_extra_deletion
    from recbole_unlearn.unlearn.experiment import Experiment

    config = UnlearnConfig("GRU4Rec", config_dict=tiny_dict(audit=True, forget_user_ratio=0.3, extra_deletion=extra,
                                                            del_num=2))
    experiment = Experiment(config)
    held_out = experiment.data.held_out
    assert len(held_out)
    expanded = apply_extra_deletion(config, experiment.data, experiment.forget_set)
    assert len(expanded.extra) and not np.isin(expanded.extra, held_out).any()


def test_residual_memorisation_is_computed_from_unrounded_aucs():
    """RM was the ratio of the two AUCs as reported, rounded to 4 places: 0.7648's rounding put
    Retrain's RM at 0.0076 where the exact AUCs give 0.0075 (found by probing)."""
    for seed in range(100):  # a draw whose rounded AUCs give another RM than the exact ones
        rng = np.random.default_rng(seed)
        users = np.repeat(np.arange(300), 2)
        is_member = redeal_labels(users, rng)
        original_scores = is_member * 1.0 + rng.normal(size=len(users))
        later_scores = is_member * 0.05 + rng.normal(size=len(users))
        a = auc(later_scores[is_member], later_scores[~is_member])
        o = auc(original_scores[is_member], original_scores[~is_member])
        exact = round((a - 0.5) / (o - 0.5), 4)
        if exact != round((round(a, 4) - 0.5) / (round(o, 4) - 0.5), 4):
            break
    else:
        raise AssertionError("no such draw")
    audit = MembershipAudit.__new__(MembershipAudit)
    audit.samples = AuditSamples(None, is_member, users)
    audit.config = dict(forget_seed=0, audit_bootstrap=50)
    audit.original_auc = audit.original_interval = None
    scores = {"original": original_scores, "later": later_scores}
    audit.scores = lambda model: scores[model]
    audit.set_original("original")
    assert audit.report("later")["residual_memorisation"] == exact


def test_a_request_step_is_audited_on_the_members_requested_so_far(monkeypatch):
    """Under ``request_steps`` every step's audit compared all of F with H, so after request 1 the
    members of later requests, still trained on by the method and by Retrain alike, made an exact
    forget and Retrain itself read "member signal" (found by probing: AUC 0.626 and 0.657). A step
    counts only its requested users' members (and every held-out twin), with residual memorisation
    against the original on the same samples."""
    users = np.repeat(np.arange(1, 81), 5)  # users 1-40: F (1-20 requested so far), 41-80: H
    is_member = users <= 40
    samples = AuditSamples(samples=None, is_member=is_member, users=users)
    audit = MembershipAudit.__new__(MembershipAudit)
    audit.config = {"audit_bootstrap": 200, "forget_seed": 1, "audit_min_users": 10}
    audit.samples = samples
    rng = np.random.default_rng(0)
    original = np.where(is_member, 2.0, 0.0) + rng.normal(size=len(users))  # the original remembers all of F
    step = np.where(users > 20, original, rng.normal(size=len(users)))  # users 1-20 forgotten, 21-40 still trained
    scores = {"original": original, "step": step}
    monkeypatch.setattr(MembershipAudit, "scores", lambda self, model: scores[model])
    audit.set_original("original")
    whole = audit.report("step")
    so_far = audit.report("step", member_users=np.arange(1, 21))
    assert whole["verdict"] == "member signal"  # users 21-40's members were never requested
    assert so_far["members"] == 100 and so_far["held_out"] == 200
    assert so_far["verdict"] == "indistinguishable", so_far
    assert abs(so_far["residual_memorisation"]) < 0.5


def _synthetic_audit():
    """An audit of 80 users' 5 samples each (users 1-40: F, 41-80: H) whose model scores a
    test gives (``MembershipAudit.scores`` patched): ``(audit, users, is_member, rng)``."""
    users = np.repeat(np.arange(1, 81), 5)
    is_member = users <= 40
    audit = MembershipAudit.__new__(MembershipAudit)
    audit.config = {"audit_bootstrap": 200, "forget_seed": 1, "audit_min_users": 10}
    audit.samples = AuditSamples(samples=None, is_member=is_member, users=users)
    return audit, users, is_member, np.random.default_rng(0)


def test_a_step_whose_members_the_original_did_not_memorise_is_inconclusive(monkeypatch):
    """The step audit was gated on the whole F: on members the original itself did not tell apart
    it still gave a verdict (and residual memorisation -1.17), and an original AUC of exactly 0.5
    on them divided by zero (found by probing)."""
    audit, users, is_member, rng = _synthetic_audit()
    original = np.where(is_member & (users <= 20), 2.0, 0.0) + rng.normal(size=len(users))  # users 21-40 unmemorised
    scores = {"original": original, "step": rng.normal(size=len(users))}
    monkeypatch.setattr(MembershipAudit, "scores", lambda self, model: scores[model])
    audit.set_original("original")
    assert audit.conclusive
    step = audit.report("step", member_users=np.arange(21, 41))
    assert step["verdict"] == INCONCLUSIVE and "residual_memorisation" not in step, step
    # the step's summary said "inconclusive" with no count and no reason (a note of the last
    # session), where a step with too few users gave its count
    assert step["member_users"] == 20, step
    from recbole_unlearn.unlearn.experiment import _step_summary

    metrics = {"utility_rem": {"ndcg@10": 0.1}, "forget": {"hit@10": 0.2}}
    summary = _step_summary(metrics, 1.0, audit, "step", np.arange(21, 41))
    assert summary["audit_member_users"] == 20, summary
    assert "memorised nothing of them" in summary["audit_reason"], summary
    assert "audit_reason" not in _step_summary(metrics, 1.0, audit, "step", np.arange(1, 21))


def test_a_request_step_with_members_of_fewer_than_audit_min_users_users_is_inconclusive(monkeypatch):
    """A step's audit counts only the members requested so far, and a step could hold one user:
    its interval then resamples the twins alone, far too narrow; Retrains matched to one-user
    requests read "member signal" (1.0 [1.0, 1.0]) or "over-forgetting" as often as
    "indistinguishable" (a probe: 24, 22 and 13 of 59). Fewer than ``audit_min_users`` users'
    members give no verdict, with the count."""
    audit, users, is_member, rng = _synthetic_audit()
    original = np.where(is_member, 2.0, 0.0) + rng.normal(size=len(users))
    scores = {"original": original, "step": original}  # the step forgot nothing
    monkeypatch.setattr(MembershipAudit, "scores", lambda self, model: scores[model])
    audit.set_original("original")
    step = audit.report("step", member_users=np.arange(1, 10))  # 9 users
    assert step["verdict"] == INCONCLUSIVE and step["member_users"] == 9 and "auc" not in step, step
    assert "audit_min_users (10)" in step["reason"], step
    assert audit.report("step", member_users=np.arange(1, 11))["verdict"] == "member signal"
    # the step's summary (results.json, the repeated-requests table) says how many (round 2: dropped)
    from recbole_unlearn.unlearn.experiment import _step_summary

    metrics = {"utility_rem": {"ndcg@10": 0.1}, "forget": {"hit@10": 0.2}}
    summary = _step_summary(metrics, 1.0, audit, "step", np.arange(1, 10))
    assert summary["audit_verdict"] == INCONCLUSIVE and summary["audit_member_users"] == 9, summary


def test_an_audit_whose_samples_come_from_too_few_users_is_refused_before_training(tmp_path):
    """The minimum counted the users drawn into F and H, but a target without a history once F
    and H are removed (a user's first item; every target of a user whose training items were all
    drawn) has no sample: 27 and 25 users drawn, 6 members and 6 twins scored, all of one user,
    Retrain "over-forgetting" at 0.3056 [0.3056, 0.3056]; with none on one side the run ended in
    an IndexError after training (a probe). The users whose samples the audit scores count."""
    folder = tmp_path / "shorty"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"1\t{i % 60 + 1}\t{i}" for i in range(40)]  # one long user
    rng = np.random.default_rng(0)
    lines += [f"{u}\t{item}\t{k}" for u in range(2, 52)  # 50 users of 3: one training item each
              for k, item in enumerate(rng.choice(np.arange(1, 61), 3, replace=False))]
    (folder / "shorty.inter").write_text("\n".join(lines) + "\n")
    with pytest.raises(UnlearnError, match=r"audit needs at least audit_min_users \(10\) users .* whose "
                                           r"targets the audit scores"):
        run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(
            data_path=str(tmp_path), dataset="shorty", unlearn_method="retrain", audit=True, forget_user_ratio=0.5,
            forget_item_ratio=1.0, forget_skip_first=0, sru_inference_topk=[1, 5],
            results_dir=str(tmp_path / "r")), verbose=False)
    assert not os.path.exists(tmp_path / "r")


#: ml-tiny settings whose Retrain reads over-forgetting (0.437 [0.389, 0.488]): by chance, one
#: forget seed in about ten here (r9audit probe)
RETRAIN_OUTSIDE_ITS_INTERVAL = dict(unlearn_method="sisa", n_shards=2, shard_num_threads=1, save_model=False, epochs=5,
                                    dropout_prob=0.0, learning_rate=0.01, audit=True, forget_user_ratio=0.5,
                                    forget_seed=7, seed=7)


def test_rows_judged_against_a_retrain_that_fails_its_own_audit_get_no_verdict(in_tmp, capsys):
    """SPEC section 8: Retrain is the reference, its interval must contain 0.5. Only the
    original's gate was enforced: with Retrain reading over-forgetting, SISA still got
    "indistinguishable", judged against a reference that failed, and nothing said so (probe)."""
    doc = run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(results_dir=str(in_tmp / "r"),
                                                               **RETRAIN_OUTSIDE_ITS_INTERVAL))
    rows = {row["method"]: row["audit"] for row in doc["rows"]}
    assert rows["original"]["verdict"] == "member signal"
    assert rows["retrain"]["verdict"] == "over-forgetting", rows  # the run this test is about
    assert rows["sisa"]["verdict"] == INCONCLUSIVE and "Retrain, the reference" in rows["sisa"]["reason"], rows
    assert rows["sisa"]["measured_verdict"] == "indistinguishable" and rows["sisa"]["auc"] is not None
    assert "over-forgetting" in doc["audit"]["reference_failed"]
    assert "warning: audit: Retrain, the reference, reads over-forgetting" in capsys.readouterr().out


def test_a_grid_report_judges_every_row_against_its_retrain(tmp_path):
    """The leaderboard's audit table showed the verdicts of rows whose Retrain failed the gate."""
    from recbole_unlearn.benchmark.report import write_leaderboard

    def row(method, verdict, interval):
        return {"method": method, "seconds": 1.0, "utility_rem": {"ndcg@10": 0.1}, "forget": {"hit@10": 0.1},
                "audit": {"auc": sum(interval) / 2, "auc_interval": interval, "verdict": verdict}}

    held = [row("original", "member signal", [0.6, 0.7]), row("retrain", "indistinguishable", [0.48, 0.52]),
            row("sisa", "member signal", [0.51, 0.55])]
    failed = [row("original", "member signal", [0.6, 0.7]), row("retrain", "over-forgetting", [0.39, 0.49]),
              row("sisa", "indistinguishable", [0.41, 0.50])]
    cells = [{"model": "GRU4Rec", "dataset": "a", "rows": held}, {"model": "GRU4Rec", "dataset": "b", "rows": failed}]
    paths = write_leaderboard(cells, str(tmp_path))
    assert held[2]["audit"]["verdict"] == "member signal"
    assert failed[2]["audit"]["verdict"] == INCONCLUSIVE and failed[1]["audit"]["verdict"] == "over-forgetting"
    assert "| sisa | 0.455 [0.410, 0.500] | - | - | - | inconclusive |" in open(paths["md"]).read()


def test_a_request_step_is_judged_against_its_matched_retrain():
    """A request step's verdict beside a matched Retrain outside its interval is inconclusive."""
    step = {"audit_auc": 0.49, "audit_verdict": "indistinguishable"}
    gate_step_on_reference(step, {"audit_auc": 0.44, "audit_verdict": "over-forgetting"})
    assert step["audit_verdict"] == INCONCLUSIVE and step["audit_measured_verdict"] == "indistinguishable"
    assert "Retrain, the reference, reads over-forgetting (AUC 0.44)" in step["audit_reason"]
    kept = {"audit_auc": 0.6, "audit_verdict": "member signal"}
    gate_step_on_reference(kept, {"audit_auc": 0.5, "audit_verdict": "indistinguishable"})
    assert kept == {"audit_auc": 0.6, "audit_verdict": "member signal"}


def test_a_run_without_retrain_judges_a_request_steps_row_against_its_last_matched_retrain():
    """Without Retrain (``include_retrain: False``) a row with request steps was marked
    ``reference_checked: false`` and the note said the check was not made, while its last step's
    matched Retrain, which forgot what the row forgot, had been audited (r11round2 probe): that
    Retrain is the row's reference."""
    from recbole_unlearn.evaluator.audit import apply_step_reference_gate, reference_not_run

    def row(method, verdict, matched=None):
        out = {"method": method, "audit": {"auc": 0.5, "verdict": verdict}}
        if matched:
            out["steps"] = [{"retrain": {"audit_auc": 0.5, "audit_verdict": "indistinguishable"}},
                            {"retrain": {"audit_auc": matched[0], "audit_verdict": matched[1]}}]
        return out

    held = [row("original", "member signal"), row("sruga", "member signal", (0.504, "indistinguishable"))]
    assert apply_step_reference_gate(held) is None and reference_not_run(held) is None
    assert held[1]["audit"] == {"auc": 0.5, "verdict": "member signal",
                                "reference": "the last request step's matched Retrain"}
    failed = [row("original", "member signal"), row("sruga", "indistinguishable", (0.43, "over-forgetting"))]
    # said, as a failed Retrain row is (it went inconclusive unsaid; r11round5 probe)
    assert apply_step_reference_gate(failed).startswith("sruga: Retrain, the reference, reads over-forgetting (AUC 0.43)")
    assert reference_not_run(failed) is None
    assert failed[1]["audit"]["verdict"] == INCONCLUSIVE and failed[1]["audit"]["measured_verdict"] == "indistinguishable"
    plain = [row("original", "member signal"), row("sisa", "indistinguishable")]
    assert apply_step_reference_gate(plain) is None
    assert "did not run" in reference_not_run(plain) and plain[1]["audit"]["reference_checked"] is False
