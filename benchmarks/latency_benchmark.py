"""Per-request latency of a deletion-request stream on saved models (issue: reliability).

Copies each saved model folder (the originals stay untouched), writes one request file of N
single-interaction requests (random training interactions of random users, seeded), streams it
through ``run_forget_requests`` (file mode: the whole file is queued at once, then coalesced
per shard with ``--max_batch`` / ``--max_wait_s``) and reports, per method, the latency median
and p95 (seconds from a request being read to its version being live), batches, versions, and
nothing lost / nothing applied twice (request ids counted in the audit log).

    python benchmarks/latency_benchmark.py --name=beauty \\
        --model=sisa=results/leaderboard/thesis-sasrec/SASRec-beauty/models/sisa \\
        --model=sru=results/leaderboard/thesis-sasrec/SASRec-beauty/models/sru-ced \\
        --model=sruga=results/leaderboard/thesis-sasrec/SASRec-beauty/models/sruga \\
        --requests=200 --max_batch=50 --max_wait_s=60
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from recbole_unlearn.quick_start import run_forget_requests  # noqa: E402
from recbole_unlearn.serving import AuditLog, open_store  # noqa: E402
from recbole_unlearn.utils.results import machine  # noqa: E402


def request_lines(model_dir: str, n: int, seed: int):
    """``user,item`` lines of ``n`` distinct, not yet forgotten training interactions."""
    model = open_store(model_dir).load()
    ds = model.dataset
    rows = np.setdiff1d(np.flatnonzero(ds.is_training), model.forgotten)
    rng = np.random.default_rng(seed)
    lines, seen = [], set()
    for row in rng.permutation(rows):
        pair = (str(ds.id2token("user_id", ds.log_user[row])), str(ds.id2token("item_id", ds.log_item[row])))
        if pair not in seen:
            seen.add(pair)
            lines.append(",".join(pair))
        if len(lines) == n:
            break
    return lines


def run_one(label: str, source: str, work: str, lines, args) -> dict:
    model_dir = os.path.join(work, label)
    if os.path.exists(model_dir):
        shutil.rmtree(model_dir)
    shutil.copytree(source, model_dir)
    path = os.path.join(work, f"{label}-requests.csv")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    audit_before = len(AuditLog(model_dir).entries())
    start = time.perf_counter()
    doc = run_forget_requests(model_dir, path, {"max_batch": args.max_batch, "max_wait_s": args.max_wait_s,
                                                "state": "WARNING", "results_dir": os.path.join(work, "results")},
                              verbose=False)
    wall = time.perf_counter() - start
    ids = [rid for e in AuditLog(model_dir).entries()[audit_before:] for rid in e.get("request_ids", [])]
    stream = doc["requests"]
    row = doc["rows"][0]
    return {
        "method": label, "source": source, "requests": len(lines), "applied": stream["applied"],
        "rejected": stream["rejected"], "audited_ids": len(ids), "audited_unique": len(set(ids)),
        "batches": stream["batches"], "latency_median_s": stream["latency_median_s"],
        "latency_p95_s": stream["latency_p95_s"], "latency_max_s": stream["latency_max_s"],
        "forget_seconds": stream["forget_seconds"], "wall_seconds": round(wall, 1),
        "shards_retrained": stream["shards_retrained"],
        "utility_rem_ndcg@10": row["utility_rem"].get("ndcg@10"), "forget_hit@10": row["forget"].get("hit@10"),
    }


def render(out: dict) -> str:
    a = out["settings"]
    lines = [
        f"# Request-stream latency: {a['name']}",
        "",
        f"{a['requests']} single-interaction requests (seed {a['seed']}), all queued at once from one file, "
        f"coalesced per shard with max_batch {a['max_batch']} and max_wait_s {a['max_wait_s']}. Latency = "
        "seconds from a request being read to the model version containing it being live.",
        "",
        f"Command: `{out['command']}`",
        "",
        f"Machine: {out['machine']['processor']}, {out['machine']['cpu_count']} CPUs, torch "
        f"{out['machine']['torch']}, CUDA: {out['machine']['cuda']}. {a.get('note') or ''}",
        "",
        "| method | requests | applied | audited ids (unique) | batches | latency median s | latency p95 s | "
        "latency max s | forget s (sum) | wall s | D_rem NDCG@10 after | forget Hit@10 after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in out["rows"]:
        lines.append(
            f"| {r['method']} | {r['requests']} | {r['applied']} | {r['audited_ids']} ({r['audited_unique']}) | "
            f"{r['batches']} | {r['latency_median_s']} | {r['latency_p95_s']} | {r['latency_max_s']} | "
            f"{r['forget_seconds']} | {r['wall_seconds']} | {r['utility_rem_ndcg@10']:.4f} | {r['forget_hit@10']:.4f} |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", action="append", required=True, help="label=saved model folder")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max_batch", type=int, default=50)
    parser.add_argument("--max_wait_s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--work", default="bench-work/latency")
    parser.add_argument("--out", default="docs/benchmarks")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    models = [m.split("=", 1) for m in args.model]
    lines = request_lines(models[0][1], args.requests, args.seed)
    rows = []
    for label, source in models:
        rows.append(run_one(label, source, args.work, lines, args))
        print(json.dumps(rows[-1]), flush=True)
    out = {"settings": dict(vars(args)), "command": "python " + " ".join(sys.argv), "machine": machine(), "rows": rows}
    base = os.path.join(args.out, f"latency-{args.name}")
    with open(base + ".json", "w") as f:
        json.dump(out, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write(render(out))
    print(f"wrote {base}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
