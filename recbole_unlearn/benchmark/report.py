"""Leaderboard files: ``leaderboard.csv``, ``leaderboard.md`` (the thesis's Table 4 layout) and
``leaderboard.html`` (plotly: utility vs forget Hit@10 per method, and unlearning time bars)."""
import csv
import io
import math
import os
from typing import Dict, List, Optional, Tuple

from recbole_unlearn.evaluator.audit import apply_reference_gate
from recbole_unlearn.utils.atomic import atomic_write
from recbole_unlearn.utils.cpu_meter import busy_rows_note
from recbole_unlearn.utils.results import (changed_nothing, forget_hit_rose, forget_hit_rose_note, has_approximate_step,
                                          training_summary, unchanged_rows_note, why_unchanged)

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
                "shards_retrained", "extra_deleted", "forgotten_interactions", "changed", "unchanged_steps",
                "unchanged_shards",
                "sru_inference_samples",  # forgotten items SRU inference measured: fewer after extra deletions
                "sru_inference_negatives"]  # negatives each was ranked among: fewer where a user has fewer unseen
#: (CSV column, key of a row's ``audit``): the membership-inference audit of each model state.
AUDIT_COLUMNS: List[Tuple[str, str]] = [
    ("audit_auc", "auc"), ("audit_tpr@1%fpr", "tpr@1%fpr"), ("audit_tpr@5%fpr", "tpr@5%fpr"),
    ("audit_rm", "residual_memorisation"), ("audit_verdict", "verdict"),
]
#: a grid's targets: kind -> (metric group of a row, or ``None`` for a top-level value; key;
#: whether the row must reach at least its fraction of Retrain's value (else at most))
TARGET_KINDS: Dict[str, Tuple[Optional[str], str, bool]] = {
    "ndcg_at_least": ("utility_rem", "ndcg@10", True), "forget_at_most": ("forget", "hit@10", False),
    "seconds_at_most": (None, "seconds", False)}
EXTRA_COLUMNS = ["audit_auc_low", "audit_auc_high"] + [c for c, _ in AUDIT_COLUMNS] + ["training", "cap_hit",
                                                                                      "forget_hit_rose"]


def audit_values(row: dict) -> Dict[str, object]:
    """The audit columns of a row (empty values where the row has no audit)."""
    audit = row.get("audit") or {}
    interval = audit.get("auc_interval") or [None, None]
    out = {column: audit.get(key) for column, key in AUDIT_COLUMNS}
    out.update(audit_auc_low=interval[0], audit_auc_high=interval[1])
    return out


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
            flat.update(audit_values(row))
            flat["training"], flat["cap_hit"] = training_summary(row, cell.get("epochs_cap"))
            # an approximate step that left forget Hit@10 higher than before (empty: no step ran)
            flat["forget_hit_rose"] = forget_hit_rose(row) if has_approximate_step(row) else None
            out.append(flat)
    return out


def leaderboard_csv(cells: List[dict]) -> str:
    rows = flat_rows(cells)
    header = ["model", "dataset", "method", "unlearn_method"] + [c[0] for c in METRIC_COLUMNS] + INFO_COLUMNS
    header += EXTRA_COLUMNS
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
            # as recorded (2 decimals), or as read back from a table written with fewer
            cells_ += [_fmt(row.get("seconds"), 1), _fmt(row.get("speedup"), row.get("speedup_decimals", 2))]
            lines.append("| " + " | ".join(cells_) + " |")
        lines.append("")
        busy = busy_rows_note(cell["rows"], cell["busy_cpu_share"]) if "busy_cpu_share" in cell else None
        if busy:
            lines += [f"Timing: {busy}.", ""]
        unchanged = unchanged_rows_note(cell["rows"])
        if unchanged:
            lines += [f"Not forgotten: {unchanged}.", ""]
        lines += [line for note in forget_hit_rose_note(cell["rows"]) for line in (f"Recalled more: {note}.", "")]
        lines += audit_training_markdown(cell)
        lines += targets_markdown(cell)
        lines += repeated_requests_markdown(cell)
    lines.append("`original` and `recbole` rows: `unlearning s` is their training time. `recbole` is "
                 "RecBole's own pipeline (D_raw only). Sharded rows: see `initial_train_seconds` in "
                 "leaderboard.csv for the training before any request.")
    lines.append("")
    return "\n".join(lines)


