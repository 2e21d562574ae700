"""Unlearning methods. Each lives in its own module and registers itself in ``METHODS``;
importing this package imports them all."""
from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.unlearn.base import METHODS, UnlearnMethod, UnlearnResult
from recbole_unlearn.unlearn import approximate, receraser, retrain, sisa, sru  # noqa: F401  (register themselves)

__all__ = ["METHODS", "UnlearnMethod", "UnlearnResult"]
