"""A deployable, persistent, unlearnable sharded model (SISA-style; SRU and RecEraser reuse it).

State: the dataset's shard map, the weights of every shard after every slice stage, the
aggregator, and the set of interactions forgotten so far. ``forget(rows)`` retrains exactly the
shards that own a newly forgotten interaction, each from the last slice checkpoint before it,
then retrains a learned aggregator. Untouched shards are not touched at all.

On disk (see ``recbole_unlearn.unlearn.model_folder``) the state is a versioned folder whose
weights load with ``torch.load(weights_only=True)``.
"""
import time
from dataclasses import dataclass, field
from logging import getLogger
from typing import Dict, List, Optional

import numpy as np
import torch

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.extra_deletion import apply_extra_deletion
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.data.partition import ShardMap, build_shard_map
from recbole_unlearn.data.similarity import SIMILARITY_PARTITIONERS, PartitionEmbeddings
from recbole_unlearn.model.ensemble import EnsembleSequentialRecommender
from recbole_unlearn.trainer.aggregator_trainer import train_aggregator
from recbole_unlearn.trainer.pretrain import pretrain_embeddings
from recbole_unlearn.trainer.shard_trainer import ShardJob, StateDict, run_shard_jobs
from recbole_unlearn.trainer.sruga_trainer import sruga_unlearn
from recbole_unlearn.trainer.trainer import cpu_state_dict
from recbole_unlearn.utils.faults import fault_point

_EMPTY = np.array([], dtype=np.int64)


@dataclass
class ForgetReport:
    """What one ``forget`` call did.

    Attributes:
        interactions: number of newly forgotten interactions (already-forgotten ones are skipped).
        shards: shards retrained, ascending.
        start_stages: for each retrained shard, the slice stage its retraining started from.
        seconds: wall time of shard retraining plus aggregator retraining.
        aggregator_seconds: the aggregator's part of ``seconds``.
    """

    interactions: int
    shards: List[int] = field(default_factory=list)
    start_stages: Dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    aggregator_seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "interactions": self.interactions,
            "shards_retrained": self.shards,
            "slices_retrained": {str(k): v for k, v in self.start_stages.items()},
            "seconds": round(self.seconds, 3),
            "aggregator_seconds": round(self.aggregator_seconds, 3),
        }


def shard_file(shard: int, stage: int) -> str:
    """File name of shard ``shard``'s weights after slice stage ``stage``."""
    return f"shard_{shard:02d}_stage_{stage:02d}.pth"


