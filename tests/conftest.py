import os
import warnings

import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# RecBole 1.2.1 triggers these on every dataset load; they are not ours to fix.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)


def tiny_dict(**overrides) -> dict:
    """Config dict for the 60-user ml-tiny fixture: 1 epoch, quiet, CPU."""
    base = {
        "data_path": FIXTURES,
        "dataset": "ml-tiny",
        "epochs": 1,
        "state": "ERROR",
        "use_gpu": False,
        "forget_user_ratio": 0.2,
        "sru_inference_neg_num": 100,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    }
    base.update(overrides)
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
