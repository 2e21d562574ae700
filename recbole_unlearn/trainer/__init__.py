from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.trainer.trainer import UnlearnTrainer, load_checkpoint
from recbole_unlearn.trainer.training import TrainedModel, new_model, train_model
from recbole_unlearn.trainer.shard_trainer import ShardJob, ShardResult, run_shard_jobs, train_shard
from recbole_unlearn.trainer.aggregator_trainer import train_aggregator
from recbole_unlearn.trainer.approximate import APPROXIMATE, ApproximateReport, ApproximateStep
from recbole_unlearn.trainer import fanchuan, kookmin, scif, sruga_trainer  # noqa: F401,E402  (approximate steps register themselves)

__all__ = ["UnlearnTrainer", "load_checkpoint", "TrainedModel", "new_model", "train_model", "ShardJob",
           "ShardResult", "run_shard_jobs", "train_shard", "train_aggregator",
           "APPROXIMATE", "ApproximateReport", "ApproximateStep"]
