"""A deployable single model that forgets approximately, with SRUGA.

The counterpart of :class:`ShardedUnlearnableModel` for one RecBole sequential model: it keeps
the weights and the set of interactions forgotten so far, and ``forget(rows)`` runs SRUGA with
the new rows as D_fgt and everything not forgotten as D_rem. It is saved in the same versioned
model folder (``model.pth`` + ``forgotten.json`` + manifest), so request files work the same:
``--model_dir=<folder> --forget=<requests.csv>``.
"""
import time
from typing import Dict, List

import numpy as np
import torch

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.trainer.sruga_trainer import sruga_unlearn
from recbole_unlearn.unlearn.sharded_model import ForgetReport

_EMPTY = np.array([], dtype=np.int64)


class SingleUnlearnableModel:
    """One trained model plus its forgotten set.

    Args:
        config: the method's config (``sruga_*`` settings).
        dataset: the loaded dataset.
        model: the trained RecBole model (changed in place by ``forget``).
        forgotten: log rows forgotten so far.
    """

    FORMAT = "recbole_unlearn.single/1"

    def __init__(self, config, dataset: UnlearnSequentialDataset, model: torch.nn.Module,
                 forgotten: np.ndarray = _EMPTY):
        self.config = config
        self.dataset = dataset
        self.model = model
        self.forgotten = np.unique(np.asarray(forgotten, dtype=np.int64))
        self.last_sruga: Dict[str, object] = {}

    @property
    def recommender(self) -> torch.nn.Module:
        return self.model

    def keep_mask(self) -> np.ndarray:
        keep = self.dataset.full_keep()
        keep[self.forgotten] = False
        return keep

    def expand(self, forget_set: ForgetSet) -> ForgetSet:
        """No extra deletion for a single model."""
        return forget_set

    def rows_in_training_data(self) -> np.ndarray:
        """Every log row the remaining training samples (D_rem) are built from."""
        keep = self.keep_mask()
        return self.dataset.rows_used(self.dataset.split_targets(keep)[0], keep)

    def forget(self, rows: np.ndarray) -> ForgetReport:
        """Run SRUGA on the rows not forgotten yet (they are D_fgt; all forgotten rows leave D_rem)."""
        new_rows = np.setdiff1d(np.asarray(rows, dtype=np.int64), self.forgotten)
        report = ForgetReport(int(len(new_rows)))
        if not len(new_rows):
            return report
        start = time.perf_counter()
        self.forgotten = np.union1d(self.forgotten, new_rows)
        result = sruga_unlearn(self.config, self.model, self.dataset, ForgetSet(new_rows), self.keep_mask())
        self.last_sruga = result.to_json()
        report.seconds = time.perf_counter() - start
        return report

    # --- persistence hooks (see recbole_unlearn.unlearn.model_folder) ---------------------
    def weight_states(self) -> Dict[str, Dict[str, torch.Tensor]]:
        return {"model.pth": self.model.state_dict()}

    def manifest_extras(self) -> dict:
        return {}

    def unchanged_files(self, report: ForgetReport) -> List[str]:
        return []

    @classmethod
    def from_saved(cls, config, dataset, manifest: dict, load, forgotten: np.ndarray) -> "SingleUnlearnableModel":
        model = config.model_class(config, dataset).to(config["device"])
        model.load_state_dict(load("model.pth"))
        model.eval()
        return cls(config, dataset, model, forgotten)
