"""Retrain: the exact-unlearning gold standard (SPEC section 6)."""
import time

from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.trainer.training import train_model, training_record
from recbole_unlearn.unlearn.base import METHODS, UnlearnMethod, UnlearnResult


@METHODS.register("retrain")
class Retrain(UnlearnMethod):
    """Train the base model from scratch on D_rem, with the original model's settings and seed."""

    deploys_model = False

    @classmethod
    def settings_used(cls, config):
        """Its name only: Retrain trains the base model on D_rem with the cell's data settings."""
        return {"unlearn_method": config["unlearn_method"]}

    def forget(self, forget_set: ForgetSet) -> UnlearnResult:
        start = time.perf_counter()
        loaders = self.suite.rem_loaders(forget_set)
        trained = train_model(self.config, loaders, tag="retrain on D_rem")
        seconds = time.perf_counter() - start
        return UnlearnResult(trained.model, seconds, forget_set, training_record(trained, self.config))
