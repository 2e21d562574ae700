"""Metric values on hand-made rankings."""
import math

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_unlearn.evaluator import full_ranking_metrics, hit_at_k, sample_negatives, sampled_hit, target_ranks

# 3 samples over items 1..4 (0 is padding). Target ranks: 2, 1, 4.
SCORES = torch.tensor(
    [
        [0.0, 0.9, 0.8, 0.1, 0.0],  # target 2 -> rank 2
        [0.0, 0.9, 0.5, 0.4, 0.3],  # target 1 -> rank 1
        [0.0, 0.9, 0.8, 0.7, 0.1],  # target 4 -> rank 4
    ]
)
TARGETS = torch.tensor([2, 1, 4])


class _Samples:
    item_num = 5

    def __len__(self):
        return 3


class StubLoader:
    """Yields what a RecBole FullSortEvalDataLoader yields, in two batches."""

    _dataset = _Samples()

    def __iter__(self):
        for idx in (torch.tensor([0, 1]), torch.tensor([2])):
            inter = Interaction({"row": idx, "item_id": TARGETS[idx]})
            yield inter, None, torch.arange(len(idx)), TARGETS[idx]


class StubModel(torch.nn.Module):
    def full_sort_predict(self, interaction):
        return SCORES[interaction["row"]].clone()


CONFIG = {
    "metric_decimal_place": 4,
    "eval_args": {"mode": {"valid": "full", "test": "full"}},
    "device": torch.device("cpu"),
    "ITEM_ID_FIELD": "item_id",
    "USER_ID_FIELD": "user_id",
    "LABEL_FIELD": "label",
}


def test_full_ranking_metrics_by_hand():
    result = full_ranking_metrics(StubModel(), StubLoader(), CONFIG, ["Hit", "NDCG", "Recall"], [1, 2, 4])
    ndcg_rank2, ndcg_rank4 = 1 / math.log2(3), 1 / math.log2(5)
    assert result["hit@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["hit@2"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["hit@4"] == pytest.approx(1.0)
    assert result["ndcg@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["ndcg@2"] == pytest.approx((ndcg_rank2 + 1) / 3, abs=1e-4)
    assert result["ndcg@4"] == pytest.approx((ndcg_rank2 + 1 + ndcg_rank4) / 3, abs=1e-4)
    assert result["recall@2"] == pytest.approx(2 / 3, abs=1e-4)


def test_a_metric_without_a_cut_off_is_rounded_as_the_others():
    """GAUC (RecBole returns it unrounded) was written 0.4846999943256378 beside 4-decimal
    metrics (round 2 of probing)."""
    result = full_ranking_metrics(StubModel(), StubLoader(), CONFIG, ["GAUC", "NDCG"], [2])
    assert set(result) == {"gauc", "ndcg@2"}
    assert all(value == round(value, 4) for value in result.values()), result


def test_padding_item_never_ranks():
    scores = SCORES.clone()
    scores[:, 0] = 100.0  # the model loves the padding item; it must still be ignored
    model = StubModel()
    model.full_sort_predict = lambda inter: scores[inter["row"]].clone()
    assert full_ranking_metrics(model, StubLoader(), CONFIG, ["Hit"], [1])["hit@1"] == pytest.approx(1 / 3, abs=1e-4)


def test_target_ranks_and_hits_by_hand():
    candidates = torch.tensor([[1, 3], [2, 3], [1, 2]])
    ranks = target_ranks(SCORES, TARGETS, candidates)
    assert ranks.tolist() == [2, 1, 3]
    assert hit_at_k(ranks, [1, 2, 3]) == {"hit@1": 0.3333, "hit@2": 0.6667, "hit@3": 1.0}
    assert hit_at_k(torch.tensor([]), [1]) == {}


def test_ties_count_against_the_target():
    scores = torch.tensor([[0.0, 0.5, 0.5]])
    assert target_ranks(scores, torch.tensor([1]), torch.tensor([[2]])).tolist() == [2]


def test_sampled_hit_through_loader():
    negatives = torch.tensor([[1, 3], [2, 3], [1, 2]])
    cfg = dict(CONFIG)
    # among 2 negatives every target ranks within 3: hit@3 is 1 by construction, not measured
    assert sampled_hit(StubModel(), StubLoader(), negatives, [1, 3], cfg) == {"hit@1": 0.3333, "hit@3": None}


def test_sample_negatives_avoid_the_users_items():
    samples = Interaction({"user_id": torch.tensor([1, 2, 1])})
    user_items = [np.array([]), np.array([1, 2, 3]), np.array([4, 5])]
    neg = sample_negatives(samples, user_items, n_items=10, n_neg=4, seed=0, uid_field="user_id")
    assert neg.shape == (3, 4)
    for user, row in zip([1, 2, 1], neg.tolist()):
        assert not set(row) & set(user_items[user].tolist())
        assert 0 not in row and len(set(row)) == 4
    again = sample_negatives(samples, user_items, n_items=10, n_neg=4, seed=0, uid_field="user_id")
    assert torch.equal(neg, again)


@pytest.mark.parametrize("metrics", [["Hit", "NDCG", "Recall", "MRR", "Precision", "MAP"],
                                     ["NDCG", "ItemCoverage"], ["NDCG", "GAUC"]])
def test_topk_collector_gives_recboles_resources_and_metrics(metrics):
    """TopkCollector must hand RecBole's Evaluator exactly what RecBole's own Collector does:
    several positives per row, a pair given twice, rows without positives, ties in the scores."""
    from recbole.evaluator import Collector, Evaluator

    from recbole_unlearn.evaluator.collector import TopkCollector

    generator = torch.Generator().manual_seed(0)
    config = dict(CONFIG, metrics=metrics, topk=[1, 5, 10])
    ours, recboles = TopkCollector(config), Collector(config)
    for batch in range(4):
        scores = torch.randint(0, 6, (32, 50), generator=generator).float()  # many ties
        scores[:, 0] = -np.inf
        positive_u = torch.randint(0, 30, (40,), generator=generator)  # rows 30, 31: none
        positive_i = torch.randint(1, 50, (40,), generator=generator)
        positive_u[-1], positive_i[-1] = positive_u[0], positive_i[0]  # a repeated pair
        interaction = Interaction({"item_id": positive_i[:32], "label": torch.ones(32)})
        for collector in (ours, recboles):
            collector.eval_batch_collect(scores.clone(), interaction, positive_u, positive_i)
    compared = [key for key in ("rec.topk", "rec.items", "rec.meanrank", "rec.score") if key in recboles.data_struct]
    assert compared and all(key in ours.data_struct for key in compared)
    for key in compared:
        assert torch.equal(ours.data_struct.get(key), recboles.data_struct.get(key)), key
        assert ours.data_struct.get(key).dtype == recboles.data_struct.get(key).dtype, key
    if "ItemCoverage" in metrics:
        return  # needs the training data's item counts (data_collect); the resources are what it reads
    expected = Evaluator(config).evaluate(recboles.get_data_struct())
    result = Evaluator(config).evaluate(ours.get_data_struct())
    assert list(result) == list(expected)
    np.testing.assert_array_equal(np.array(list(result.values())), np.array(list(expected.values())))
