"""What one BERT4Rec training step costs on Video Games' item count, under three memory setups.

Issue (explain the odd cell): on BERT4Rec / Video Games single models trained at 124-134 s per
epoch in the 3-epoch leaderboard process, 95 s and 66 s in another, while SISA's shards ran at
65 s per pass over the same data. BERT4Rec's CE loss scores every masked position against the
whole item table: ``[B, mask_len, n_items]`` logits (256 x 10 x 23,715 floats, about 240 MB,
and as much again for their gradient), allocated and freed in every step. glibc serves blocks
that large with a fresh ``mmap`` (its threshold cannot exceed 32 MB) and returns them with
``munmap``, so every step faults in and zeroes that memory again, page by page (transparent huge
pages are in ``madvise`` mode on the project machine, and torch asks for them only with
``THP_MEM_ALLOC_ENABLE=1``).

This script times ``--steps`` training steps (forward, backward, Adam) of RecBole's BERT4Rec on
random batches of Video Games' shape, each setup in a fresh process, ``--repeats`` times in
rotating order, and records per step: wall seconds, minor page faults (``getrusage``) and the
CPU time the hypervisor stole (``/proc/stat``). Setups: ``default``; ``thp``
(``THP_MEM_ALLOC_ENABLE=1``: torch's CPU allocator asks for 2 MB pages); ``threshold32``
(``MALLOC_MMAP_THRESHOLD_`` fixed at glibc's largest, 32 MB: what the default's dynamic threshold
reaches once the process has freed a mapped block of that size; blocks above it are still
mapped afresh); ``heap``
(``MALLOC_MMAP_MAX_=0``, ``MALLOC_TRIM_THRESHOLD_`` 64 GiB: glibc keeps freed blocks and reuses
them instead of mapping fresh memory).

    python benchmarks/bert4rec_allocation.py --out=docs/benchmarks/bert4rec-allocation.json

Run it on an otherwise idle machine: it reports wall times.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

SETUPS = {
    "default": {},
    "thp": {"THP_MEM_ALLOC_ENABLE": "1"},
    "threshold32": {"MALLOC_MMAP_THRESHOLD_": str(32 * 2 ** 20)},
    "heap": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(64 * 2 ** 30)},
}


def _steal_seconds() -> float:
    """CPU seconds stolen by the hypervisor since boot, all cores (``/proc/stat``)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def _worker(args) -> dict:
    """Run in a fresh process: build BERT4Rec and time ``args.steps`` training steps."""
    import torch
    from recbole.config import Config
    from recbole.model.sequential_recommender import BERT4Rec

    config = Config(model="BERT4Rec", dataset="ml-100k", config_dict={
        "MAX_ITEM_LIST_LENGTH": args.maxlen, "train_batch_size": args.batch_size, "use_gpu": False,
        "loss_type": "CE", "train_neg_sample_args": None, "seed": 2020, "state": "ERROR",
        # the field names RecBole's masking transform would define
        "MASK_ITEM_SEQ": "Mask_item_id_list", "POS_ITEMS": "Pos_item_id", "NEG_ITEMS": "Neg_item_id",
        "MASK_INDEX": "MASK_INDEX"})

    class Shape:  # what RecBole's model constructors read from a dataset
        def num(self, field):
            return args.n_items + 1  # + padding id 0

    torch.manual_seed(2020)
    model = BERT4Rec(config, Shape())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mask_len = model.mask_item_length
    generator = torch.Generator().manual_seed(2020)

    def batch() -> dict:
        seq = torch.randint(1, args.n_items + 1, (args.batch_size, args.maxlen), generator=generator)
        masked_index = torch.stack([torch.randperm(args.maxlen, generator=generator)[:mask_len]
                                    for _ in range(args.batch_size)])
        pos = seq.gather(1, masked_index)
        masked = seq.scatter(1, masked_index, model.mask_token)
        return {model.MASK_ITEM_SEQ: masked, model.POS_ITEMS: pos, model.NEG_ITEMS: pos,
                model.MASK_INDEX: masked_index}

    batches = [batch() for _ in range(4)]
    steps = []
    for step in range(args.warmup + args.steps):
        faults, steal, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, _steal_seconds(), time.perf_counter()
        optimizer.zero_grad()
        model.calculate_loss(batches[step % len(batches)]).backward()
        optimizer.step()
        if step >= args.warmup:
            steps.append({"seconds": time.perf_counter() - start,
                          "minor_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
                          "steal_seconds": _steal_seconds() - steal})
    return {"torch_threads": torch.get_num_threads(), "mask_len": mask_len,
            "logits_mb": args.batch_size * mask_len * args.n_items * 4 / 2 ** 20,
            "seconds_per_step": statistics.median(s["seconds"] for s in steps),
            "minor_faults_per_step": statistics.median(s["minor_faults"] for s in steps),
            "steal_seconds": sum(s["steal_seconds"] for s in steps),
            "total_seconds": sum(s["seconds"] for s in steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_items", type=int, default=23715)  # Video Games (docs/benchmarks.md)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--maxlen", type=int, default=50)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args)))
        return

    names = list(SETUPS)
    runs = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            command = [sys.executable, os.path.abspath(__file__), "--worker"] + [
                f"--{k}={getattr(args, k)}" for k in ("n_items", "batch_size", "maxlen", "steps", "warmup")]
            output = subprocess.run(command, env=dict(os.environ, **SETUPS[name]), check=True,
                                    capture_output=True, text=True).stdout
            runs[name].append(json.loads(output.strip().splitlines()[-1]))
            print(name, runs[name][-1], flush=True)
    result = {
        "command": "python " + " ".join(sys.argv),
        "settings": {k: getattr(args, k) for k in ("n_items", "batch_size", "maxlen", "steps", "warmup", "repeats")},
        "setups": SETUPS, "runs": runs,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "thp": open("/sys/kernel/mm/transparent_hugepage/enabled").read().strip()},
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    for name in names:
        print(f"{name}: s/step {[round(r['seconds_per_step'], 4) for r in runs[name]]}, "
              f"faults/step {[r['minor_faults_per_step'] for r in runs[name]]}, "
              f"steal {[round(r['steal_seconds'], 2) for r in runs[name]]}")


if __name__ == "__main__":
    main()