def audit_training_markdown(cell: dict) -> List[str]:
    """The membership-inference audit of every row (AUC of F vs H with its 95% interval, TPR at
    1% and 5% FPR, residual memorisation, verdict) and how its models trained (epochs; a model
    that stopped at its cap is marked); ``[]`` when no row has either."""
    rows = [(r, training_summary(r, cell.get("epochs_cap"))[0]) for r in cell["rows"]]
    rows = [(r, training) for r, training in rows if r.get("audit") or training]
    if not rows:
        return []
    lines = ["Audit and training:", "",
             "| method | audit AUC [95% interval] | TPR@1%FPR | TPR@5%FPR | RM | verdict | training |",
             "|---|---:|---:|---:|---:|---|---|"]
    for row, training in rows:
        audit = audit_values(row)
        auc = "-" if audit["audit_auc"] is None else \
            f"{audit['audit_auc']:.3f} [{audit['audit_auc_low']:.3f}, {audit['audit_auc_high']:.3f}]"
        lines.append("| " + " | ".join([
            row["method"], auc, _fmt(audit["audit_tpr@1%fpr"], 3), _fmt(audit["audit_tpr@5%fpr"], 3),
            _fmt(audit["audit_rm"], 2), _fmt(audit["audit_verdict"]), training or "-"]) + " |")
    return lines + [""]


#: what the Targets table and the overview say of a row whose forget left the weights as they were
UNCHANGED = "did not change the model"


def _target_value(row: dict, kind: str) -> Optional[float]:
    group, key, _ = TARGET_KINDS[kind]
    return row.get(key) if group is None else _value(row, group, key)


def _fraction(value: float, kind: str, digits: Optional[int] = None) -> str:
    """A fraction of Retrain's value as read: ``0.93 x``, or for time ``1/50.9`` (``digits``
    after the point: 2, or 1 for time, by default)."""
    if kind == "seconds_at_most" and 0 < value < 1:
        return f"1/{1 / value:.{1 if digits is None else digits}f}"
    return f"{value:.{2 if digits is None else digits}f} x"


#: relative difference under which a ratio is its target: the values are rounded when recorded
#: (4 decimals, times 3), so a row exactly at its target is a tie the division may round past
#: (0.018 / 0.02 = 0.8999999999999999); a real difference is far larger
TIE_REL_TOL = 1e-9


def _is_tie(ratio: float, target: float) -> bool:
    return math.isclose(ratio, target, rel_tol=TIE_REL_TOL)


def _meets(ratio: float, target: float, kind: str) -> bool:
    """Whether a ratio to Retrain's value meets its ``target`` (at least, or at most, by kind;
    a tie meets either)."""
    return _is_tie(ratio, target) or (ratio >= target if TARGET_KINDS[kind][2] else ratio <= target)


def target_text(ratio: float, target: float, kind: str, met: Optional[bool] = None) -> str:
    """``<ratio>; <bound> <target>: met|missed``, the ratio with as many more digits (up to 4)
    as tell it from the target where the usual ones print both alike (``1/2.0; <= 1/2.0:
    missed`` read like a pass; the ratio was 1/1.98). ``met``: as :func:`target_results` decided
    it (by default, by :func:`_meets`)."""
    at_least = TARGET_KINDS[kind][2]
    met = _meets(ratio, target, kind) if met is None else met
    shown = _decisive_fraction(ratio, kind, target)
    return f"{shown}; {'>= ' if at_least else '<= '}{_fraction(target, kind)}: {'met' if met else 'missed'}"


def _decisive_fraction(ratio: float, kind: str, target: Optional[float]) -> str:
    """:func:`_fraction` of ``ratio``, with as many more digits (up to 4) as tell it from
    ``target`` where the usual ones print both alike (none without a target)."""
    shown = _fraction(ratio, kind)
    digits = 1 if kind == "seconds_at_most" and 0 < ratio < 1 else 2
    while target is not None and shown == _fraction(target, kind, digits) and not _is_tie(ratio, target) \
            and digits < 4:
        digits += 1
        shown = _fraction(ratio, kind, digits)
    return shown


def target_results(row: dict, retrain: dict, targets: Dict[str, float]) -> Dict[str, Tuple[float, bool]]:
    """``{kind: (row value / Retrain's, met)}`` for each of ``targets`` (kind -> fraction of
    Retrain's value) that both rows have a value for."""
    out = {}
    for kind, fraction in targets.items():
        value, reference = _target_value(row, kind), _target_value(retrain, kind)
        if value is None or reference is None:
            continue
        at_least = TARGET_KINDS[kind][2]
        if not reference:  # no ratio; a fraction of 0 is 0 (it was "not measured")
            out[kind] = (math.inf if value else 1.0, value >= 0 if at_least else value <= 0)
            continue
        ratio = value / reference
        out[kind] = (ratio, _meets(ratio, fraction, kind))
    return out


