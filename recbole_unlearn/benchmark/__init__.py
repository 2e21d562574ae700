"""The leaderboard: a YAML grid of models x datasets x methods, run resumably into tables
(CSV, Markdown) and a plotly HTML report."""
from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.benchmark.grid import Cell, Grid, Variant, expand_grid, load_grid

__all__ = ["Cell", "Grid", "Variant", "expand_grid", "load_grid"]
