"""SRUGA (thesis section 3.4): approximate unlearning of the trained original model."""
import copy
import time

from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.trainer.sruga_trainer import sruga_unlearn
from recbole_unlearn.unlearn.base import METHODS, UnlearnMethod, UnlearnResult
from recbole_unlearn.utils.errors import UnlearnError


def check_sruga_settings(config) -> None:
    for key in ("sruga_ga", "sruga_kl", "sruga_ft", "sruga_learning_rate", "sruga_clip_norm", "sruga_anneal"):
        value = config[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise UnlearnError(f"config key '{key}' must be a non-negative number, got {value!r}")
    for key in ("sruga_batch_size", "sruga_epochs", "sruga_eval_step", "sruga_patience"):
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UnlearnError(f"config key '{key}' must be a positive integer, got {value!r}")
    floor = config["utility_floor"]
    if not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
        raise UnlearnError(f"config key 'utility_floor' must be in [0, 1], got {floor!r}")


@METHODS.register("sruga")
class SRUGA(UnlearnMethod):
    """Start from a copy of the original model and run :func:`sruga_unlearn` on D_fgt / D_rem.
    Its forgetting time is the SRUGA run alone (the original model already exists)."""

    @classmethod
    def check(cls, config, dataset) -> None:
        check_sruga_settings(config)

    def forget(self, forget_set: ForgetSet) -> UnlearnResult:
        start = time.perf_counter()
        model = copy.deepcopy(self.original.model)
        report = sruga_unlearn(self.config, model, self.dataset, forget_set, forget_set.keep_mask(self.dataset))
        seconds = time.perf_counter() - start
        return UnlearnResult(model, seconds, forget_set, report.to_json())
