"""RecBole's ``Trainer`` with checkpoints that load under ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default. RecBole 1.2.1 pickles its ``Config``
object into every checkpoint, so its own ``evaluate(load_best_model=True)`` and
``resume_checkpoint`` fail on current torch. Instead of downgrading torch or unpickling
arbitrary objects, ``UnlearnTrainer``

* keeps the best state of the current ``fit`` in memory (no file per improvement);
* writes checkpoints holding only tensors and plain Python values (no ``Config``);
* reads every checkpoint back with ``weights_only=True``.
"""
import copy
import hashlib
from typing import Dict, Optional

import torch
import recbole.trainer.trainer as recbole_trainer_module
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_unlearn.evaluator.collector import TopkCollector
from recbole_unlearn.utils.atomic import atomic_write
from recbole_unlearn.utils.errors import UnlearnError


def cpu_state_dict(model: torch.nn.Module) -> dict:
    """A detached CPU copy of ``model.state_dict()`` (safe to keep, pickle to Ray, or save)."""
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def state_digest(state: Dict[str, torch.Tensor]) -> str:
    """SHA-256 hex digest of a ``state_dict``'s names and values (as stored on the CPU)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def training_loss(model: torch.nn.Module, interaction, loss_func=None):
    """``model.calculate_loss(interaction)`` (or ``loss_func``), except for one RecBole case.

    BERT4Rec's loss is ``sum(masked losses) / number of masked items``: 0/0 = NaN for a (small)
    batch in which the random masking picked no item, and RecBole's Trainer then aborts. Such a
    batch carries nothing to learn, so it gets a zero loss (zero gradients). Any other NaN is
    returned as is, so training still stops on it as in RecBole.
    """
    loss = (loss_func or model.calculate_loss)(interaction)
    if (not isinstance(loss, tuple) and torch.isnan(loss) and "MASK_INDEX" in interaction
            and not bool((interaction["MASK_INDEX"] > 0).any())):
        return sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
    return loss


def load_checkpoint(path: str, device="cpu") -> dict:
    """``torch.load(path, weights_only=True)`` with a one-line error for a bad file."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise UnlearnError(f"checkpoint not found: {path}") from None
    except Exception as e:  # truncated, tampered or pickled-object files
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if not any(c.isalpha() for c in first_line):  # (a bare number, e.g. a KeyError of torch's reader: r11audit)
            first_line = f"{type(e).__name__} {first_line}".strip()
        raise UnlearnError(f"cannot load checkpoint {path}: not a weights file this code can read ({first_line})") \
            from None


class _NoTensorboard:
    """Stands in for RecBole's SummaryWriter when ``tensorboard`` is off: shard and aggregator
    trainers are created by the dozen, and each SummaryWriter leaves a folder behind."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class UnlearnTrainer(Trainer):
    """RecBole ``Trainer`` with safe checkpoints (see module docstring). With the config key
    ``tensorboard`` False (our default) no ``log_tensorboard/`` folder is written, and no
    ``checkpoint_dir`` is created."""

    def __init__(self, config, model):
        make_writer, make_dir = recbole_trainer_module.get_tensorboard, recbole_trainer_module.ensure_dir
        if not config["tensorboard"]:
            recbole_trainer_module.get_tensorboard = lambda logger: _NoTensorboard()
        # RecBole creates checkpoint_dir (default saved/ in the working directory) for files this
        # trainer never writes unless asked to (save_checkpoint takes its own path): a request
        # answered by a saved model must leave the working directory as it was.
        recbole_trainer_module.ensure_dir = lambda path: None
        try:
            super().__init__(config, model)
        finally:
            recbole_trainer_module.get_tensorboard, recbole_trainer_module.ensure_dir = make_writer, make_dir
        self.best_state: Optional[dict] = None
        self.eval_collector = TopkCollector(config)  # RecBole's, without a dense [B, n_items] matrix

    def cap_epochs(self, cap: int) -> None:
        """Train at most ``cap`` epochs (a slice stage's or an aggregator's cap, not ``epochs``),
        validating at least once as RecBole's Trainer does for ``epochs`` when it is built: every
        ``min(eval_step, cap)`` epochs (``eval_step`` 3 past a cap of 2 never validated)."""
        self.epochs = cap
        self.eval_step = min(self.config["eval_step"], cap)

    @property
    def stopped_by_validation(self) -> bool:
        """Whether the last :meth:`fit` ended by early stopping (RecBole's ``early_stopping``
        stops once ``stopping_step`` + 1 evaluations in a row have not improved, at any epoch, the
        last allowed one included), not by running out of epochs."""
        return self.cur_step > self.stopping_step

    def hit_cap(self) -> bool:
        """Whether the last :meth:`fit` ran all its epochs without early stopping ending it."""
        return len(self.train_loss_dict) >= self.epochs and not self.stopped_by_validation

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        loss_func = loss_func or self.model.calculate_loss
        return super()._train_epoch(
            train_data, epoch_idx, lambda interaction: training_loss(self.model, interaction, loss_func), show_progress
        )

    def _check_nan(self, loss):
        """A loss that is not a number ended a run in RecBole's ``ValueError: Training loss is
        nan`` traceback (a learning rate too large for the data); it is one line."""
        if torch.isnan(loss):
            raise UnlearnError(f"{self.config['model']} training diverged: its loss became NaN (learning rate "
                               f"{self.learning_rate:g} too large? lower learning_rate, or agg_learning_rate for an "
                               "aggregator)")

    def _checkpoint_state(self, epoch: int) -> dict:
        return {
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "state_dict": copy.deepcopy(self.model.state_dict()),
            "other_parameter": self.model.other_parameter(),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """Keep the best state in memory; write it only when a file is asked for."""
        self.best_state = self._checkpoint_state(epoch)
        saved_model_file = kwargs.pop("saved_model_file", None)
        if saved_model_file:
            self.save_checkpoint(saved_model_file)
            if verbose:
                self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def save_checkpoint(self, path: str) -> None:
        """Write the best state (or the current one) atomically, weights-only-loadable."""
        state = self.best_state or self._checkpoint_state(self.start_epoch - 1)
        atomic_write(path, lambda f: torch.save(state, f))

    def resume_checkpoint(self, resume_file):
        checkpoint = load_checkpoint(str(resume_file), self.device)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.best_state = checkpoint
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def load_best(self, model_file: Optional[str] = None) -> None:
        """Load ``model_file`` (weights only) or the in-memory best state into the model."""
        if model_file:
            state = load_checkpoint(model_file, self.device)
        elif self.best_state is not None:
            state = self.best_state
        else:
            return  # nothing better than the current weights was recorded
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model:
            self.load_best(model_file)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
