"""recbole_unlearn: machine unlearning for RecBole's sequential recommenders."""
__version__ = "0.1.0"

from recbole_unlearn import compat  # noqa: F401,E402  (NumPy aliases RecBole needs)

from recbole_unlearn.quick_start import run_recbole_unlearn  # noqa: E402

__all__ = ["run_recbole_unlearn", "__version__"]
