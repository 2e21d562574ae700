"""Try the run's model on one batch of a few users before a run writes anything.

RecBole types some models as sequential that this package cannot train or read: TransRec trains
on sampled negatives with no ``loss_type`` key to say so, DIN and DIEN need a label field, and
RepeatNet, Caser, HRM or FOSSIL give no ``[B, H]`` sequence representation or ``[n_items, H]``
item embeddings (``model.representations``) for the parts that read them (learned aggregators,
similarity partitions, CED, Fanchuan). Each failed with a traceback after the run folder was
written and the original model trained. :func:`check_model_trains` runs one training loss, one
full-ranking prediction and, where the run reads them, the representations, on a few users'
samples, and turns a failure into one ``UnlearnError``. Random states are restored afterwards,
so the run's numbers are those it would give without the check.
"""
import inspect
import random
from contextlib import contextmanager
from typing import Iterator, Mapping

import numpy as np
import torch
from recbole.model.sequential_recommender import BERT4Rec

from recbole_unlearn.data.utils import split_loaders
from recbole_unlearn.model.representations import item_bias, item_representations, sequence_representation
from recbole_unlearn.trainer.approximate import APPROXIMATE
from recbole_unlearn.trainer.trainer import training_loss
from recbole_unlearn.trainer.training import new_model
from recbole_unlearn.utils.errors import UnlearnError, error_line


@contextmanager
def _random_states_kept() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's random states after the block."""
    python, numpy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _few_users_keep(dataset, users: int) -> np.ndarray:
    """``[n_rows]`` bool: every log row of the first ``users`` users (ids from 1)."""
    return np.isin(dataset.log_user, np.arange(1, min(users, dataset.user_num - 1) + 1))


def check_model_trains(config, dataset, reads_representations: bool, steps: Mapping[str, object] = None) -> None:
    """Raise ``UnlearnError`` (one line) if ``config.model_class`` cannot compute its training
    loss and full-ranking scores on a batch of ``preflight_users`` users' samples, or, with
    ``reads_representations``, a ``[B, H]`` sequence representation matching ``[n_items, H]``
    item embeddings, or if an approximate step of ``steps`` (``{name in APPROXIMATE: the config of
    the method that runs it}``) cannot act on it (``ApproximateStep.check_model``)."""
    name = config["model"]
    step = "its training loss"
    try:
        with _random_states_kept():
            loaders = split_loaders(config, dataset, _few_users_keep(dataset, config["preflight_users"]))
            if loaders.train is None:
                return  # nothing to try on: the run itself says what is wrong with its data
            model = new_model(config, loaders.train.dataset)
            if (config["train_neg_sample_args"] or {}).get("dynamic"):
                loaders.train.get_model(model)  # dynamic negatives are scored by the model (as RecBole's fit does)
            model.train()
            batch = next(iter(loaders.train)).to(config["device"])
            loss = training_loss(model, batch)
            (sum(loss) if isinstance(loss, tuple) else loss).backward()
            model.eval()
            step = "its full-ranking scores"
            with torch.no_grad():
                interaction = next(iter(loaders.valid))[0].to(config["device"])
                scores = model.full_sort_predict(interaction)
                if reads_representations:
                    step = "the sequence representation and item embeddings the run's methods read"
                    _check_representations(model, interaction, scores, config["preflight_topk_agreement"])
            for name_of_step, step_config in (steps or {}).items():
                step = f"the {name_of_step} step's check of it"
                APPROXIMATE.get(name_of_step).check_model(step_config, model)
    except UnlearnError:
        raise
    except Exception as error:
        raise UnlearnError(f"model {name} cannot be trained by recbole_unlearn with these settings: {step} failed on "
                           f"a few users' samples ({error_line(error)})") from None


def _check_representations(model, interaction, scores: torch.Tensor, agreement: float) -> None:
    """Raise ``ValueError`` unless the model gives a ``[B, H]`` sequence representation and
    ``[n_items, H]`` item embeddings that are what it scores with (with the item bias of
    :func:`item_bias`, which a model checked untrained holds at zero): ``forward`` takes the sequence
    and its length (SHAN's, HGN's and NPE's second argument is a user, which was given lengths),
    and the top 10 items of ``h q^T`` agree with those of its ``full_sort_predict`` (``scores``,
    ``[B * n_items]`` or ``[B, n_items]``) on at least ``agreement`` of them on average (CORE
    normalises and GRU4RecCPR mixes further vectors: 0.91 and 0.003 on ml-tiny, where SASRec,
    GRU4Rec and BERT4Rec give exactly its scores)."""
    if not isinstance(model, BERT4Rec):  # its forward reads the sequence alone ([MASK] appended)
        names = list(inspect.signature(model.forward).parameters)
        if len(names) >= 2 and "len" not in names[1]:
            raise ValueError(f"its forward takes ({', '.join(names)}), not the sequence and its length")
    sequences = sequence_representation(model, interaction)
    items = item_representations(model)
    if sequences.dim() != 2 or items.dim() != 2 or sequences.shape[1] != items.shape[1]:
        raise ValueError(f"sequence representation of shape {tuple(sequences.shape)} and item embeddings of shape "
                         f"{tuple(items.shape)}, not [B, H] and [n_items, H]")
    theirs = scores.view(len(sequences), -1)[:, : len(items)]
    mine = sequences @ items.T
    bias = item_bias(model)  # BERT4Rec's output_bias: zero here, trained later
    if bias is not None:
        mine = mine + bias
    k = min(10, len(items))
    ours, model_top = mine.topk(k).indices.tolist(), theirs.topk(k).indices.tolist()
    shared = sum(len(set(a) & set(b)) for a, b in zip(ours, model_top)) / (k * len(ours))
    if shared < agreement:
        raise ValueError(f"it does not score with them: the top {k} items of the sequence representation times "
                         f"the item embeddings agree with its own scores' on {shared:.0%}")
