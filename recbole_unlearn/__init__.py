"""recbole_unlearn: machine unlearning for RecBole's sequential recommenders."""
from recbole_unlearn.version import __version__

from recbole_unlearn import compat  # noqa: F401,E402  (NumPy aliases RecBole needs)

from recbole_unlearn.quick_start import run_recbole_unlearn  # noqa: E402

__all__ = ["run_recbole_unlearn", "__version__"]
