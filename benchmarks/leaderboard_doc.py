"""Write ``docs/leaderboard.md`` and ``docs/leaderboard.html`` from the finished rows of grids.

The grid runner writes the same tables into the grid's ``output_dir`` (``leaderboard.md``,
``.csv``, ``.html`` with plotly.js embedded). This script puts the finished rows of every
started cell of one or more grids (a grid may still be running, or stopped), in the order
given, under a hand-written introduction and analysis, and writes an HTML report that loads
plotly.js from its CDN (small enough to commit):

    python benchmarks/leaderboard_doc.py --grid=benchmarks/grids/thesis-sasrec.yaml \\
        --grid=benchmarks/grids/thesis-gru4rec.yaml \\
        --intro=benchmarks/leaderboard_intro.md --out=docs/leaderboard
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from recbole_unlearn.benchmark.report import leaderboard_html, leaderboard_markdown  # noqa: E402
from recbole_unlearn.benchmark.runner import finished_cells  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", required=True, action="append", help="a grid YAML; repeat for several")
    parser.add_argument("--intro", required=True, help="Markdown placed above the tables ({tables} marks where)")
    parser.add_argument("--out", required=True, help="path without extension: writes .md and .html")
    args = parser.parse_args()
    cells = [cell for grid in args.grid for cell in finished_cells(grid)]
    tables = leaderboard_markdown(cells, title="").split("\n", 2)[2]  # drop the title line
    with open(args.intro, encoding="utf-8") as f:
        intro = f.read()
    with open(args.out + ".md", "w", encoding="utf-8") as f:
        f.write(intro.replace("{tables}", tables.strip() + "\n"))
    with open(args.out + ".html", "w", encoding="utf-8") as f:
        f.write(leaderboard_html(cells, title="recbole_unlearn leaderboard", plotlyjs="cdn"))
    print(f"wrote {args.out}.md and {args.out}.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
