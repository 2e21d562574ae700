"""Leaderboard files: ``leaderboard.csv``, ``leaderboard.md`` (the thesis's Table 4 layout) and
``leaderboard.html`` (plotly: utility vs forget Hit@10 per method, and unlearning time bars)."""
import csv
import io
import os
from typing import Dict, List, Optional, Tuple

from recbole_unlearn.utils.atomic import atomic_write

#: (column header, metric group, metric key) in the order of the thesis's Table 4.
METRIC_COLUMNS: List[Tuple[str, str, str]] = [
    ("D_raw NDCG@10", "utility_raw", "ndcg@10"),
    ("D_raw NDCG@20", "utility_raw", "ndcg@20"),
    ("D_raw Recall@10", "utility_raw", "recall@10"),
    ("D_raw Recall@20", "utility_raw", "recall@20"),
    ("D_rem NDCG@10", "utility_rem", "ndcg@10"),
    ("D_rem NDCG@20", "utility_rem", "ndcg@20"),
    ("D_rem Recall@10", "utility_rem", "recall@10"),
    ("D_rem Recall@20", "utility_rem", "recall@20"),
    ("D_fgt Hit@1", "forget", "hit@1"),
    ("D_fgt Hit@5", "forget", "hit@5"),
    ("D_fgt Hit@10", "forget", "hit@10"),
    ("D_fgt Hit@20", "forget", "hit@20"),
    ("SRU inf Hit@10", "sru_inference", "hit@10"),
]
INFO_COLUMNS = ["seconds", "speedup", "initial_train_seconds", "epochs_run", "n_shards",
                "shards_retrained", "extra_deleted", "forgotten_interactions"]


def _value(row: dict, group: str, key: str) -> Optional[float]:
    return (row.get(group) or {}).get(key)


def flat_rows(cells: List[dict]) -> List[Dict[str, object]]:
    """One flat dict per (cell, row): model, dataset, method, every metric and info column."""
    out = []
    for cell in cells:
        for row in cell["rows"]:
            flat = {"model": cell["model"], "dataset": cell["dataset"], "method": row["method"],
                    "unlearn_method": row.get("unlearn_method", row["method"])}
            for header, group, key in METRIC_COLUMNS:
                flat[header] = _value(row, group, key)
            for key in INFO_COLUMNS:
                flat[key] = row.get(key)
            out.append(flat)
    return out


def leaderboard_csv(cells: List[dict]) -> str:
    rows = flat_rows(cells)
    header = ["model", "dataset", "method", "unlearn_method"] + [c[0] for c in METRIC_COLUMNS] + INFO_COLUMNS
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def leaderboard_markdown(cells: List[dict], title: str = "Leaderboard") -> str:
    """One table per (model, dataset): the thesis's Table 4 columns, seconds and speedup."""
    lines = [f"# {title}", ""]
    headers = ["method"] + [c[0] for c in METRIC_COLUMNS] + ["unlearning s", "speedup vs Retrain"]
    for cell in cells:
        lines.append(f"## {cell['model']} on {cell['dataset']}")
        lines.append("")
        lines.append(cell.get("description", ""))
        lines.append("")
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|")
        for row in cell["rows"]:
            cells_ = [row["method"]] + [_fmt(_value(row, g, k)) for _, g, k in METRIC_COLUMNS]
            cells_ += [_fmt(row.get("seconds"), 1), _fmt(row.get("speedup"), 1)]
            lines.append("| " + " | ".join(cells_) + " |")
        lines.append("")
    lines.append("`original` and `recbole` rows: `unlearning s` is their training time. `recbole` is "
                 "RecBole's own pipeline (D_raw only). Sharded rows: see `initial_train_seconds` in "
                 "leaderboard.csv for the training before any request.")
    lines.append("")
    return "\n".join(lines)


def _parse_cell_value(text: str) -> Optional[float]:
    return None if text == "-" else float(text)


