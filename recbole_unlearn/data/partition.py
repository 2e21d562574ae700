"""Shards and slices of users (SPEC section 4), and the partitioner registry.

The unit of partitioning is one user's whole sequence, so each shard sees complete, ordered
sequences. A :class:`ShardMap` says, for every user, which shard owns it and in which slice of
that shard it sits (SISA's "sliced" training). It is data: it is saved with the model (as raw
user tokens) so any later process can tell which shard owns any interaction.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.registry import Registry

# partitioner(config, dataset, users [n_users], n_shards, embeddings or None, weights [n_users] or None)
#   -> shard of each user; ``weights`` None: balance users (SPEC section 4), else balance the sum
#   of the users' weights (their training interactions, ``partition_balance: interactions``)
PartitionFn = Callable[[object, UnlearnSequentialDataset, np.ndarray, int, object, Optional[np.ndarray]],
                       np.ndarray]
PARTITIONERS: Registry[PartitionFn] = Registry("partitioner", "partitioner")


@PARTITIONERS.register("random")
def random_partition(config, dataset: UnlearnSequentialDataset, users: np.ndarray, n_shards: int,
                     embeddings=None, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """SISA: users shuffled (seed ``partition_seed``) and dealt into ``n_shards`` equal shards.
    With ``weights`` each user in that order goes to the shard with the least weight so far, so
    shard weights differ by at most the heaviest user's."""
    rng = np.random.default_rng(config["partition_seed"])
    order = rng.permutation(len(users))
    shard = np.empty(len(users), dtype=np.int64)
    if weights is None:
        shard[order] = np.arange(len(users)) % n_shards
        return shard
    deal_to_lightest(order, weights, np.zeros(n_shards, dtype=np.float64), shard)
    return shard


def deal_to_lightest(order: np.ndarray, weights: np.ndarray, load: np.ndarray, shard: np.ndarray) -> None:
    """Give each user of ``order`` (indices into ``weights``/``shard``), in turn, to the shard of
    least ``load`` ``[K]`` so far; fills ``shard`` and ``load`` in place."""
    for user in order.tolist():
        lightest = int(np.argmin(load))
        shard[user] = lightest
        load[lightest] += weights[user]


def _training_rows(dataset: UnlearnSequentialDataset, keep: Optional[np.ndarray]) -> np.ndarray:
    """``[n]`` training rows under ``keep`` (``None``: every row but the audit's held-out twins)."""
    return dataset.split_targets(keep)[0]


