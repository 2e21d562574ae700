"""SISA (Bourtoule et al., "Machine Unlearning", S&P 2021; SPEC section 6).

Users are dealt into K shards (``partitioner``, random by default); each shard trains its own
sub-model, optionally in R slices with a checkpoint after each; predictions are combined by
``aggregator`` (mean by default). Forgetting retrains only the shards that own a forgotten
interaction, from the checkpoint before the earliest affected slice. The deployable model is
saved to ``model_dir`` (default ``<run folder>/<method>_model``) and can answer later request
files in another process (``--model_dir=... --forget=...``).
"""
import copy
import json
import os
import time
from typing import Optional

from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.data.extra_deletion import check_extra_deletion
from recbole_unlearn.data.partition import PARTITIONERS, build_shard_map, check_shard_settings
from recbole_unlearn.data.similarity import is_similarity_partitioner, similarity_partitioners
from recbole_unlearn.model.aggregators import AGGREGATORS
from recbole_unlearn.trainer.approximate import APPROXIMATE
from recbole_unlearn.trainer.shard_trainer import check_ray_resources
from recbole_unlearn.unlearn.base import (MODEL_FOLDER_SUFFIX, METHODS, UnlearnMethod, UnlearnResult,
                                          check_new_model_dir)
from recbole_unlearn.utils.results import unchanged_shards
from recbole_unlearn.serving import apply_forget, open_store
from recbole_unlearn.unlearnable import ShardedUnlearnableModel
from recbole_unlearn.config.keys import SHARD_PHASES, settings_of
from recbole_unlearn.utils.errors import UnlearnError


def _copy_model(model: ShardedUnlearnableModel) -> ShardedUnlearnableModel:
    """A deep copy of the weights and shard map that shares the (read-only) dataset and config."""
    return copy.deepcopy(model, memo={id(model.dataset): model.dataset, id(model.config): model.config})


