"""Kookmin-style unlearning (a NeurIPS 2023 machine-unlearning competition entry, in the form
the ERASE benchmark describes): re-initialise, in every weight tensor, the small fraction
``kookmin_reinit_ratio`` of entries whose gradients differ least between the forgotten and the
remaining data, then fine-tune on D_rem.

Gradients are those of the mean target cross-entropy over all items (eval mode, deterministic)
on the forget samples (histories without anything forgotten) and on ``kookmin_retain_samples``
remaining samples (drawn with ``seed``). "Re-initialise" takes the entries of a freshly
initialised model of the same class (seeded). Fine-tuning runs ``kookmin_finetune_epochs`` (a
fraction of a pass) of the model's own training loss on D_rem batches (Adam,
``kookmin_learning_rate``): long fine-tuning also raises forget Hit@10 again, since a model that
keeps learning D_rem also predicts its users' forgotten items better.
"""
import math
from typing import Optional

import numpy as np
import torch
from recbole.utils import init_seed

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.trainer.approximate import (APPROXIMATE, ApproximateReport, ApproximateStep, begin_step,
                                                 fine_tune, RemainingBatches, target_gradients)
from recbole_unlearn.config.keys import choice_key, declare, int_key, number_key


SELECTIONS = ("least", "most")


declare({  # defaults and their sources: properties/method/kookmin.yaml
    "kookmin_select": choice_key("forget", *SELECTIONS),
    "kookmin_reinit_ratio": number_key("forget", high=1, open_high=True),
    "kookmin_retain_samples": int_key("forget"),
    "kookmin_finetune_epochs": number_key("forget"),
    "kookmin_learning_rate": number_key("forget"),
})


@APPROXIMATE.register("kookmin")
class KookminStep(ApproximateStep):
    """Selective re-initialisation + fine-tuning on D_rem (see the module doc)."""

    def run(self, config, model, dataset: UnlearnSequentialDataset, forget_set: ForgetSet, keep: np.ndarray,
            history_keep: Optional[np.ndarray] = None) -> ApproximateReport:
        report, probe, history_keep = begin_step(config, model, dataset, forget_set, keep, history_keep, "finetuned")
        device, batch = config["device"], config["eval_batch_size"]
        forget_samples = probe.samples
        if len(forget_samples) == 0:
            report.stopped_by = "empty"
            return report.finish()
        rng = np.random.default_rng(config["seed"])
        pool = dataset.split_targets(keep)[0]
        retain = dataset.samples(np.sort(rng.choice(pool, size=min(len(pool), config["kookmin_retain_samples"]),
                                                    replace=False)), keep)
        names, params = zip(*[(name, p) for name, p in model.named_parameters() if p.requires_grad])
        g_forget = dict(zip(names, target_gradients(model, forget_samples, list(params), batch, device,
                                                    len(forget_samples))))
        g_retain = dict(zip(names, target_gradients(model, retain, list(params), batch, device, len(retain))))
        init_seed(config["seed"], config["reproducibility"])
        fresh = dict(config.model_class(config, dataset).to(device).named_parameters())
        reset = 0
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name not in g_forget:
                    continue
                difference = (g_forget[name] - g_retain[name]).abs().flatten()
                count = max(1, math.ceil(config["kookmin_reinit_ratio"] * difference.numel()))
                chosen = torch.topk(difference, count, largest=config["kookmin_select"] == "most").indices
                param.view(-1)[chosen] = fresh[name].detach().view(-1)[chosen]
                reset += count
        optimizer = torch.optim.Adam(model.parameters(), lr=config["kookmin_learning_rate"])
        report.finetune_epochs = fine_tune(config, model, RemainingBatches(config, dataset, keep, model),
                                           config["kookmin_finetune_epochs"], optimizer)
        report.epochs_run = report.kept_epoch = 1
        probe(1, reinitialised=reset)
        return report.finish()