def balance_weights(config, dataset: UnlearnSequentialDataset, users: np.ndarray,
                    keep: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """What a partition balances (``partition_balance``): None for users (SPEC section 4: shards
    within one user of equal), or ``[n_users]`` training interactions of each user under
    ``keep`` (shards within one heaviest user of equal interactions, so the largest shard, which
    bounds a request's retraining time, is not twice the smallest). A user with none left counts
    as one: weightless users would all go to one shard, leaving the others empty."""
    if config["partition_balance"] == "users":
        return None
    rows = _training_rows(dataset, keep)
    counts = np.bincount(dataset.log_user[rows], minlength=dataset.user_num)[users]
    return np.maximum(counts, 1).astype(np.float64)


@dataclass
class ShardMap:
    """Shard and slice of every user.

    Attributes:
        user_shard: ``[user_num]`` shard id per internal user id (``-1``: user has no interaction).
        user_slice: ``[user_num]`` slice id inside the shard (``-1`` likewise).
        n_shards, n_slices: K and R.
    """

    user_shard: np.ndarray
    user_slice: np.ndarray
    n_shards: int
    n_slices: int

    def shard_users(self, shard: int) -> np.ndarray:
        return np.flatnonzero(self.user_shard == shard)

    def owner_of_rows(self, dataset: UnlearnSequentialDataset, rows: np.ndarray) -> np.ndarray:
        """``[n]`` shard owning each log row."""
        return self.user_shard[dataset.log_user[rows]]

    def stage_targets(self, dataset: UnlearnSequentialDataset, shard: int, stage: int, keep: np.ndarray) -> np.ndarray:
        """Training targets (log rows) of ``shard`` at slice stage ``stage`` (slices ``0..stage``)
        under the ``keep`` mask, shape ``[n]``."""
        user = dataset.log_user
        mask = dataset.is_training & keep & (self.user_shard[user] == shard) & (self.user_slice[user] <= stage)
        return np.flatnonzero(mask)

    def stage_rows(self, dataset: UnlearnSequentialDataset, shard: int, stage: int, keep: np.ndarray) -> np.ndarray:
        """``[n_rows]`` bool: the log rows under ``keep`` of the users ``shard`` trains on at
        ``stage`` (slices ``0..stage``), every split: what its negative sampler counts
        (``data.utils.sampler_source``), so that no other shard's data reaches it."""
        user = dataset.log_user
        return keep & (self.user_shard[user] == shard) & (self.user_slice[user] <= stage)

    def stage_valid_targets(self, dataset: UnlearnSequentialDataset, shard: int, stage: int,
                            keep: np.ndarray) -> np.ndarray:
        """Validation targets (log rows) of the users ``shard`` trains on at ``stage``: the
        shard's own validation set (as SISA and SRU validate shard models), shape ``[n]``."""
        valid = dataset.split_targets(keep)[1]
        users = dataset.log_user[valid]
        return valid[(self.user_shard[users] == shard) & (self.user_slice[users] <= stage)]

    # --- persistence (raw tokens, so the map survives id remapping in a new process) -------
    def to_json(self, dataset: UnlearnSequentialDataset) -> Dict[str, object]:
        users = np.flatnonzero(self.user_shard >= 0)
        return {
            "n_shards": self.n_shards,
            "n_slices": self.n_slices,
            "users": [str(t) for t in dataset.id2token(dataset.uid_field, users)],
            "shard": self.user_shard[users].tolist(),
            "slice": self.user_slice[users].tolist(),
        }

    @classmethod
    def from_json(cls, data: Dict[str, object], dataset: UnlearnSequentialDataset) -> "ShardMap":
        token_ids = dataset.field2token_id[dataset.uid_field]
        shard = np.full(dataset.user_num, -1, dtype=np.int64)
        slc = np.full(dataset.user_num, -1, dtype=np.int64)
        missing = [t for t in data["users"] if t not in token_ids]
        if missing:
            raise UnlearnError(f"shard map names users missing from the dataset, e.g. {missing[0]!r}")
        ids = np.array([token_ids[t] for t in data["users"]], dtype=np.int64)
        shard[ids] = data["shard"]
        slc[ids] = data["slice"]
        return cls(shard, slc, int(data["n_shards"]), int(data["n_slices"]))


def check_shard_settings(config, dataset: UnlearnSequentialDataset) -> None:
    """One-line errors for ``n_shards`` x ``n_slices`` above the number of users and an unknown
    ``partitioner`` (their kinds are checked with every config: ``config/keys.py``)."""
    n_shards, n_slices = config["n_shards"], config["n_slices"]
    n_users = len(dataset.active_users())
    if n_shards * n_slices > n_users:
        raise UnlearnError(
            f"n_shards x n_slices = {n_shards * n_slices} exceeds the {n_users} users of "
            f"dataset '{config['dataset']}'"
        )
    PARTITIONERS.get(config["partitioner"])


class ShardTooSmall(UnlearnError):
    """A partition left a shard with fewer users than ``n_slices``."""


def check_shard_users(shard_of: np.ndarray, n_shards: int, n_slices: int) -> None:
    """One-line error when a shard got fewer users than ``n_slices`` (only a partition balanced
    by interactions can do that: a few heavy users may fill a shard)."""
    counts = np.bincount(shard_of, minlength=n_shards)
    if counts.min() < n_slices:
        shard = int(np.argmin(counts))
        raise ShardTooSmall(
            f"shard {shard} holds {counts[shard]} users, fewer than n_slices = {n_slices} (partition_balance: "
            f"interactions can put a few heavy users in one shard); use fewer shards or slices, or "
            f"partition_balance: users"
        )


def build_shard_map(config, dataset: UnlearnSequentialDataset, embeddings=None,
                    keep: Optional[np.ndarray] = None) -> ShardMap:
    """Partition users with ``partitioner`` into ``n_shards`` (balancing what
    ``partition_balance`` names, counted on the training rows ``keep`` selects), then split each
    shard's users into ``n_slices`` equal random slices (seed ``partition_seed``). Similarity
    partitioners need ``embeddings`` (:class:`~recbole_unlearn.data.similarity.PartitionEmbeddings`)."""
    check_shard_settings(config, dataset)
    n_shards, n_slices = config["n_shards"], config["n_slices"]
    users = dataset.active_users()
    partition = PARTITIONERS.get(config["partitioner"])
    weights = balance_weights(config, dataset, users, keep)
    shard_of = np.asarray(partition(config, dataset, users, n_shards, embeddings, weights), dtype=np.int64)
    check_shard_users(shard_of, n_shards, n_slices)
    user_shard = np.full(dataset.user_num, -1, dtype=np.int64)
    user_slice = np.full(dataset.user_num, -1, dtype=np.int64)
    user_shard[users] = shard_of
    rng = np.random.default_rng(config["partition_seed"] + 1)
    for shard in range(n_shards):
        members = users[shard_of == shard]
        order = rng.permutation(len(members))
        user_slice[members[order]] = np.arange(len(members)) % n_slices
    return ShardMap(user_shard, user_slice, n_shards, n_slices)


def shard_sizes(shard_map: ShardMap) -> List[int]:
    """Users of each shard."""
    return [int((shard_map.user_shard == k).sum()) for k in range(shard_map.n_shards)]


def shard_loads(shard_map: ShardMap, dataset: UnlearnSequentialDataset,
                keep: Optional[np.ndarray] = None) -> List[int]:
    """Training interactions of each shard (under ``keep``; ``None``: all but held-out twins)."""
    owner = shard_map.user_shard[dataset.log_user[_training_rows(dataset, keep)]]
    return np.bincount(owner[owner >= 0], minlength=shard_map.n_shards).astype(int).tolist()
