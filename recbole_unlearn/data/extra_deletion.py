"""Extra deletion (SRU; SPEC section 3): after the forget set is fixed, remove ``del_num`` more
remaining training items per forgotten target, so the target can't be inferred from them.

* ``red``: random remaining training items of the user;
* ``ned``: the remaining items immediately before the target;
* ``ced``: the remaining items whose item embedding has the highest |cosine similarity| to the
  target's, in the table the caller gives for that target (a sharded model gives the owning
  shard's live sub-model, which never saw interactions forgotten earlier).

The SPEC counts ``del_num`` per affected user, which is the same thing under the ``sru``
protocol (one target per user); under protocols with several targets per user we apply it per
target. Extra-deleted interactions are forgotten for every guarantee (they leave the shards and
D_rem) but are not D_fgt targets.
"""
from typing import Callable, Optional

import numpy as np

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.registry import Registry

# chooser(target row, candidate rows [m], how many, dataset, rng, item embeddings) -> chosen rows
ChooseFn = Callable[[int, np.ndarray, int, UnlearnSequentialDataset, np.random.Generator, Optional[np.ndarray]], np.ndarray]
EXTRA_DELETIONS: Registry[Optional[ChooseFn]] = Registry("extra deletion", "extra_deletion")
EXTRA_DELETIONS.register("none")(None)


@EXTRA_DELETIONS.register("red")
def random_extra(target, candidates, k, dataset, rng, embeddings):
    return rng.choice(candidates, size=min(k, len(candidates)), replace=False)


@EXTRA_DELETIONS.register("ned")
def neighbor_extra(target, candidates, k, dataset, rng, embeddings):
    before = candidates[candidates < target]
    return before[-k:]


@EXTRA_DELETIONS.register("ced", reads_representations=True)
def collaborative_extra(target, candidates, k, dataset, rng, embeddings):
    target_vec = embeddings[dataset.log_item[target]]
    vecs = embeddings[dataset.log_item[candidates]]
    norms = np.linalg.norm(vecs, axis=1) * np.linalg.norm(target_vec) + 1e-12
    similarity = np.abs(vecs @ target_vec) / norms
    order = np.argsort(-similarity, kind="stable")
    return candidates[order[:k]]


def apply_extra_deletion(config, dataset: UnlearnSequentialDataset, forget_set: ForgetSet,
                         item_embeddings: Optional[Callable[[int], np.ndarray]] = None,
                         forgotten: Optional[np.ndarray] = None) -> ForgetSet:
    """``forget_set`` plus the extra deletions named by ``extra_deletion`` / ``del_num``.

    Args:
        item_embeddings: ``target row -> [n_items, H]`` item embeddings to judge that target's
            candidates by (needed by ``ced`` only).
        forgotten: ``[m]`` log rows forgotten before (a saved model's): never a candidate, and a
            target among them gets no extras (its request forgets nothing new), so every extra is
            a row newly forgotten. A row first removed as another target's extra thus never gets
            extras of its own, while requested with that target in one batch it would.
    """
    chooser = EXTRA_DELETIONS.get(config["extra_deletion"])
    k = config["del_num"]
    if chooser is None or k == 0:
        return forget_set
    if chooser is collaborative_extra and item_embeddings is None:
        raise UnlearnError("extra_deletion 'ced' needs item embeddings")
    rng = np.random.default_rng(config["forget_seed"])
    earlier = np.zeros(dataset.n_rows, dtype=bool)
    if forgotten is not None:
        earlier[forgotten] = True
    removed = earlier.copy()
    removed[forget_set.rows] = True
    removed[dataset.held_out] = True  # the audit's twins: no model trained on them, so none is an extra
    extra = []
    for target in forget_set.targets[~earlier[forget_set.targets]]:
        rows = dataset.user_rows(dataset.log_user[target])
        candidates = rows[dataset.is_training[rows] & ~removed[rows]]
        if len(candidates) == 0:
            continue
        table = item_embeddings(int(target)) if item_embeddings is not None else None
        chosen = np.asarray(chooser(int(target), candidates, k, dataset, rng, table), dtype=np.int64)
        removed[chosen] = True
        extra.append(chosen)
    return forget_set.with_extra(np.concatenate(extra) if extra else np.array([], dtype=np.int64))


def check_extra_deletion(config) -> None:
    EXTRA_DELETIONS.get(config["extra_deletion"])
    k = config["del_num"]
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise UnlearnError(f"config key 'del_num' must be a non-negative integer, got {k!r}")
    if k == 0 and config["extra_deletion"] != "none":
        # the default del_num is 0 outside sru.yaml: SISA with extra_deletion ced alone ran as
        # plain SISA while its row recorded ced
        raise UnlearnError(f"extra_deletion {config['extra_deletion']!r} with del_num 0 deletes nothing: set "
                           "del_num (extras per forgotten target), or extra_deletion: none to turn it off")
