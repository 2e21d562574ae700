"""SISA benchmark (issue: sharded datasets, SISA, Ray, persistent model).

For one dataset and SASRec with K shards, measured in one process on one machine:
  1. Original (single model) and Retrain on D_rem, and SISA trained and then forgetting the
     thesis forget set (10% of users), with utility / forget metrics for all three;
  2. single-user forget requests answered by the saved SISA model (one per slice when sliced);
  3. a batch of ``--batch`` single-user requests in one request file;
  4. the same with ``--slices`` slices per shard;
  5. training all K shards with 1 worker vs ``--workers`` Ray workers.

    python benchmarks/sisa_benchmark.py --dataset=ml-100k --epochs=5
    python benchmarks/sisa_benchmark.py --dataset=beauty --source=../shared/datasets/Beauty.txt --epochs=5

Writes ``<out>/sisa-<dataset>.json`` and ``<out>/sisa-<dataset>.md``.
"""
import argparse
import json
import os
import platform
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

warnings.filterwarnings("ignore")

from dataset.convert import convert  # noqa: E402
from recbole_unlearn import run_recbole_unlearn  # noqa: E402
from recbole_unlearn.config import UnlearnConfig  # noqa: E402
from recbole_unlearn.data import create_unlearn_dataset  # noqa: E402
from recbole_unlearn.quick_start import run_forget_requests  # noqa: E402
from recbole_unlearn.serving import open_store  # noqa: E402
from recbole_unlearn.unlearnable import ShardedUnlearnableModel  # noqa: E402


def request_users(model_dir: str, n: int, one_per_slice: bool):
    """Users not forgotten yet: ``n`` of them, or one per slice (sorted tokens, deterministic)."""
    model = open_store(model_dir).load()
    ds = model.dataset
    forgotten_users = set(ds.log_user[model.forgotten].tolist())
    candidates = [u for u in range(1, ds.user_num) if u not in forgotten_users and ds.is_training[ds.user_rows(u)].sum() > 0]
    if one_per_slice:
        picked = {}
        for u in candidates:
            picked.setdefault(int(model.shard_map.user_slice[u]), u)
        chosen = [picked[s] for s in sorted(picked)]
    else:
        chosen = candidates[:n]
    return [(str(ds.id2token(ds.uid_field, u)), int(model.shard_map.user_shard[u]), int(model.shard_map.user_slice[u]))
            for u in chosen]