class ShardedUnlearnableModel:
    """K shard sub-models + aggregator + the forgotten set, for one dataset.

    Args:
        config: the method's config (``n_shards``, ``n_slices``, ``aggregator``, ...).
        dataset: the loaded dataset.
        shard_map: shard and slice of every user.
        stage_states: ``stage_states[k][r]`` = weights of shard k after slice stage r.
        aggregator_state: the aggregator's ``state_dict`` (empty for ``mean``).
        forgotten: log rows forgotten so far, sorted.
        embeddings: pretrained vectors behind a similarity partition / CED (``None`` if unused).
    """

    def __init__(self, config, dataset: UnlearnSequentialDataset, shard_map: ShardMap,
                 stage_states: List[Dict[int, StateDict]], aggregator_state: Dict[str, torch.Tensor],
                 forgotten: np.ndarray = _EMPTY, embeddings: Optional[PartitionEmbeddings] = None):
        self.config = config
        self.dataset = dataset
        self.shard_map = shard_map
        self.stage_states = stage_states
        self.forgotten = np.unique(np.asarray(forgotten, dtype=np.int64))
        self.embeddings = embeddings
        self.ensemble = self._build_ensemble(aggregator_state)

    FORMAT = "recbole_unlearn.sharded/1"

    @property
    def recommender(self) -> EnsembleSequentialRecommender:
        return self.ensemble

    # --- persistence hooks (see recbole_unlearn.unlearn.model_folder) ---------------------
    def weight_states(self) -> Dict[str, Dict[str, torch.Tensor]]:
        """``{file name: state_dict}`` of everything with weights."""
        states = {shard_file(k, r): state for k, stages in enumerate(self.stage_states) for r, state in stages.items()}
        if self.embeddings is not None:
            states["partition_embeddings.pth"] = self.embeddings.to_state()
        states["aggregator.pth"] = self.ensemble.aggregator.state_dict()
        return states

    def manifest_extras(self) -> dict:
        return {"shard_map": self.shard_map.to_json(self.dataset)}

    def unchanged_files(self, report: ForgetReport) -> List[str]:
        """Weight files a forget did not change: untouched shards' stages, stages before the
        restart point, the partition embeddings."""
        names = ["partition_embeddings.pth"] if self.embeddings is not None else []
        for shard, stages in enumerate(self.stage_states):
            first = report.start_stages.get(shard)
            names += [shard_file(shard, r) for r in stages if first is None or r < first]
        return names

    @classmethod
    def from_saved(cls, config, dataset, manifest: dict, load, forgotten: np.ndarray) -> "ShardedUnlearnableModel":
        shard_map = ShardMap.from_json(manifest["shard_map"], dataset)
        stage_states = [{r: load(shard_file(k, r)) for r in range(shard_map.n_slices)}
                        for k in range(shard_map.n_shards)]
        files = manifest["files"]
        embeddings = None
        if "partition_embeddings.pth" in files:
            embeddings = PartitionEmbeddings.from_state(load("partition_embeddings.pth"))
        return cls(config, dataset, shard_map, stage_states, load("aggregator.pth"), forgotten, embeddings)

    @staticmethod
    def needs_embeddings(config) -> bool:
        return config["partitioner"] in SIMILARITY_PARTITIONERS or (
            config["extra_deletion"] == "ced" and config["del_num"] > 0)

    # --- construction ------------------------------------------------------------------
    @classmethod
    def train(cls, config, dataset: UnlearnSequentialDataset, forgotten: np.ndarray = _EMPTY,
              shard_map: Optional[ShardMap] = None) -> "ShardedUnlearnableModel":
        """Partition users (unless ``shard_map`` is given) and train every shard and the
        aggregator on the training data minus ``forgotten``."""
        keep = cls._keep(dataset, forgotten)
        embeddings, pretrain_seconds = None, 0.0
        if cls.needs_embeddings(config):
            embeddings, pretrain_seconds = pretrain_embeddings(config, dataset, keep)
        shard_map = shard_map or build_shard_map(config, dataset, embeddings)
        jobs = [ShardJob(k) for k in range(shard_map.n_shards)]
        results = run_shard_jobs(config, dataset, shard_map, keep, jobs)
        stage_states = [dict(r.stage_states) for r in sorted(results, key=lambda r: r.shard)]
        model = cls(config, dataset, shard_map, stage_states, {}, forgotten, embeddings)
        model.pretrain_seconds = pretrain_seconds
        model.aggregator_seconds = train_aggregator(config, model.ensemble, dataset, keep, shard_map)
        return model

    def expand(self, forget_set: ForgetSet) -> ForgetSet:
        """``forget_set`` plus this model's extra deletions (``extra_deletion`` / ``del_num``)."""
        items = self.embeddings.item_embeddings if self.embeddings is not None else None
        return apply_extra_deletion(self.config, self.dataset, forget_set, items)

    @staticmethod
    def _keep(dataset: UnlearnSequentialDataset, forgotten: np.ndarray) -> np.ndarray:
        keep = dataset.full_keep()
        keep[forgotten] = False
        return keep

    def keep_mask(self) -> np.ndarray:
        """``[n_rows]`` False for every interaction forgotten so far."""
        return self._keep(self.dataset, self.forgotten)

    def final_states(self) -> List[StateDict]:
        last = self.shard_map.n_slices - 1
        return [states[last] for states in self.stage_states]

    def _build_ensemble(self, aggregator_state: Dict[str, torch.Tensor]) -> EnsembleSequentialRecommender:
        config, dataset = self.config, self.dataset
        subs = []
        for state in self.final_states():
            sub = config.model_class(config, dataset)
            sub.load_state_dict(state)
            subs.append(sub)
        ensemble = EnsembleSequentialRecommender(config, dataset, subs).to(config["device"])
        if aggregator_state:
            ensemble.aggregator.load_state_dict(aggregator_state)
        ensemble.eval()
        return ensemble

    # --- forgetting --------------------------------------------------------------------
    def plan(self, rows: np.ndarray) -> Dict[int, int]:
        """``{shard: first slice stage to retrain}`` for forgetting ``rows`` (log rows)."""
        rows = np.setdiff1d(np.asarray(rows, dtype=np.int64), self.forgotten)
        users = self.dataset.log_user[rows]
        plan: Dict[int, int] = {}
        for shard, stage in zip(self.shard_map.user_shard[users], self.shard_map.user_slice[users]):
            plan[int(shard)] = min(int(stage), plan.get(int(shard), int(stage)))
        return dict(sorted(plan.items()))

    def forget(self, rows: np.ndarray) -> ForgetReport:
        """Forget ``rows`` (log rows of training interactions): retrain each owning shard once,
        from the weights after the slice stage before the earliest affected slice, then retrain
        a learned aggregator. Rows already forgotten are skipped."""
        rows = np.asarray(rows, dtype=np.int64)
        new_rows = np.setdiff1d(rows, self.forgotten)
        plan = self.plan(new_rows)
        report = ForgetReport(int(len(new_rows)), list(plan), plan)
        if not len(new_rows):
            return report
        start = time.perf_counter()
        self.forgotten = np.union1d(self.forgotten, new_rows)
        keep = self.keep_mask()
        if self.config["shard_unlearning"] == "sruga":
            self._sruga_shards(plan, new_rows, keep)
        else:
            jobs = [
                ShardJob(shard, stage, self.stage_states[shard][stage - 1] if stage > 0 else None)
                for shard, stage in plan.items()
            ]
            for result in run_shard_jobs(self.config, self.dataset, self.shard_map, keep, jobs):
                self.stage_states[result.shard].update(result.stage_states)
                fault_point("shard_retrained")
        aggregator_state = {k: v.clone() for k, v in self.ensemble.aggregator.state_dict().items()}
        self.ensemble = self._build_ensemble(aggregator_state)
        report.aggregator_seconds = train_aggregator(self.config, self.ensemble, self.dataset, keep, self.shard_map)
        self.ensemble.eval()
        report.seconds = time.perf_counter() - start
        getLogger().info(f"forgot {report.interactions} interactions: retrained shards {report.shards} "
                         f"(from slice stages {plan}) in {report.seconds:.1f}s")
        return report

    def _sruga_shards(self, plan: Dict[int, int], new_rows: np.ndarray, keep: np.ndarray) -> None:
        """Approximate mode (``shard_unlearning: sruga``): run SRUGA on each affected shard's
        sub-model, with that shard's forgotten targets as D_fgt and its remaining training
        data as D_rem. Requires ``n_slices == 1`` (a slice checkpoint would still hold the
        forgotten data's influence); an exact retrain of the shard later starts from scratch."""
        owners = self.shard_map.owner_of_rows(self.dataset, new_rows)
        shard_of_row = self.shard_map.user_shard[self.dataset.log_user]
        for shard in plan:
            sub = self.config.model_class(self.config, self.dataset).to(self.config["device"])
            sub.load_state_dict(self.stage_states[shard][0])
            targets = new_rows[owners == shard]
            sruga_unlearn(self.config, sub, self.dataset, ForgetSet(targets, source="shard"),
                          keep & (shard_of_row == shard))
            self.stage_states[shard] = {0: cpu_state_dict(sub)}

    def rows_in_training_data(self) -> np.ndarray:
        """Every log row any shard's current training samples (all slice stages) are built from."""
        keep = self.keep_mask()
        last = self.shard_map.n_slices - 1  # stage targets grow with the stage: the last has them all
        return np.unique(np.concatenate([
            self.dataset.rows_used(self.shard_map.stage_targets(self.dataset, k, last, keep), keep)
            for k in range(self.shard_map.n_shards)]))

    def shard_training_rows(self, shard: int) -> np.ndarray:
        """Log rows of the training interactions shard ``shard`` is trained on now, ``[n]``."""
        keep = self.keep_mask()
        return self.shard_map.stage_targets(self.dataset, shard, self.shard_map.n_slices - 1, keep)