def targets_markdown(cell: dict) -> List[str]:
    """With the grid's ``targets``: for every row of a method that has targets, its D_rem
    NDCG@10, forget Hit@10 and seconds as fractions of Retrain's, which targets it met, and the
    audit's verdict next to them (a row can meet the forget target while the audit still tells
    its forgotten interactions apart); ``[]`` without targets or a Retrain row."""
    targets = cell.get("targets") or {}
    retrain = next((r for r in cell["rows"] if r["method"] == "retrain"), None)
    rows = [r for r in cell["rows"] if r.get("unlearn_method", r["method"]) in targets]
    if retrain is None or not rows:
        return []
    lines = ["Targets (fractions of Retrain's values; the grid's `targets`):", "",
             "| method | D_rem NDCG@10 | forget Hit@10 | seconds | targets | audit |",
             "|---|---:|---:|---:|---|---|"]
    for row in rows:
        wanted = targets[row.get("unlearn_method", row["method"])]
        results = target_results(row, retrain, wanted)
        shown = []
        for kind in TARGET_KINDS:
            value = _target_value(row, kind)
            text = _fmt(value, 1 if kind == "seconds_at_most" else 4)
            if kind in results:
                ratio, met = results[kind]
                text += f" ({target_text(ratio, wanted[kind], kind, met)})"
            shown.append(text)
        missed = [kind for kind, (_, met) in results.items() if not met]
        verdict = "all met" if not missed and len(results) == len(wanted) else \
            ("missed: " + ", ".join(missed) if missed else "not measured")
        if changed_nothing(row):  # its values are the model's before the forget: no target was met by forgetting
            verdict = f"{UNCHANGED} (stopped_by: {why_unchanged(row)})"
        audit = row.get("audit") or {}
        audit_text = "-" if not audit.get("auc_interval") else \
            f"{audit.get('verdict')} ({audit['auc']:.3f} [{audit['auc_interval'][0]:.3f}, {audit['auc_interval'][1]:.3f}])"
        lines.append("| " + " | ".join([row["method"]] + shown + [verdict, audit_text]) + " |")
    return lines + [""]


#: how the overview names each target kind
TARGET_NAMES = {"ndcg_at_least": "NDCG", "forget_at_most": "forget", "seconds_at_most": "time"}


def _overview_entry(row: dict, retrain: dict, wanted: Optional[Dict[str, float]]) -> str:
    """One row of one cell against that cell's Retrain: ``0.49, 0.63, 1/1.4`` (D_rem NDCG@10 and
    forget Hit@10 as fractions of Retrain's, seconds as a fraction, ``1/n`` when faster), then the
    targets missed (methods with targets) and the audit when it does not say indistinguishable."""
    parts = []
    for kind in TARGET_NAMES:
        value, reference = _target_value(row, kind), _target_value(retrain, kind)
        parts.append("-" if value is None or not reference else
                     _decisive_fraction(value / reference, kind, (wanted or {}).get(kind)).replace(" x", ""))
    text = ", ".join(parts)
    if changed_nothing(row):
        text += f"; **{UNCHANGED}**"
    elif wanted:
        results = target_results(row, retrain, wanted)
        missed = [TARGET_NAMES[kind] for kind, (_, met) in results.items() if not met]
        text += ("; **missed " + ", ".join(missed) + "**" if missed else
                 ("; met" if len(results) == len(wanted) else "; not measured"))
    audit = row.get("audit") or {}
    if audit.get("auc") is not None and audit.get("verdict") != "indistinguishable":
        text += f"; audit {audit['auc']:.3f} {audit.get('verdict')}"
    return text


