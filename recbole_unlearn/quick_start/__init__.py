from recbole_unlearn.quick_start.quick_start import run_recbole_unlearn

__all__ = ["run_recbole_unlearn"]
