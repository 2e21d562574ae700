"""Write ``docs/leaderboard.{md,html,csv}`` from the finished rows of grids.

The grid runner writes the same tables into the grid's ``output_dir`` (``leaderboard.md``,
``.csv``, ``.html`` with plotly.js embedded). This script puts the finished rows of every
started cell of one or more grids (a grid may still be running, or stopped), in the order
given, under a hand-written introduction and analysis, and writes an HTML report with plotly.js
embedded, so that the committed report renders offline:

    python benchmarks/leaderboard_doc.py --grid=benchmarks/grids/thesis-sasrec.yaml \\
        --grid=benchmarks/grids/thesis-gru4rec-bert4rec.yaml \\
        --intro=benchmarks/leaderboard_intro.md --out=docs/leaderboard

``--reuse=docs/leaderboard.md`` keeps, for every cell of the grids that has no rows on this
machine, its table from that earlier document (read back with ``cells_from_markdown``, so at
the table's rounding), so that a new cell can be added without rerunning the old ones.
"""
import argparse
import os
import sys
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from recbole_unlearn.benchmark.grid import load_grid  # noqa: E402
from recbole_unlearn.benchmark.report import (  # noqa: E402
    cells_from_markdown,
    leaderboard_csv,
    leaderboard_html,
    leaderboard_markdown,
    targets_overview_markdown,
)
from recbole_unlearn.benchmark.runner import finished_cells  # noqa: E402
from recbole_unlearn.utils.errors import UnlearnError  # noqa: E402


def collect_cells(grids: List[str], reuse: Optional[str] = None) -> List[dict]:
    """Every cell of ``grids`` in grid order: its finished rows here, else (with ``reuse``) its
    table from that earlier leaderboard document; cells with neither are left out."""
    previous = {}
    if reuse is not None:
        with open(reuse, encoding="utf-8") as f:
            previous = {(c["model"], c["dataset"]): c for c in cells_from_markdown(f.read())}
    cells = []
    for path in grids:
        measured = {(c["model"], c["dataset"]): c for c in finished_cells(path) if c["rows"]}
        for cell in load_grid(path).cells:
            key = (cell.model, cell.dataset)
            if key in measured:
                cells.append(measured[key])
            elif key in previous:
                methods = {variant.label: variant.method for variant in cell.variants}
                for row in previous[key]["rows"]:  # the tables show labels; the CSV names the method too
                    row.setdefault("unlearn_method", methods.get(row["method"], row["method"]))
                cells.append(previous[key])
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", required=True, action="append", help="a grid YAML; repeat for several")
    parser.add_argument("--intro", required=True, help="Markdown placed above the tables ({tables} marks where; "
                        "{targets_overview}, if present, is replaced by every cell's rows as fractions of its Retrain)")
    parser.add_argument("--out", required=True, help="path without extension: writes .md, .html and .csv")
    parser.add_argument("--reuse", help="an earlier output .md: its tables stand in for cells with no rows here")
    parser.add_argument("--no-html", action="store_true",
                        help="write only .md and .csv (the HTML report embeds 4 MB of plotly.js)")
    args = parser.parse_args()
    try:
        cells = collect_cells(args.grid, args.reuse)
    except UnlearnError as e:  # a grid or cell it refuses: one line, as the runner's (a traceback before)
        print(f"error: {e}", file=sys.stderr)
        return 2
    tables = leaderboard_markdown(cells, title="").split("\n", 2)[2]  # drop the title line
    with open(args.intro, encoding="utf-8") as f:
        intro = f.read()
    with open(args.out + ".md", "w", encoding="utf-8") as f:
        overview = "\n".join(targets_overview_markdown(cells))
        f.write(intro.replace("{targets_overview}", overview.strip()).replace("{tables}", tables.strip() + "\n"))
    if not args.no_html:
        with open(args.out + ".html", "w", encoding="utf-8") as f:
            f.write(leaderboard_html(cells, title="recbole_unlearn leaderboard", plotlyjs=True))
    with open(args.out + ".csv", "w", encoding="utf-8") as f:
        f.write(leaderboard_csv(cells))
    print(f"wrote {args.out}.md{'' if args.no_html else ', ' + args.out + '.html'} and {args.out}.csv "
          f"({len(cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
