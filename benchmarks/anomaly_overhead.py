"""How much RecBole 1.2.1's import-time ``torch.autograd.set_detect_anomaly(True)`` (in
``recbole/model/sequential_recommender/sine.py``) slows training of the sequential models.

Plain RecBole pipeline (``Config``, ``create_dataset``, ``data_preparation``), no recbole_unlearn
code: for each model, the same seeded model trains the same ``--batches`` batches with anomaly
detection on (as RecBole leaves it) and off, alternating, ``--repeats`` times each. Prints a
Markdown table of the median seconds and the losses after the last batch (equal when detection
changes nothing but speed):

    python benchmarks/anomaly_overhead.py --dataset=ml-100k --batches=48 --repeats=2
"""
import argparse
import statistics
import sys
import time

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, init_seed


def train_batches(config, train_data, n_batches: int) -> tuple:
    """Train a fresh seeded model on the first ``n_batches`` batches; ``(seconds, last loss)``."""
    init_seed(config["seed"], True)
    model = get_model(config["model"])(config, train_data._dataset)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    init_seed(config["seed"], True)
    train_data.generator.manual_seed(config["seed"])  # the same shuffled batches every time
    began, loss, done = time.perf_counter(), float("nan"), 0
    for batch in train_data:
        value = model.calculate_loss(batch)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        loss, done = value.item(), done + 1
        if done == n_batches:
            break
    return time.perf_counter() - began, loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default="SASRec,GRU4Rec,BERT4Rec")
    parser.add_argument("--batches", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, dataset {args.dataset}, "
          f"{args.batches} training batches of 256, median of {args.repeats}\n")
    print("| model | anomaly detection on (RecBole's default) | off | slowdown | last loss on / off |")
    print("|---|---:|---:|---:|---|")
    for name in args.models.split(","):
        config = Config(model=name, dataset=args.dataset, config_dict={
            "train_neg_sample_args": None, "loss_type": "CE", "MAX_ITEM_LIST_LENGTH": 10,
            "train_batch_size": 256, "show_progress": False})
        init_seed(config["seed"], True)
        train_data, _, _ = data_preparation(config, create_dataset(config))
        times = {True: [], False: []}
        losses = {}
        for _ in range(args.repeats):
            for enabled in (True, False):
                torch.autograd.set_detect_anomaly(enabled)
                seconds, losses[enabled] = train_batches(config, train_data, args.batches)
                times[enabled].append(seconds)
        on, off = statistics.median(times[True]), statistics.median(times[False])
        print(f"| {name} | {on:.2f} s | {off:.2f} s | {on / off:.2f} x | {losses[True]:.4f} / {losses[False]:.4f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
