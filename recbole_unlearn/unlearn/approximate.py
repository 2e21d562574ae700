"""Every approximate step of ``APPROXIMATE`` (``trainer/approximate.py``) as an unlearning method:
``unlearn_method: sruga`` (or any other registered step) starts from a copy of the original
model and runs the step on D_fgt / D_rem. Its forgetting time is the step alone (the original
model already exists). The copy is saved as a
:class:`~recbole_unlearn.unlearnable.SingleUnlearnableModel` in ``model_dir`` (default
``<run folder>/<method>_model``) before and after forgetting, so later request files can be
answered with it.

Registering a step in ``APPROXIMATE`` registers its method here too (the registry tells its
subscribers), so a new approximate method never needs a second file.
"""
import copy
import os

from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.serving import apply_forget, open_store
from recbole_unlearn.trainer.approximate import APPROXIMATE, step_keys
from recbole_unlearn.unlearn.base import (MODEL_FOLDER_SUFFIX, METHODS, UnlearnMethod, UnlearnResult,
                                          check_new_model_dir)
from recbole_unlearn.unlearnable import SingleUnlearnableModel


class ApproximateMethod(UnlearnMethod):
    """The method of one approximate step (``step`` names it in ``APPROXIMATE``)."""

    step = ""

    @classmethod
    def settings_used(cls, config):
        """The method's name and the step's own settings (``<step>_*`` and what else it declares
        as its own): a single model has no shards, aggregator or extra deletions."""
        return {k: v for k, v in super().settings_used(config).items()
                if k.startswith(f"{cls.step}_") or k in step_keys(cls.step) or k == "unlearn_method"}

    @classmethod
    def steps_used(cls, config):
        return [cls.step]

    @classmethod
    def check(cls, config, dataset) -> None:
        APPROXIMATE.get(cls.step).check(config)
        check_new_model_dir(config)

    def model_dir(self) -> str:
        return self.config["model_dir"] or os.path.join(self.config["checkpoint_dir"],
                                                        f"{self.step}{MODEL_FOLDER_SUFFIX}")

    def fit(self) -> float:
        """Deploy a copy of the original model as the folder's first version (no training: 0 s)."""
        self.single = SingleUnlearnableModel(self.config, self.dataset, copy.deepcopy(self.original.model))
        self.commit_first_version(self.single)
        return 0.0

    def forget(self, forget_set: ForgetSet) -> UnlearnResult:
        """Apply ``forget_set`` to the deployed model (repeatable: each call is one request batch)."""
        outcome = apply_forget(open_store(self.model_dir(), self.config), self.single, forget_set, self.step)
        self.single = single = outcome.model
        report = outcome.report
        info = dict(single.last_report, changed=report.changed, model_dir=self.model_dir())
        if report.approximate is not None:
            info.update({k: v for k, v in report.approximate.items() if k.startswith("forget_hit")})
        if outcome.unchanged:  # a request file's requests recorded applied_without_change
            info["unchanged_requests"] = len(outcome.unchanged)
        if outcome.done_elsewhere:  # queued with the first version, applied by a request run meanwhile
            info["requests_applied_elsewhere"] = len(outcome.done_elsewhere)
        return UnlearnResult(single.model, report.seconds, outcome.forget_set, info)

    def deployed(self, forget_set: ForgetSet) -> UnlearnResult:
        return UnlearnResult(self.single.model, 0.0, forget_set, {"model_dir": self.model_dir()})


def _register_method(name: str, step: type) -> None:
    """Make the approximate step ``name`` an ``unlearn_method`` as well."""
    METHODS.register(name)(type(f"{step.__name__}Method", (ApproximateMethod,), {"step": name}))


APPROXIMATE.subscribe(_register_method)