@METHODS.register("sisa")
class SISA(UnlearnMethod):
    """Sharded, isolated, sliced, aggregated training; exact unlearning by shard retraining."""

    name = "sisa"
    trains_shards = True

    @classmethod
    def check(cls, config, dataset) -> None:
        check_shard_settings(config, dataset)
        check_ray_resources(config)
        if config["partition_balance"] == "interactions" and not is_similarity_partitioner(config["partitioner"]):
            # drawn as the fit draws it (cheap without a similarity model), so that a shard a few heavy
            # users filled, too small to slice, is refused before anything trains (a similarity
            # partition can only be checked at its fit, after its pretraining)
            build_shard_map(config, dataset, keep=dataset.full_keep())
        AGGREGATORS.get(config["aggregator"])
        check_extra_deletion(config)
        if config["redraw_partition"]:
            if not is_similarity_partitioner(config["partitioner"]) and config["partition_balance"] == "users":
                raise UnlearnError(f"redraw_partition needs a partition drawn from the data: a similarity "
                                   f"partitioner ({', '.join(similarity_partitioners())}) or partition_balance "
                                   f"interactions; partitioner {config['partitioner']!r} balanced by users depends "
                                   "on the seed only")
            if config["partition_balance"] == "interactions" and config["n_slices"] > 1:
                raise UnlearnError("redraw_partition with partition_balance interactions needs n_slices 1: a partition "
                                   "drawn again after a forget can leave a shard with fewer users than slices, and a "
                                   "saved model, whose settings are fixed, could then answer no request")
            if config["shard_unlearning"] != "retrain":
                raise UnlearnError("redraw_partition retrains every shard on the new partition; it needs "
                                   f"shard_unlearning retrain, got {config['shard_unlearning']!r}")
        if config["shard_unlearning"] != "retrain":
            if config["shard_unlearning"] not in APPROXIMATE:
                raise UnlearnError(f"config key 'shard_unlearning' must be retrain or an approximate method "
                                   f"({', '.join(APPROXIMATE.names())}), got {config['shard_unlearning']!r}")
            APPROXIMATE.get(config["shard_unlearning"]).check(config)
            if config["n_slices"] != 1:
                raise UnlearnError(f"shard_unlearning '{config['shard_unlearning']}' needs n_slices 1: slice "
                                   "checkpoints would keep the forgotten data's influence")
        check_new_model_dir(config)

    def model_dir(self) -> str:
        return self.config["model_dir"] or os.path.join(self.config["checkpoint_dir"],
                                                        f"{self.name}{MODEL_FOLDER_SUFFIX}")

    def fit(self) -> float:
        start = time.perf_counter()
        self.model = ShardedUnlearnableModel.train(self.config, self.dataset)
        seconds = time.perf_counter() - start
        self.commit_first_version(self.model)
        return seconds

    def fit_key(self) -> Optional[str]:
        # settings that do not change what the shards learn (the aggregator's, and how a fitted
        # model forgets) are left out: rows that differ only in those share one shard fit. So is
        # the method's name: SISA, SRU and RecEraser fit shards with this one class, the name
        # choosing only defaults, which the other keys hold. A partitioner counts by its
        # canonical name (RecEraser's UBP is SRU's kmeans).
        settings = settings_of(self.config.settings(), *SHARD_PHASES)
        settings.pop("unlearn_method", None)
        settings["partitioner"] = PARTITIONERS.canonical(settings["partitioner"])
        return json.dumps(settings, sort_keys=True)

    def fitted_state(self) -> ShardedUnlearnableModel:
        return _copy_model(self.model)

    def adopt_fit(self, state: ShardedUnlearnableModel, seconds: float) -> float:
        """Continue from a copy of ``state`` (its shards trained with identical settings) under
        this method's config, saved to this method's ``model_dir`` as its first version. If the
        aggregator settings differ, a fresh aggregator of this config's kind is trained on the
        copied shards. Returns this fit's seconds: ``seconds`` (the shared fit's) with the
        donor's aggregator training replaced by this one's."""
        self.model = _copy_model(state)
        self.model.config = self.config
        self.model.version_dir = None
        if settings_of(state.config.settings(), "aggregate") != settings_of(self.config.settings(), "aggregate"):
            seconds += self.model.retrain_aggregator() - getattr(state, "aggregator_seconds", 0.0)
        self.commit_first_version(self.model)
        return seconds

    def forget(self, forget_set: ForgetSet) -> UnlearnResult:
        outcome = apply_forget(open_store(self.model_dir(), self.config), self.model, forget_set, self.name)
        self.model, report, forget_set = outcome.model, outcome.report, outcome.forget_set
        info = {
            "shards_retrained": report.shards,
            # no audit line of its own when another run applied every request first
            "slices_retrained": (outcome.entry or {}).get("slices_retrained", {}),
            "aggregator_seconds": round(report.aggregator_seconds, 3),
            "forget_training": report.training,
            "extra_deleted": int(len(forget_set.extra)),
            **self._settings_info(),
        }
        if report.approximate is not None:
            info.update(changed=report.changed, approximate=report.approximate)
            unchanged = unchanged_shards(report.approximate)
            if report.changed and unchanged:  # some shard's step left it as it was: not an ordinary forget
                info["unchanged_shards"] = unchanged
        if outcome.unchanged:  # a request file's requests recorded applied_without_change
            info["unchanged_requests"] = len(outcome.unchanged)
        if outcome.done_elsewhere:  # queued with the first version, applied by a request run meanwhile
            info["requests_applied_elsewhere"] = len(outcome.done_elsewhere)
        return UnlearnResult(self.model.ensemble, report.seconds, forget_set, info)

    def deployed(self, forget_set: ForgetSet) -> UnlearnResult:
        return UnlearnResult(self.model.ensemble, 0.0, forget_set, self._settings_info())

    def _settings_info(self) -> dict:
        """What a results row says of the fitted model: its fit's training and its settings."""
        return {
            "fit_training": getattr(self.model, "fit_training", None),
            "partitioner": self.config["partitioner"],
            "shard_unlearning": self.config["shard_unlearning"],
            "redraw_partition": self.config["redraw_partition"],
            "aggregator": self.config["aggregator"],
            "n_shards": self.model.shard_map.n_shards,
            "n_slices": self.model.shard_map.n_slices,
            "model_dir": self.model_dir(),
        }