def answer(model_dir: str, work: str, name: str, users) -> dict:
    path = os.path.join(work, f"{name}.csv")
    with open(path, "w") as f:
        f.write("".join(f"{u}\n" for u, _, _ in users))
    doc = run_forget_requests(model_dir, path, {"state": "WARNING", "results_dir": os.path.join(work, "results")},
                              verbose=False)
    row = doc["rows"][0]
    return {"users": [u for u, _, _ in users], "slices": sorted({s for _, _, s in users}),
            "seconds": row["seconds"], "shards_retrained": row["shards_retrained"],
            "slices_retrained": row["slices_retrained"], "interactions": row["interactions"],
            "utility_rem": row["utility_rem"], "forget": row["forget"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--source", help="plain sequence file to convert (user item item ...)")
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data_path", help="folder holding <dataset>/<dataset>.inter (default: <work>/data)")
    parser.add_argument("--work", default="bench-work")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks"))
    parser.add_argument("--skip_ray", action="store_true")
    parser.add_argument("--skip_slices", action="store_true")
    args = parser.parse_args()

    work = os.path.abspath(os.path.join(args.work, args.dataset))
    args.data_path = args.data_path and os.path.abspath(args.data_path)
    args.source = args.source and os.path.abspath(args.source)
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    data_path = os.path.abspath(args.data_path) if args.data_path else os.path.join(work, "data")
    if args.source:
        convert(args.source, "sequence", args.dataset, data_path)
    base = {
        "data_path": data_path, "epochs": args.epochs, "stopping_step": args.epochs, "n_shards": args.shards,
        "state": "INFO", "results_dir": os.path.join(work, "results"), "save_model": False,
    }
    out = {"dataset": args.dataset, "model": args.model, "command": " ".join(sys.argv),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "settings": dict(base)}

    # 1. Original, Retrain, SISA (unsliced) with the thesis forget set
    t = time.perf_counter()
    run = run_recbole_unlearn(args.model, args.dataset, config_dict=dict(
        base, unlearn_method="sisa", model_dir=os.path.join(work, "sisa_r1")), verbose=True)
    out["run"] = {"rows": run["rows"], "forget_set": run["forget_set"], "wall_seconds": time.perf_counter() - t}
    out["settings_resolved"] = run["settings"]

    # 2-3. requests answered by the saved unsliced model
    model_dir = os.path.join(work, "sisa_r1")
    out["r1_single"] = [answer(model_dir, work, f"r1-single-{i}", [u]) for i, u in
                        enumerate(request_users(model_dir, 2, one_per_slice=False))]
    out["r1_batch"] = answer(model_dir, work, "r1-batch", request_users(model_dir, args.batch, one_per_slice=False))

    # 4. sliced SISA: train, then one single-user request per slice
    if not args.skip_slices:
        sliced_run(args, base, work, out)

    # 5. Ray: all K shards, 1 worker vs N workers (1 torch thread per shard in both)
    if not args.skip_ray:
        ray_run(args, base, out)

    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"sisa-{args.dataset}")
    with open(stem + ".json", "w") as f:
        json.dump(out, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(render(out, args))
    print(open(stem + ".md").read())
    return 0


def sliced_run(args, base, work, out) -> None:
    cfg = UnlearnConfig(args.model, args.dataset, config_dict=dict(
        base, unlearn_method="sisa", n_slices=args.slices, model_dir=os.path.join(work, f"sisa_r{args.slices}")))
    sliced_cfg = cfg.for_method("sisa")
    dataset = create_unlearn_dataset(sliced_cfg)
    t = time.perf_counter()
    sliced = ShardedUnlearnableModel.train(sliced_cfg, dataset)
    out["sliced_train_seconds"] = time.perf_counter() - t
    sliced_dir = os.path.join(work, f"sisa_r{args.slices}")
    open_store(sliced_dir, sliced_cfg).commit(sliced)
    out["sliced_single"] = [answer(sliced_dir, work, f"r{args.slices}-single-{i}", [u]) for i, u in
                            enumerate(request_users(sliced_dir, 0, one_per_slice=True))]
    out["sliced_batch"] = answer(sliced_dir, work, f"r{args.slices}-batch",
                                 request_users(sliced_dir, args.batch, one_per_slice=False))


def ray_run(args, base, out) -> None:
    dataset = create_unlearn_dataset(UnlearnConfig(args.model, args.dataset, config_dict=base))
    timings = {}
    for workers in (1, args.workers):
        c = UnlearnConfig(args.model, args.dataset, config_dict=dict(
            base, unlearn_method="sisa", num_workers=workers, shard_num_threads=1)).for_method("sisa")
        t = time.perf_counter()
        ShardedUnlearnableModel.train(c, dataset)
        timings[workers] = time.perf_counter() - t
    # and the default in-process setting (torch uses every core for one shard at a time)
    c = UnlearnConfig(args.model, args.dataset, config_dict=dict(base, unlearn_method="sisa")).for_method("sisa")
    t = time.perf_counter()
    ShardedUnlearnableModel.train(c, dataset)
    timings["1 (all cores)"] = time.perf_counter() - t
    out["ray"] = {str(k): v for k, v in timings.items()}


def render(out: dict, args) -> str:
    rows = {r["method"]: r for r in out["run"]["rows"]}
    retrain_s = rows["retrain"]["seconds"]
    lines = [f"### {out['model']} on {out['dataset']}: K={args.shards}, {args.epochs} epochs", "",
             f"Command: `{out['command']}`  ", f"Machine: {out['machine']['platform']}, {out['machine']['cpus']} CPUs", "",
             f"Forget set: {out['run']['forget_set']}", "",
             "| state | N@10 D_raw | N@10 D_rem | R@10 D_rem | N@20 D_rem | fgt H@10 | fgt H@20 | SRU H@10 | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("original", "retrain", "sisa"):
        r = rows[name]
        lines.append(f"| {name} | {r['utility_raw']['ndcg@10']:.4f} | {r['utility_rem']['ndcg@10']:.4f} | "
                     f"{r['utility_rem']['recall@10']:.4f} | {r['utility_rem']['ndcg@20']:.4f} | "
                     f"{r['forget']['hit@10']:.4f} | {r['forget']['hit@20']:.4f} | {r['sru_inference']['hit@10']:.4f} | "
                     f"{r['seconds']:.1f} |")
    lines += ["", "| wall time | seconds | vs Retrain |", "|---|---|---|",
              f"| original model training (single SASRec) | {rows['original']['seconds']:.1f} | |",
              f"| Retrain on D_rem | {retrain_s:.1f} | 1 |",
              f"| SISA training, all {args.shards} shards (R=1) | {rows['sisa']['initial_train_seconds']:.1f} | |",
              f"| SISA forgetting the whole forget set (R=1) | {rows['sisa']['seconds']:.1f} | "
              f"1/{retrain_s / rows['sisa']['seconds']:.1f} |"]
    for s in out["r1_single"]:
        lines.append(f"| single-user request, R=1 (user {s['users'][0]}, shards {s['shards_retrained']}) | "
                     f"{s['seconds']:.1f} | 1/{retrain_s / s['seconds']:.1f} |")
    b = out["r1_batch"]
    lines.append(f"| {len(b['users'])}-request batch, R=1 ({len(b['shards_retrained'])} shards retrained once each) | "
                 f"{b['seconds']:.1f} | 1/{retrain_s / b['seconds']:.1f} |")
    if "sliced_single" in out:
        lines.append(f"| SISA training, R={args.slices} slices | {out['sliced_train_seconds']:.1f} | |")
        for s in out["sliced_single"]:
            lines.append(f"| single-user request, R={args.slices}, user in slice {s['slices'][0]} "
                         f"(restart at stage {list(s['slices_retrained'].values())[0]}) | {s['seconds']:.1f} | "
                         f"1/{retrain_s / s['seconds']:.1f} |")
        b = out["sliced_batch"]
        lines.append(f"| {len(b['users'])}-request batch, R={args.slices} | {b['seconds']:.1f} | "
                     f"1/{retrain_s / b['seconds']:.1f} |")
    if "ray" in out:
        lines += ["", "| training all shards | seconds |", "|---|---|"]
        for k, v in out["ray"].items():
            label = {"1": "1 worker, in-process, 1 torch thread"}.get(k, f"{k} workers" if k.isdigit() else k)
            if k.isdigit() and k != "1":
                label = f"{k} Ray workers, 1 torch thread each"
            if k == "1 (all cores)":
                label = "1 worker, in-process, torch default threads (all cores)"
            lines.append(f"| {label} | {v:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
