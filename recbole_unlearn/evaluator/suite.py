"""Every number of a results row for one model state: utility on D_raw and D_rem, forget
Hit@k on D_fgt and SRU inference Hit@k."""
from typing import Dict, List

import numpy as np

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.data.utils import SplitLoaders, eval_loader, split_loaders
from recbole_unlearn.evaluator.metrics import full_ranking_metrics, sample_negatives, sampled_hit


class EvaluationSuite:
    """The fixed evaluation data of one experiment (one dataset, one forget set).

    Attributes:
        raw: D_raw train/valid/test loaders (original histories).
        rem: D_rem train/valid/test loaders (forgotten interactions removed).
        forget_loader: full-ranking loader over D_fgt.
    """

    def __init__(self, config, dataset: UnlearnSequentialDataset, forget_set: ForgetSet):
        self.config = config
        self.dataset = dataset
        self.forget_set = forget_set
        self.raw: SplitLoaders = split_loaders(config, dataset)
        self.rem: SplitLoaders = split_loaders(config, dataset, forget_set.keep_mask(dataset))
        self.forget_loader = eval_loader(config, dataset, forget_set.forget_samples(dataset))
        self._user_items: List[np.ndarray] = [
            dataset.log_item[dataset.user_rows(u)] for u in range(dataset.user_num)
        ]
        self._inference_cache: Dict[bytes, tuple] = {}

    def rem_loaders(self, forget_set: ForgetSet) -> SplitLoaders:
        """D_rem loaders for a forget set that may carry extra deletions."""
        if np.array_equal(forget_set.rows, self.forget_set.rows):
            return self.rem
        return split_loaders(self.config, self.dataset, forget_set.keep_mask(self.dataset))

    def _inference_data(self, forget_set: ForgetSet):
        key = forget_set.rows.tobytes()
        if key not in self._inference_cache:
            samples = forget_set.inference_samples(self.dataset)
            negatives = sample_negatives(
                samples, self._user_items, self.dataset.item_num,
                self.config["sru_inference_neg_num"], self.config["forget_seed"], self.dataset.uid_field,
            )
            self._inference_cache[key] = (eval_loader(self.config, self.dataset, samples), negatives)
        return self._inference_cache[key]

    def evaluate(self, model, forget_set: ForgetSet = None) -> Dict[str, object]:
        """All metric groups of ``model``; ``forget_set`` (default: the experiment's) decides the
        remaining histories used by SRU inference (it may add extra deletions). Also
        ``sru_inference_samples``: how many forgotten items SRU inference measured (one whose
        user has no remaining item before it, e.g. after extra deletions, has nothing to be
        predicted from and is left out), and ``sru_inference_negatives``: how many negatives each
        was ranked among (``sru_inference_neg_num``, or fewer where a forgotten user has fewer
        unseen items; ``None`` where nothing was ranked), both of which ``make_row`` records in the
        row."""
        cfg = self.config
        forget_set = self.forget_set if forget_set is None else forget_set
        inference_loader, negatives = self._inference_data(forget_set)
        return {
            "utility_raw": full_ranking_metrics(model, self.raw.test, cfg, cfg["utility_metrics"], cfg["utility_topk"]),
            "utility_rem": full_ranking_metrics(model, self.rem.test, cfg, cfg["utility_metrics"], cfg["utility_topk"]),
            "forget": full_ranking_metrics(model, self.forget_loader, cfg, ["Hit"], cfg["forget_topk"]),
            "sru_inference": sampled_hit(model, inference_loader, negatives, cfg["sru_inference_topk"], cfg),
            "sru_inference_samples": int(len(inference_loader._dataset)),
            "sru_inference_negatives": int(negatives.shape[1]) if len(negatives) else None,  # none ranked
        }
