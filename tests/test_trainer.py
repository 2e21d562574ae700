"""Checkpoints load with torch.load(weights_only=True); bad files give one clear error."""
import pytest
import torch

from recbole_unlearn.data import split_loaders
from recbole_unlearn.trainer import UnlearnTrainer, load_checkpoint, new_model
from recbole_unlearn.utils.errors import UnlearnError


@pytest.fixture
def trainer(tiny_setup, in_tmp):
    config, dataset = tiny_setup
    loaders = split_loaders(config, dataset)
    model = new_model(config, loaders.train.dataset)
    t = UnlearnTrainer(config, model)
    t.fit(loaders.train, loaders.valid, verbose=False, saved=True)
    return t, loaders


def test_checkpoint_is_weights_only_loadable(trainer, tmp_path):
    t, loaders = trainer
    path = str(tmp_path / "ckpt.pth")
    t.save_checkpoint(path)
    state = torch.load(path, weights_only=True)  # raises if anything but tensors/plain values
    assert set(state) >= {"state_dict", "optimizer", "epoch", "best_valid_score"}
    assert "config" not in state


def test_evaluate_load_best_and_resume(trainer, tmp_path):
    t, loaders = trainer
    path = str(tmp_path / "ckpt.pth")
    t.save_checkpoint(path)
    expected = t.evaluate(loaders.test, load_best_model=True)
    with torch.no_grad():
        for p in t.model.parameters():
            p.add_(1.0)
    assert t.evaluate(loaders.test, load_best_model=True, model_file=path) == expected
    t.resume_checkpoint(path)
    assert t.start_epoch == 1


def test_truncated_and_pickled_checkpoints_are_rejected(tmp_path):
    truncated = tmp_path / "truncated.pth"
    torch.save({"state_dict": {"w": torch.ones(100)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:50])
    with pytest.raises(UnlearnError, match="cannot load checkpoint .*truncated.pth"):
        load_checkpoint(str(truncated))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(UnlearnError, match="cannot load checkpoint .*evil.pth"):
        load_checkpoint(str(evil))
    with pytest.raises(UnlearnError, match="checkpoint not found"):
        load_checkpoint(str(tmp_path / "missing.pth"))


def test_a_checkpoint_error_that_is_a_bare_number_is_named(tmp_path, monkeypatch):
    """A corrupt file whose reader raised ``KeyError(174812789)`` gave "cannot load checkpoint
    ...: 174812789" (r11audit probe): the line says what it is."""
    (tmp_path / "bad.pth").write_bytes(b"x")

    def raises(*args, **kwargs):
        raise KeyError(174812789)

    monkeypatch.setattr(torch, "load", raises)
    with pytest.raises(UnlearnError, match=r"bad.pth: not a weights file this code can read \(KeyError 174812789\)$"):
        load_checkpoint(str(tmp_path / "bad.pth"))


def test_training_loss_skips_only_empty_mask_batches():
    from recbole.data.interaction import Interaction

    from recbole_unlearn.trainer.trainer import training_loss

    class NanModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))

        def calculate_loss(self, interaction):
            return (self.w * 0).sum() / torch.tensor(0.0)  # 0/0, as BERT4Rec with nothing masked

    model = NanModel()
    empty = Interaction({"MASK_INDEX": torch.zeros(2, 3, dtype=torch.long)})
    loss = training_loss(model, empty)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(model.w.grad, torch.zeros(3))
    masked = Interaction({"MASK_INDEX": torch.tensor([[0, 2, 0], [0, 0, 0]])})
    assert torch.isnan(training_loss(model, masked))  # a real NaN still surfaces
    assert torch.isnan(training_loss(model, Interaction({"x": torch.zeros(2)})))
