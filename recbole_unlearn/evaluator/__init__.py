from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.evaluator.metrics import (
    full_ranking_metrics,
    hit_at_k,
    sample_negatives,
    sampled_hit,
    target_ranks,
)
from recbole_unlearn.evaluator.suite import EvaluationSuite

__all__ = ["full_ranking_metrics", "hit_at_k", "sample_negatives", "sampled_hit", "target_ranks",
           "EvaluationSuite"]
