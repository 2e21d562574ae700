import os
import warnings

import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# pytest.ini runs the tests in two worker processes (pytest-xdist). Two torch processes with two
# threads each on a 2-core machine took 1,029 s for the suite against 747 s in one process; one
# thread each (here, and in the processes a test starts) took 486 s. Set before torch is imported.
# Each worker also keeps to its own share of the CPUs (its children inherit it), so that what a
# test measures of "other processes" on its CPUs (utils/cpu_meter.py) is not the other worker
# (unpinned, test_cpu_meter failed beside it); pinned, the suite took 376 s.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    _count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= _count > 1:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[int(_WORKER[2:]) % _count::_count])
    import torch

    torch.set_num_threads(1)

# RecBole 1.2.1 triggers these on every dataset load; they are not ours to fix.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)


# CI runs on CPU. On a CUDA machine, RECBOLE_UNLEARN_TEST_GPU=1 runs every test that builds its
# config from tiny_dict on the GPU instead (benchmarks/cuda_check.sh).
TEST_GPU = os.environ.get("RECBOLE_UNLEARN_TEST_GPU") == "1"


def tiny_dict(**overrides) -> dict:
    """Config dict for the 60-user ml-tiny fixture: 1 epoch, quiet, CPU (GPU under
    ``RECBOLE_UNLEARN_TEST_GPU=1``)."""
    base = {
        "data_path": FIXTURES,
        "dataset": "ml-tiny",
        "epochs": 1,
        "state": "ERROR",
        "use_gpu": TEST_GPU,
        "forget_user_ratio": 0.2,
        "sru_inference_neg_num": 100,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    }
    base.update(overrides)
    if "forget_user_ratio" not in overrides and (base.get("forget") or base.get("forget_protocol", "thesis") != "thesis"):
        base.pop("forget_user_ratio", None)  # the thesis protocol's key: another forget set never reads it
    return base


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run inside an empty temporary folder (RecBole writes log/ into the working directory)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_setup():
    """(config, dataset) for ml-tiny with SASRec; shared, read-only."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset

    config = UnlearnConfig("SASRec", config_dict=tiny_dict())
    return config, create_unlearn_dataset(config)


def train_saved_model(base, model: str = "GRU4Rec", **overrides) -> str:
    """Run ``run_recbole_unlearn`` inside ``base`` (a folder) with a saving method (default:
    SISA, 2 shards, no Retrain row) on ml-tiny; returns the saved ``model_dir``."""
    from recbole_unlearn import run_recbole_unlearn

    model_dir = str(base / "model")
    settings = dict(unlearn_method="sisa", model_dir=model_dir, include_retrain=False,
                    shard_num_threads=1, results_dir=str(base / "results"))
    settings.update(overrides)
    if settings["unlearn_method"] in ("sisa", "sru", "receraser"):  # a key no method of a run uses is refused
        settings.setdefault("n_shards", 2)
    cwd = os.getcwd()
    os.chdir(base)
    try:
        run_recbole_unlearn(model, config_dict=tiny_dict(**settings), verbose=False)
    finally:
        os.chdir(cwd)
    return model_dir


def snapshot(folder) -> dict:
    """``{relative path: bytes}`` of every file below ``folder`` (to prove nothing changed)."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


# --- the model folder, read the way tests need it (recbole_unlearn.serving) -----------------
def open_folder(model_dir):
    from recbole_unlearn.serving import open_store

    return open_store(str(model_dir))


def load_model(model_dir, overrides=None):
    return open_folder(model_dir).load(overrides)


def read_manifest(model_dir):
    return open_folder(model_dir).read_manifest()


def read_audit(model_dir):
    from recbole_unlearn.serving import AuditLog

    return AuditLog(str(model_dir)).entries()


def verify_model(model_dir):
    from recbole_unlearn.serving import verify_model as verify

    return verify(open_folder(model_dir))


def ledger_events(model_dir):
    from recbole_unlearn.serving.ledger import RequestLedger

    return RequestLedger(str(model_dir)).events()


def uncached_aggregator_run(model_name: str, aggregator: str):
    """ml-tiny, K=2 SISA shards (1 epoch) with a learned ``aggregator`` trained 2 epochs without the
    representation cache: the setup that compares the cached path against it. Returns the config,
    dataset, fitted model, its keep mask, one validation batch, the aggregator's state and the
    ensemble's ``[B, n_items]`` full-sort scores on that batch."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset, split_loaders
    from recbole_unlearn.unlearnable import ShardedUnlearnableModel

    config = UnlearnConfig(model_name, config_dict=tiny_dict(
        unlearn_method="sisa", n_shards=2, epochs=1, agg_epochs=2, aggregator=aggregator, agg_cache=False,
        shard_num_threads=1)).for_method("sisa")
    dataset = create_unlearn_dataset(config)
    model = ShardedUnlearnableModel.train(config, dataset)
    batch = next(iter(split_loaders(config, dataset).valid))[0].to(config["device"])
    state = {k: v.clone() for k, v in model.ensemble.aggregator.state_dict().items()}
    model.ensemble.eval()
    return config, dataset, model, model.keep_mask(), batch, state, model.ensemble.full_sort_predict(batch)


#: GRU4Rec settings under which it memorises ml-tiny: its forget set (157 interactions of 18 users)
#: reaches forget Hit@10 0.0955 against a Retrain's 0.0382 (test_approximate.py's fixture)
MEMORISING_GRU4REC = dict(epochs=40, stopping_step=1000, forget_user_ratio=0.3, dropout_prob=0.0, hidden_size=128,
                          embedding_size=128, learning_rate=0.01)


def trained_original(model_name: str, method: str, **overrides):
    """ml-tiny with ``method``'s config and ``overrides``: returns the config, dataset, its forget
    set and the original model trained on all of it."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset, sample_forget_set, split_loaders
    from recbole_unlearn.trainer import train_model

    config = UnlearnConfig(model_name, config_dict=tiny_dict(unlearn_method=method, **overrides)).for_method(method)
    dataset = create_unlearn_dataset(config)
    forget_set = sample_forget_set(config, dataset)
    trained = train_model(config, split_loaders(config, dataset), tag="original").model
    return config, dataset, forget_set, trained
