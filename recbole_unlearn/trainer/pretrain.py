"""The brief pretraining behind similarity partitions (SPEC section 4; CED reads a live shard's
embeddings instead, see the README)."""
import dataclasses
import time
from typing import Tuple

import numpy as np
import torch

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.similarity import PartitionEmbeddings
from recbole_unlearn.data.utils import split_loaders
from recbole_unlearn.model.representations import batched_sequence_representation, item_representations
from recbole_unlearn.trainer.training import new_model, train_model, valid_metric_name


@torch.no_grad()
def pretrain_embeddings(config, dataset: UnlearnSequentialDataset, keep: np.ndarray) -> Tuple[PartitionEmbeddings, dict]:
    """Train the base model for at most ``partition_pretrain_epochs`` epochs on the training data
    selected by ``keep`` and read off user vectors (hidden states, mean item embeddings).
    With ``validate_submodels`` it stops by validation as the original does (on every user's
    validation target), keeping its best state; without, it runs every epoch, as shard stages
    then do (it validated and stopped early regardless, unrecorded; r10records probe). Returns the
    vectors and how it trained (``epochs``, ``cap``, ``hit_cap``, ``best_valid_<metric>``,
    ``seconds``: a fit's ``fit_training["partition_pretraining"]``).
    The pretrained model itself is discarded: it never makes a recommendation. With no
    training sample left (a redrawn partition after everything was forgotten) the model is its
    seeded initialisation, as pretraining on nothing leaves it."""
    start = time.perf_counter()
    cap = config["partition_pretrain_epochs"]
    short = config.override({"epochs": cap})
    loaders = split_loaders(short, dataset, keep)
    record = {"epochs": 0, "cap": cap, "hit_cap": False, f"best_valid_{valid_metric_name(config)}": None}
    if loaders.train is None:
        model = new_model(short, dataset)
    else:
        if not config["validate_submodels"]:
            loaders = dataclasses.replace(loaders, valid=None)
        with torch.enable_grad():
            trained = train_model(short, loaders, tag="partition pretraining")
        model = trained.model
        best = trained.best_valid_score
        record.update(epochs=trained.epochs_run, hit_cap=bool(trained.hit_cap),
                      **{f"best_valid_{valid_metric_name(config)}": None if best is None else round(best, 4)})
    model.eval()
    items = item_representations(model).detach().cpu().numpy().astype(np.float32)
    size = items.shape[1]
    hidden = np.zeros((dataset.user_num, size), dtype=np.float32)
    histories = dataset.user_histories(np.arange(dataset.user_num), keep)
    if len(histories):
        reps = batched_sequence_representation(model, histories, config["eval_batch_size"], config["device"])
        hidden[histories[dataset.uid_field].numpy()] = reps.cpu().numpy()
    train = dataset.is_training & keep
    sums = np.zeros((dataset.user_num, size), dtype=np.float64)
    np.add.at(sums, dataset.log_user[train], items[dataset.log_item[train]])
    counts = np.bincount(dataset.log_user[train], minlength=dataset.user_num)[:, None]
    item_mean = (sums / np.maximum(counts, 1)).astype(np.float32)
    record["seconds"] = round(time.perf_counter() - start, 3)
    return PartitionEmbeddings(hidden, item_mean), record
