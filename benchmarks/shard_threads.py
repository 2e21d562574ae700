"""Training all K SISA shards in-process: torch's default thread count against one thread.

The SISA benchmark (``benchmarks/sisa_benchmark.py``) meant to compare these two. It ran both in
one process, and in-process shard training did not restore torch's thread count until b6f6bfc,
so its "default threads" row most likely ran on one thread (docs/benchmarks.md, correction under
the SISA ml-100k table). Here each setting runs in a fresh process and records the thread count
it really trained with.

    python benchmarks/shard_threads.py --dataset=ml-100k --epochs=5 --shards=8

Writes ``<out>/shard-threads-<dataset>.json``. Time it on an otherwise idle machine.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore")


def train_once(args) -> dict:
    """Train the K shards once in this process; ``args.threads`` 0 keeps torch's default."""
    import torch

    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.unlearnable import ShardedUnlearnableModel

    settings = {"epochs": args.epochs, "stopping_step": args.epochs, "n_shards": args.shards,
                "unlearn_method": "sisa", "state": "WARNING", "save_model": False}
    if args.threads:
        settings["shard_num_threads"] = args.threads
    config = UnlearnConfig(args.model, args.dataset, config_dict=settings).for_method("sisa")
    dataset = create_unlearn_dataset(config)
    seen = []
    from recbole_unlearn.trainer import shard_trainer

    inner = shard_trainer._train_stages

    def counting(*a, **k):
        seen.append(torch.get_num_threads())
        return inner(*a, **k)

    shard_trainer._train_stages = counting
    start = time.perf_counter()
    ShardedUnlearnableModel.train(config, dataset)
    seconds = time.perf_counter() - start
    return {"threads_setting": args.threads or "torch default", "threads_while_training": sorted(set(seen)),
            "seconds": seconds, "shards": args.shards, "epochs": args.epochs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="(internal) one run with this many threads, 0 = default")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks"))
    parser.add_argument("--work", default="bench-work")
    args = parser.parse_args()
    if args.threads is not None:
        print(json.dumps(train_once(args)))
        return 0
    os.makedirs(args.work, exist_ok=True)
    runs = []
    for threads in (0, 1):  # each in a fresh process: nothing carries over between them
        cmd = [sys.executable, os.path.abspath(__file__), f"--dataset={args.dataset}", f"--model={args.model}",
               f"--epochs={args.epochs}", f"--shards={args.shards}", f"--threads={threads}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=args.work, check=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(runs[-1], flush=True)
    from recbole_unlearn.utils.results import machine

    out = {"command": " ".join(sys.argv), "machine": machine(), "runs": runs}
    path = os.path.join(args.out, f"shard-threads-{args.dataset}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
