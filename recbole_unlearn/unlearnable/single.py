"""A deployable single model that forgets approximately, with a step of ``APPROXIMATE`` (the
one its ``unlearn_method`` names, e.g. SRUGA).

The counterpart of :class:`ShardedUnlearnableModel` for one RecBole sequential model: it keeps
the weights and the set of interactions forgotten so far, and ``forget(rows)`` runs the step with
the new rows as D_fgt, everything not forgotten as D_rem, and histories without any interaction
forgotten so far (this request's or an earlier one's). It is saved in the same versioned model
folder (``model.pth`` + ``forgotten.json`` + manifest), so request files work the same:
``--model_dir=<folder> --forget=<requests.csv>``.

An approximate forget can stop before its first kept update (the utility floor or the
unseen-data stop fires at the first check); the weights then come back unchanged, and the
report says so (``changed: False``).
"""
import random
import time
from typing import Dict, List, Tuple

import numpy as np
import torch

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.trainer.approximate import (APPROXIMATE, NOTHING_REMAINS, ApproximateReport,
                                                  restore_if_not_finite)
from recbole_unlearn.trainer.trainer import cpu_state_dict
from recbole_unlearn.trainer.training import new_model
from recbole_unlearn.unlearnable.base import EMPTY_ROWS, ForgetReport, UnlearnableModel, states_equal


class SingleUnlearnableModel(UnlearnableModel):
    """One trained model plus its forgotten set.

    Args:
        config: the method's config (``unlearn_method`` names the approximate step; its settings).
        dataset: the loaded dataset.
        model: the trained RecBole model (changed in place by ``forget``).
        forgotten: log rows forgotten so far.
    """

    FORMAT = "recbole_unlearn.single/1"

    def __init__(self, config, dataset: UnlearnSequentialDataset, model: torch.nn.Module,
                 forgotten: np.ndarray = EMPTY_ROWS):
        super().__init__(config, dataset, forgotten)
        self.model = model
        self.last_report: Dict[str, object] = {}

    @property
    def recommender(self) -> torch.nn.Module:
        return self.model

    def rows_in_training_data(self) -> np.ndarray:
        """Every log row the remaining training samples (D_rem) are built from."""
        keep = self.keep_mask()
        return self.dataset.rows_used(self.dataset.split_targets(keep)[0], keep)

    def forget(self, rows: np.ndarray) -> ForgetReport:
        """Run the approximate step on the rows not forgotten yet (they are D_fgt; every
        forgotten row leaves D_rem and the histories). When no training sample remains, the
        model is reset to its seeded initialisation instead (retraining on nothing; the report's
        ``stopped_by`` says so)."""
        new_rows = self.new_rows(rows)
        report = ForgetReport(int(len(new_rows)))
        if not len(new_rows):
            return report
        start = time.perf_counter()
        before = cpu_state_dict(self.model)
        self.forgotten = np.union1d(self.forgotten, new_rows)
        keep = self.keep_mask()
        if self.dataset.has_training_samples(keep):
            step = APPROXIMATE.get(self.config["unlearn_method"])()
            result = step.run(self.config, self.model, self.dataset, ForgetSet(new_rows), keep, history_keep=keep)
            restore_if_not_finite(self.model, before, result)
            report.unlearned_rows = step.acted_on_rows(self.dataset, ForgetSet(new_rows), keep)
        else:
            self.model.load_state_dict(new_model(self.config, self.dataset).state_dict())
            self.model.eval()
            result = ApproximateReport(stopped_by=NOTHING_REMAINS).finish()
        report.changed = not states_equal(before, cpu_state_dict(self.model))
        report.approximate = dict(result.summary(), changed=report.changed)
        self.last_report = result.to_json()
        report.seconds = time.perf_counter() - start
        return report

    def check_trained_on(self) -> Tuple[int, int, List[str]]:
        """``--verify``: weights an approximate step started from the forgotten data cannot be
        checked; but with nothing left to train on, ``forget`` reset them to the seeded
        initialisation (exact), so they are checked against a freshly seeded model (the random
        state is left as it was)."""
        if self.dataset.has_training_samples(self.keep_mask()):
            return 0, 1, []
        kept = random.getstate(), np.random.get_state()
        with torch.random.fork_rng():  # CUDA's too, which RecBole's init_seed seeds
            seeded = cpu_state_dict(new_model(self.config, self.dataset))
        random.setstate(kept[0])
        np.random.set_state(kept[1])
        if states_equal(seeded, cpu_state_dict(self.model)):
            return 1, 0, []
        return 1, 0, ["model.pth (nothing remains to train on, yet it is not its seeded initialisation)"]

    # --- persistence hooks (see recbole_unlearn.serving.store) -----------------------------
    def weight_states(self) -> Dict[str, Dict[str, torch.Tensor]]:
        return {"model.pth": self.model.state_dict()}

    @classmethod
    def from_saved(cls, config, dataset, manifest: dict, load, forgotten: np.ndarray) -> "SingleUnlearnableModel":
        model = config.model_class(config, dataset).to(config["device"])
        model.load_state_dict(load("model.pth"))
        model.eval()
        return cls(config, dataset, model, forgotten)
