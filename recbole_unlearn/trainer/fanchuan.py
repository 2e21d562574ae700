"""Fanchuan-style unlearning (a NeurIPS 2023 machine-unlearning competition entry, in the form
the ERASE benchmark describes), for sequential recommenders:

1. push the model's full-ranking distribution on every forget sample towards uniform (one pass
   over the forget samples, minimising the cross-entropy to the uniform distribution);
2. ``fanchuan_rounds`` rounds, each a contrastive pass that separates forgotten from remaining
   representations (for a forget sample's sequence representation h_f and a D_rem batch's
   h_r, both L2-normalised, minimise ``logsumexp_r(h_f . h_r / fanchuan_temperature)``),
   followed by ``fanchuan_finetune_epochs`` (a fraction of a pass) of the model's own loss on D_rem.

Adam with ``fanchuan_learning_rate`` throughout; forget samples' histories leave out everything
forgotten so far.
"""
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.model.representations import sequence_representation
from recbole_unlearn.trainer.approximate import (APPROXIMATE, ApproximateReport, ApproximateStep, begin_step,
                                                 fine_tune, RemainingBatches)
from recbole_unlearn.config.keys import declare, int_key, number_key


declare({  # defaults and their sources: properties/method/fanchuan.yaml
    "fanchuan_rounds": int_key("forget"),
    "fanchuan_finetune_epochs": number_key("forget"),
    "fanchuan_batch_size": int_key("forget"),
    "fanchuan_learning_rate": number_key("forget"),
    "fanchuan_temperature": number_key("forget"),
})


@APPROXIMATE.register("fanchuan", reads_representations=True)
class FanchuanStep(ApproximateStep):
    """Uniform push, then contrastive rounds with fine-tuning (see the module doc)."""

    def run(self, config, model, dataset: UnlearnSequentialDataset, forget_set: ForgetSet, keep: np.ndarray,
            history_keep: Optional[np.ndarray] = None) -> ApproximateReport:
        report, probe, history_keep = begin_step(config, model, dataset, forget_set, keep, history_keep, "rounds_done")
        device = config["device"]
        samples = probe.samples
        if len(samples) == 0:
            report.stopped_by = "empty"
            return report.finish()
        optimizer = torch.optim.Adam(model.parameters(), lr=config["fanchuan_learning_rate"])
        rng = np.random.default_rng(config["seed"])
        size = config["fanchuan_batch_size"]

        def forget_batches():
            order = torch.from_numpy(rng.permutation(len(samples)))
            for begin in range(0, len(samples), size):
                yield samples[order[begin:begin + size]].to(device)

        model.eval()  # deterministic scores for the two unlearning losses
        for batch in forget_batches():
            loss = -torch.log_softmax(model.full_sort_predict(batch), dim=-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        rem = RemainingBatches(config, dataset, keep, model)
        for round_index in range(1, config["fanchuan_rounds"] + 1):
            model.eval()
            for batch in forget_batches():
                h_f = F.normalize(sequence_representation(model, batch), dim=-1)
                other = next(rem).to(device)
                h_r = F.normalize(sequence_representation(model, other), dim=-1)
                loss = torch.logsumexp(h_f @ h_r.T / config["fanchuan_temperature"], dim=1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            passes = fine_tune(config, model, rem, config["fanchuan_finetune_epochs"], optimizer)
            report.epochs_run = report.kept_epoch = round_index
            report.finetune_epochs = (report.finetune_epochs or 0.0) + passes
        probe(report.kept_epoch)
        return report.finish()
