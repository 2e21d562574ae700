from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.config.configurator import UnlearnConfig, default_setting, method_names

__all__ = ["UnlearnConfig", "default_setting", "method_names"]
