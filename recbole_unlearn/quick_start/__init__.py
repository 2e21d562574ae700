from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.quick_start.forget_requests import run_forget_requests
from recbole_unlearn.quick_start.quick_start import run_recbole_unlearn

__all__ = ["run_recbole_unlearn", "run_forget_requests"]
