"""SRUGA (thesis section 3.4): approximate unlearning of the trained original model."""
import copy
import os

from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.serving import apply_forget, open_store
from recbole_unlearn.trainer.sruga_trainer import GA_LOSSES
from recbole_unlearn.unlearn.base import METHODS, UnlearnMethod, UnlearnResult, check_new_model_dir
from recbole_unlearn.unlearnable import SingleUnlearnableModel
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
    if config["sruga_ga_loss"] not in GA_LOSSES:
        raise UnlearnError(f"config key 'sruga_ga_loss' must be one of {', '.join(GA_LOSSES)}, "
                           f"got {config['sruga_ga_loss']!r}")
    for key in ("sruga_stop_unseen", "sruga_dropout"):
        if not isinstance(config[key], bool):
            raise UnlearnError(f"config key '{key}' must be True or False, got {config[key]!r}")
    users = config["sruga_valid_users"]
    if users is not None and (not isinstance(users, int) or isinstance(users, bool) or users < 1):
        raise UnlearnError(f"config key 'sruga_valid_users' must be a positive integer or ~ (all users), got {users!r}")
    floor = config["utility_floor"]
    if not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
        raise UnlearnError(f"config key 'utility_floor' must be in [0, 1], got {floor!r}")


@METHODS.register("sruga")
class SRUGA(UnlearnMethod):
    """Start from a copy of the original model and run SRUGA on D_fgt / D_rem. Its forgetting
    time is the SRUGA run alone (the original model already exists). The copy is saved as a
    :class:`~recbole_unlearn.unlearnable.SingleUnlearnableModel` in ``model_dir`` (default ``<run folder>/sruga_model``)
    before and after forgetting, so later request files can be answered with it."""

    @classmethod
    def check(cls, config, dataset) -> None:
        check_sruga_settings(config)
        check_new_model_dir(config)

    def model_dir(self) -> str:
        return self.config["model_dir"] or os.path.join(self.config["checkpoint_dir"], "sruga_model")

    def forget(self, forget_set: ForgetSet) -> UnlearnResult:
        store = open_store(self.model_dir(), self.config)
        single = SingleUnlearnableModel(self.config, self.dataset, copy.deepcopy(self.original.model))
        store.commit(single)
        outcome = apply_forget(store, single, forget_set, "sruga")
        single, report = outcome.model, outcome.report
        info = dict(single.last_sruga, changed=report.changed, model_dir=self.model_dir())
        if report.approximate is not None:
            info.update({k: v for k, v in report.approximate.items() if k.startswith("forget_hit")})
        return UnlearnResult(single.model, report.seconds, outcome.forget_set, info)