def targets_overview_markdown(cells: List[dict]) -> List[str]:
    """Every cell side by side, one line per method: its D_rem NDCG@10, forget Hit@10 and seconds
    as fractions of its own cell's Retrain, the grid's targets it missed (methods with targets)
    and the audit's AUC and verdict where that is not "indistinguishable"; Retrain's own values
    (NDCG@10, Hit@10, seconds) head the table. Methods in the order they first appear; ``-``
    where a cell has no such row; cells without a Retrain row are left out (``[]`` if none has one)."""
    retrains = [next((r for r in c["rows"] if r["method"] == "retrain"), None) for c in cells]
    cells, retrains = [c for c, r in zip(cells, retrains) if r], [r for r in retrains if r]
    if not cells:
        return []
    methods: List[str] = []
    for cell in cells:
        methods += [r["method"] for r in cell["rows"] if r["method"] not in methods and r["method"] != "retrain"]
    lines = ["| method | " + " | ".join(f"{c['model']} {c['dataset']}" for c in cells) + " |",
             "|---|" + "---|" * len(cells),
             "| retrain (the reference) | " + " | ".join(
                 f"{_fmt(_target_value(r, 'ndcg_at_least'))}, {_fmt(_target_value(r, 'forget_at_most'))}, "
                 f"{_fmt(r.get('seconds'), 1)} s" for r in retrains) + " |"]
    for method in methods:
        entries = []
        for cell, retrain in zip(cells, retrains):
            row = next((r for r in cell["rows"] if r["method"] == method), None)
            wanted = None if row is None else (cell.get("targets") or {}).get(row.get("unlearn_method", method))
            entries.append("-" if row is None else _overview_entry(row, retrain, wanted))
        lines.append(f"| {method} | " + " | ".join(entries) + " |")
    return lines + [""]


