from recbole_unlearn.model.aggregators import AGGREGATORS, Aggregator, MeanAggregator, StaticAggregator
from recbole_unlearn.model.ensemble import EnsembleSequentialRecommender

__all__ = ["AGGREGATORS", "Aggregator", "MeanAggregator", "StaticAggregator", "EnsembleSequentialRecommender"]