def cells_from_markdown(text: str) -> List[dict]:
    """The cells of a ``leaderboard_markdown`` document, read back from its tables: the inverse of
    that function up to its rounding (metrics to 4 decimals, seconds and speedup to 1). Lets a
    committed leaderboard be re-rendered, or merged with newly measured cells, on a machine that
    no longer holds the rows the tables were written from. Sections whose header row is not the
    leaderboard's own are skipped; ``machine`` is not in the tables and comes back empty."""
    headers = ["method"] + [c[0] for c in METRIC_COLUMNS] + ["unlearning s", "speedup vs Retrain"]
    header_line = "| " + " | ".join(headers) + " |"
    cells: List[dict] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("## ") or " on " not in line:
            continue
        model, dataset = line[3:].split(" on ", 1)
        description = lines[index + 2] if index + 2 < len(lines) else ""
        if index + 4 >= len(lines) or lines[index + 4] != header_line:
            continue
        rows = []
        for row_line in lines[index + 6:]:
            if not row_line.startswith("| "):
                break
            fields = [field.strip() for field in row_line.strip().strip("|").split("|")]
            if len(fields) != len(headers):
                raise ValueError(f"leaderboard table row has {len(fields)} fields, not {len(headers)}: {row_line}")
            row: dict = {"method": fields[0]}
            for (_, group, key), field in zip(METRIC_COLUMNS, fields[1:]):
                value = _parse_cell_value(field)
                if value is not None:
                    row.setdefault(group, {})[key] = value
            row["seconds"] = _parse_cell_value(fields[-2])
            row["speedup"] = _parse_cell_value(fields[-1])
            rows.append(row)
        cells.append({"model": model, "dataset": dataset, "description": description,
                      "machine": "", "rows": rows})
    return cells


def leaderboard_html(cells: List[dict], title: str = "Leaderboard", plotlyjs="cdn") -> str:
    """Two plotly figures per report: D_rem NDCG@10 vs D_fgt Hit@10 (one marker per method,
    one panel per cell), and unlearning seconds per method (log scale). ``plotlyjs``: ``"cdn"``
    or ``True`` (embed plotly.js, ~4 MB, for offline viewing)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = [f"{c['model']} / {c['dataset']}" for c in cells]
    cols = min(len(cells), 3)
    rows_n = (len(cells) + cols - 1) // cols
    scatter = make_subplots(rows=rows_n, cols=cols, subplot_titles=names)
    bars = make_subplots(rows=rows_n, cols=cols, subplot_titles=names)
    methods = list(dict.fromkeys(r["method"] for c in cells for r in c["rows"]))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    colour = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    for index, cell in enumerate(cells):
        r, c = index // cols + 1, index % cols + 1
        for row in cell["rows"]:
            method = row["method"]
            x, y = _value(row, "forget", "hit@10"), _value(row, "utility_rem", "ndcg@10")
            if x is not None and y is not None:
                scatter.add_trace(go.Scatter(
                    x=[x], y=[y], mode="markers+text", text=[method], textposition="top center",
                    marker=dict(size=11, color=colour[method]), name=method, legendgroup=method,
                    showlegend=index == 0,
                    hovertemplate=f"{method}<br>D_fgt Hit@10 %{{x:.4f}}<br>D_rem NDCG@10 %{{y:.4f}}<extra></extra>",
                ), row=r, col=c)
            if method not in ("original", "recbole") and row.get("seconds"):
                bars.add_trace(go.Bar(
                    x=[method], y=[row["seconds"]], marker_color=colour[method], name=method,
                    legendgroup=method, showlegend=False,
                    hovertemplate=f"{method}: %{{y:.1f}} s<extra></extra>",
                ), row=r, col=c)
        scatter.update_xaxes(title_text="D_fgt Hit@10 (lower = more forgotten)", row=r, col=c)
        scatter.update_yaxes(title_text="D_rem NDCG@10", row=r, col=c)
        bars.update_yaxes(type="log", title_text="unlearning seconds", row=r, col=c)
    scatter.update_layout(title="Utility on D_rem vs forget Hit@10", height=420 * rows_n)
    bars.update_layout(title="Unlearning time (log scale)", height=380 * rows_n)
    body = scatter.to_html(full_html=False, include_plotlyjs=plotlyjs)
    body += bars.to_html(full_html=False, include_plotlyjs=False)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
            f"<body><h1>{title}</h1>\n{body}\n</body></html>\n")


def write_leaderboard(cells: List[dict], output_dir: str, title: str = "Leaderboard", plotlyjs=True) -> Dict[str, str]:
    """Write the three files atomically into ``output_dir``; returns their paths."""
    paths = {
        "csv": os.path.join(output_dir, "leaderboard.csv"),
        "md": os.path.join(output_dir, "leaderboard.md"),
        "html": os.path.join(output_dir, "leaderboard.html"),
    }
    contents = {
        "csv": leaderboard_csv(cells),
        "md": leaderboard_markdown(cells, title),
        "html": leaderboard_html(cells, title, plotlyjs),
    }
    for kind, path in paths.items():
        data = contents[kind].encode("utf-8")
        atomic_write(path, lambda f, data=data: f.write(data))
    return paths
