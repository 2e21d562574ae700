from recbole_unlearn.trainer.trainer import UnlearnTrainer, load_checkpoint
from recbole_unlearn.trainer.training import TrainedModel, new_model, train_model

__all__ = ["UnlearnTrainer", "load_checkpoint", "TrainedModel", "new_model", "train_model"]
