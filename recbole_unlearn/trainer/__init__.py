from recbole_unlearn.trainer.trainer import UnlearnTrainer, load_checkpoint
from recbole_unlearn.trainer.training import TrainedModel, new_model, train_model
from recbole_unlearn.trainer.shard_trainer import ShardJob, ShardResult, run_shard_jobs, train_shard
from recbole_unlearn.trainer.aggregator_trainer import train_aggregator

__all__ = ["UnlearnTrainer", "load_checkpoint", "TrainedModel", "new_model", "train_model", "ShardJob",
           "ShardResult", "run_shard_jobs", "train_shard", "train_aggregator"]