def repeated_requests_markdown(cell: dict) -> List[str]:
    """With ``request_steps`` > 1: one line per method and request, next to the Retrain matched
    to that point (``[]`` when no row has steps)."""
    rows = [r for r in cell["rows"] if r.get("steps")]
    if not rows:
        return []
    lines = ["Repeated requests (the forget set applied as successive requests; Retrain matched to each point):", "",
             "| method | request | users | D_rem NDCG@10 | Retrain's | forget Hit@10 | Retrain's | audit AUC | "
             "Retrain's | seconds | cumulative s | Retrain s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        for step in row["steps"]:
            ref = step["retrain"]
            lines.append("| " + " | ".join([
                row["method"], str(step["step"]), str(step["users"]), _fmt(step["ndcg@10_rem"]),
                _fmt(ref["ndcg@10_rem"]), _fmt(step["forget_hit@10"]), _fmt(ref["forget_hit@10"]),
                _fmt(step.get("audit_auc")), _fmt(ref.get("audit_auc")), _fmt(step["seconds"], 1),
                _fmt(step["cumulative_seconds"], 1), _fmt(ref["seconds"], 1)]) + " |")
    return lines + [""]


def _parse_cell_value(text: str) -> Optional[float]:
    return None if text == "-" else float(text)


def cells_from_markdown(text: str) -> List[dict]:
    """The cells of a ``leaderboard_markdown`` document, read back from its tables: the inverse of
    that function up to its rounding (metrics to 4 decimals, seconds to 1, speedup to 2, or as
    many as an older table gave: ``speedup_decimals``, which the table keeps). Lets a
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
            decimals = len(fields[-1].partition(".")[2])
            if row["speedup"] is not None and decimals != 2:  # written before speedups had 2 decimals
                row["speedup_decimals"] = decimals
            rows.append(row)
        cells.append({"model": model, "dataset": dataset, "description": description,
                      "machine": "", "rows": rows})
    return cells


#: 24 colours that stay apart on white (plotly's "Dark24"), crossed with marker symbols, so
#: every method of a report gets its own (colour, symbol) pair.
PALETTE = ["#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100", "#750D86", "#EB663B",
           "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16",
           "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038", "#222A2A"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "triangle-down", "cross", "x", "pentagon",
           "hexagon", "star-triangle-up", "hourglass", "triangle-left"]
REFERENCE = "retrain"
REFERENCE_STYLE = {"color": "#000000", "symbol": "star"}


def method_styles(methods: List[str]) -> Dict[str, dict]:
    """``{method: {"color", "symbol"}}``, distinct for every method; Retrain, the reference, is
    always a black star."""
    styles, index = {}, 0
    for method in methods:
        if method == REFERENCE:
            styles[method] = dict(REFERENCE_STYLE)
            continue
        styles[method] = {"color": PALETTE[index % len(PALETTE)],
                          "symbol": SYMBOLS[(index // len(PALETTE) + index) % len(SYMBOLS)]}
        index += 1
    return styles


def leaderboard_html(cells: List[dict], title: str = "Leaderboard", plotlyjs=True) -> str:
    """Two plotly figures per report: D_rem NDCG@10 vs D_fgt Hit@10 (one marker per method,
    one panel per cell, Retrain's values as dashed reference lines), and unlearning seconds per
    method (log scale, Retrain's as a dashed line). Every method has its own colour and marker
    (:func:`method_styles`) and is named in the legend and on hover rather than by text on the
    points, which overlapped. ``plotlyjs``: ``True`` embeds plotly.js (about 4 MB; the report
    then renders offline) or ``"cdn"`` loads it from the web."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = [f"{c['model']} / {c['dataset']}" for c in cells]
    cols = min(len(cells), 2)
    rows_n = (len(cells) + cols - 1) // cols
    scatter = make_subplots(rows=rows_n, cols=cols, subplot_titles=names, horizontal_spacing=0.08,
                            vertical_spacing=0.12 / max(1, rows_n - 1) if rows_n > 1 else 0.1)
    bars = make_subplots(rows=rows_n, cols=cols, subplot_titles=names, horizontal_spacing=0.08)
    methods = list(dict.fromkeys(r["method"] for c in cells for r in c["rows"]))
    style = method_styles(methods)
    in_legend = set()  # each method once, from the first cell that plots it (the first cell alone left some out)
    for index, cell in enumerate(cells):
        r, c = index // cols + 1, index % cols + 1
        reference = next((row for row in cell["rows"] if row["method"] == REFERENCE), None)
        for row in cell["rows"]:
            method = row["method"]
            x, y = _value(row, "forget", "hit@10"), _value(row, "utility_rem", "ndcg@10")
            is_reference = method == REFERENCE
            # an unchanged forget: an open marker, and the hover says so
            symbol = style[method]["symbol"] + ("-open" if changed_nothing(row) else "")
            note = f"<br>{UNCHANGED}" if changed_nothing(row) else \
                (f"<br>request steps {row['unchanged_steps']} {UNCHANGED}" if row.get("unchanged_steps") else "")
            if x is not None and y is not None:
                scatter.add_trace(go.Scatter(
                    x=[x], y=[y], mode="markers", name=method, legendgroup=method, showlegend=method not in in_legend,
                    marker=dict(size=16 if is_reference else 11, color=style[method]["color"],
                                symbol=symbol, line=dict(width=1, color="#ffffff")),
                    hovertemplate=f"{method}<br>D_fgt Hit@10 %{{x:.4f}}<br>D_rem NDCG@10 %{{y:.4f}}{note}<extra></extra>",
                ), row=r, col=c)
                in_legend.add(method)
            if method not in ("original", "recbole") and row.get("seconds"):
                bars.add_trace(go.Bar(
                    x=[method], y=[row["seconds"]], marker_color=style[method]["color"], name=method,
                    legendgroup=method, showlegend=False,
                    hovertemplate=f"{method}: %{{y:.1f}} s{note}<extra></extra>",
                ), row=r, col=c)
        if reference is not None:
            line = dict(color="#000000", dash="dash", width=1)
            ref_x, ref_y = _value(reference, "forget", "hit@10"), _value(reference, "utility_rem", "ndcg@10")
            if ref_x is not None:
                scatter.add_vline(x=ref_x, line=line, row=r, col=c)
            if ref_y is not None:
                scatter.add_hline(y=ref_y, line=line, row=r, col=c)
            if reference.get("seconds"):
                bars.add_hline(y=reference["seconds"], line=line, row=r, col=c)
        scatter.update_xaxes(title_text="D_fgt Hit@10 (lower = more forgotten)", row=r, col=c)
        scatter.update_yaxes(title_text="D_rem NDCG@10", row=r, col=c)
        bars.update_xaxes(tickangle=-45, tickfont=dict(size=10), row=r, col=c)
        bars.update_yaxes(type="log", title_text="unlearning seconds", row=r, col=c)
    unchanged = any(changed_nothing(row) for cell in cells for row in cell["rows"])
    scatter.update_layout(title="Utility on D_rem vs forget Hit@10 (dashed: Retrain, the reference"
                                + (f"; open marker: the forget {UNCHANGED})" if unchanged else ")"),
                          height=460 * rows_n, legend=dict(title="method", font=dict(size=12)))
    bars.update_layout(title="Unlearning time, log scale (dashed: Retrain)", height=430 * rows_n)
    body = scatter.to_html(full_html=False, include_plotlyjs=plotlyjs)
    body += bars.to_html(full_html=False, include_plotlyjs=False)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
            f"<body><h1>{title}</h1>\n{body}\n</body></html>\n")


def write_leaderboard(cells: List[dict], output_dir: str, title: str = "Leaderboard", plotlyjs=True) -> Dict[str, str]:
    """Write the three files atomically into ``output_dir``; returns their paths. Each cell's rows
    are judged against its Retrain's audit first (:func:`apply_reference_gate`)."""
    for cell in cells:
        apply_reference_gate(cell["rows"])
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
