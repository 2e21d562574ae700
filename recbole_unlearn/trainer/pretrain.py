"""The brief pretraining behind similarity partitions (SPEC section 4; CED reads a live shard's
embeddings instead, see the README)."""
import time
from typing import Tuple

import numpy as np
import torch

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.similarity import PartitionEmbeddings
from recbole_unlearn.data.utils import split_loaders
from recbole_unlearn.model.representations import batched_sequence_representation, item_representations
from recbole_unlearn.trainer.training import new_model, train_model


@torch.no_grad()
def pretrain_embeddings(config, dataset: UnlearnSequentialDataset, keep: np.ndarray) -> Tuple[PartitionEmbeddings, float]:
    """Train the base model for ``partition_pretrain_epochs`` epochs on the training data
    selected by ``keep`` and read off user vectors (hidden states, mean item embeddings).
    Returns them and the wall seconds.
    The pretrained model itself is discarded: it never makes a recommendation. With no
    training sample left (a redrawn partition after everything was forgotten) the model is its
    seeded initialisation, as pretraining on nothing leaves it."""
    start = time.perf_counter()
    short = config.override({"epochs": config["partition_pretrain_epochs"]})
    loaders = split_loaders(short, dataset, keep)
    if loaders.train is None:
        model = new_model(short, dataset)
    else:
        with torch.enable_grad():
            model = train_model(short, loaders, tag="partition pretraining").model
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
    return PartitionEmbeddings(hidden, item_mean), time.perf_counter() - start
