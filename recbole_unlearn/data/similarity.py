"""Similarity partitioners (SPEC section 4): SRU's balanced k-means and RecEraser's UBP / IBP /
InBP, adapted to whole user sequences.

All four share one balanced assignment: K anchors (random users' vectors); each round computes
every user-anchor distance, walks the (user, anchor) pairs from the closest up and assigns a
user to an anchor when the user is unassigned and the anchor's shard still has room; anchors
become their shard's mean; stop after ``partition_iterations`` rounds or when anchors settle.
"Room" keeps every shard at floor(n/K) or floor(n/K)+1 users, so shards stay within one user
of balanced. With user weights (``partition_balance: interactions``) "room" is weight: a user
fits a shard while the shard's weight plus the user's stays within ceil(total/K); a user who fits
nowhere (every shard is then within that user's weight of full) goes, heaviest first, to the
lightest shard, so shards stay within one heaviest user of balanced.
"""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from recbole_unlearn.data.partition import PARTITIONERS, deal_to_lightest


@dataclass
class PartitionEmbeddings:
    """Vectors from the briefly pretrained base model, used to partition users and then dropped
    (never saved: they are computed from every user's data, forgotten data included).

    Attributes:
        user_hidden: ``[user_num, H]`` final hidden state of each user's training sequence
            (zeros for users without one).
        user_item_mean: ``[user_num, H]`` mean pretrained item embedding of that sequence.
    """

    user_hidden: np.ndarray
    user_item_mean: np.ndarray


def _sq_distances(vectors: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``[n, K]`` squared Euclidean distances."""
    return ((vectors[:, None, :] - anchors[None, :, :]) ** 2).sum(axis=-1)


def _assign(distance: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Greedy balanced assignment over pairs sorted by distance (see module doc)."""
    if weights is not None:
        return _assign_weighted(distance, weights)
    n, k = distance.shape
    base, n_big_allowed = divmod(n, k)
    size = np.zeros(k, dtype=np.int64)
    n_big = 0
    shard = np.full(n, -1, dtype=np.int64)
    left = n
    for flat in np.argsort(distance, axis=None, kind="stable").tolist():
        user, anchor = divmod(flat, k)
        if shard[user] >= 0:
            continue
        if size[anchor] < base or (size[anchor] == base and n_big < n_big_allowed):
            shard[user] = anchor
            size[anchor] += 1
            n_big += int(size[anchor] == base + 1)
            left -= 1
            if left == 0:
                break
    return shard


def _assign_weighted(distance: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The same walk with ``[n]`` user weights as room (see module doc)."""
    n, k = distance.shape
    capacity = np.ceil(weights.sum() / k)
    load = np.zeros(k, dtype=np.float64)
    shard = np.full(n, -1, dtype=np.int64)
    left = n
    for flat in np.argsort(distance, axis=None, kind="stable").tolist():
        user, anchor = divmod(flat, k)
        if shard[user] < 0 and load[anchor] + weights[user] <= capacity:
            shard[user] = anchor
            load[anchor] += weights[user]
            left -= 1
            if left == 0:
                break
    left = np.flatnonzero(shard < 0)
    deal_to_lightest(left[np.argsort(-weights[left], kind="stable")], weights, load, shard)
    return shard


def _shard_means(views: List[np.ndarray], anchors: List[np.ndarray], shard: np.ndarray) -> List[np.ndarray]:
    """New anchors: each shard's mean vector per view (``[K, H]`` each); an anchor whose shard
    ended empty (possible only under weights) stays where it was."""
    return [np.stack([v[shard == k].mean(axis=0) if (shard == k).any() else a[k] for k in range(len(a))])
            for v, a in zip(views, anchors)]


def balanced_kmeans(views: List[np.ndarray], n_shards: int, iterations: int, seed: int,
                    weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Shard of each of ``n`` users; ``views`` are one or two ``[n, H]`` vector sets whose
    squared distances are multiplied (InBP); with ``weights`` (``[n]``) the shards balance the
    sums of their users' weights instead of their user counts (see module doc)."""
    rng = np.random.default_rng(seed)
    n = len(views[0])
    picks = rng.choice(n, size=n_shards, replace=False)
    anchors = [v[picks].astype(np.float64) for v in views]
    shard = np.zeros(n, dtype=np.int64)
    for _ in range(max(1, iterations)):
        distance = np.prod([_sq_distances(v, a) for v, a in zip(views, anchors)], axis=0)
        shard = _assign(distance, weights)
        new = _shard_means(views, anchors, shard)
        settled = all(np.allclose(a, b) for a, b in zip(anchors, new))
        anchors = new
        if settled:
            break
    return shard


def _partition(config, users, embeddings: PartitionEmbeddings, names: List[str], n_shards: int,
               weights: Optional[np.ndarray]) -> np.ndarray:
    """Balanced k-means of ``users`` on the named ``PartitionEmbeddings`` vectors."""
    views = [getattr(embeddings, name)[users].astype(np.float64) for name in names]
    return balanced_kmeans(views, n_shards, config["partition_iterations"], config["partition_seed"], weights)


@PARTITIONERS.register("kmeans", pretrained_vectors=True)
def kmeans_partition(config, dataset, users, n_shards, embeddings: PartitionEmbeddings,
                     weights: Optional[np.ndarray] = None) -> np.ndarray:
    """SRU "similarity": balanced k-means on the users' final hidden states."""
    return _partition(config, users, embeddings, ["user_hidden"], n_shards, weights)


# RecEraser UBP, user-based balanced partition on the users' hidden states: for sequences the
# same vectors and algorithm as ``kmeans`` (SPEC section 4), so the same function under a second
# name; ``PARTITIONERS.canonical("ubp")`` is "kmeans", and rows that differ only in these names
# share one shard fit.
PARTITIONERS.register("ubp")(kmeans_partition)


@PARTITIONERS.register("ibp", pretrained_vectors=True)
def ibp_partition(config, dataset, users, n_shards, embeddings: PartitionEmbeddings,
                  weights: Optional[np.ndarray] = None) -> np.ndarray:
    """RecEraser IBP: each user is the mean pretrained embedding of its training items."""
    return _partition(config, users, embeddings, ["user_item_mean"], n_shards, weights)


@PARTITIONERS.register("inbp", pretrained_vectors=True)
def inbp_partition(config, dataset, users, n_shards, embeddings: PartitionEmbeddings,
                   weights: Optional[np.ndarray] = None) -> np.ndarray:
    """RecEraser InBP: both vectors; distance = product of the two squared distances."""
    return _partition(config, users, embeddings, ["user_hidden", "user_item_mean"], n_shards, weights)


def is_similarity_partitioner(name) -> bool:
    """Whether the partitioner ``name`` (any case, as the registry takes it) partitions on
    pretrained vectors: it was registered with ``pretrained_vectors=True``, and gets them (a
    ``PartitionEmbeddings``) as its ``embeddings`` argument; the others get ``None``."""
    return bool(PARTITIONERS.traits(name).get("pretrained_vectors"))


def similarity_partitioners() -> List[str]:
    """The registered partitioners that partition on pretrained vectors, sorted."""
    return [name for name in PARTITIONERS.names() if is_similarity_partitioner(name)]


#: the settings only a similarity partitioner reads (pretraining its vectors, balanced k-means)
SIMILARITY_PARTITION_KEYS = ("partition_pretrain_epochs", "partition_iterations")
