from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.model.aggregators import AGGREGATORS, Aggregator, MeanAggregator, StaticAggregator
from recbole_unlearn.model.ensemble import EnsembleSequentialRecommender

__all__ = ["AGGREGATORS", "Aggregator", "MeanAggregator", "StaticAggregator", "EnsembleSequentialRecommender"]
