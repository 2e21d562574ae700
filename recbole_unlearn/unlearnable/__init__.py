"""Deployable unlearnable models: weights plus the interactions forgotten so far."""
from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.unlearnable.base import ForgetReport, UnlearnableModel
from recbole_unlearn.unlearnable.sharded import ShardedUnlearnableModel
from recbole_unlearn.unlearnable.single import SingleUnlearnableModel

#: manifest format tag -> class, for loading a saved version.
MODEL_FORMATS = {cls.FORMAT: cls for cls in (ShardedUnlearnableModel, SingleUnlearnableModel)}

__all__ = ["ForgetReport", "UnlearnableModel", "ShardedUnlearnableModel", "SingleUnlearnableModel", "MODEL_FORMATS"]
