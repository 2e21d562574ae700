"""The one table of config keys (recbole_unlearn/config/keys.py) and what derives from it."""
import os

import pytest
import recbole
import yaml
from recbole.utils import argument_list

from recbole_unlearn.benchmark import expand_grid
from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.config.keys import (KEYS, declare, is_recorded, is_variant_key, number_key, phase_of,
                                         table_markdown)
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.paths import properties_dir
from conftest import tiny_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _yaml_keys(folder):
    keys = set()
    for root, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".yaml") and name != "url.yaml":
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    keys.update(yaml.safe_load(f) or {})
    return keys


def test_every_key_of_ours_is_declared_and_has_a_default():
    ours = _yaml_keys(properties_dir()) - _yaml_keys(os.path.join(os.path.dirname(recbole.__file__), "properties"))
    recbole_args = set(argument_list.general_arguments + argument_list.training_arguments
                       + argument_list.evaluation_arguments + argument_list.dataset_arguments)
    undeclared = sorted(k for k in ours - recbole_args if k not in KEYS)
    assert not undeclared, f"declare these in config/keys.py (or the method's module): {undeclared}"
    recbole_keys = _yaml_keys(os.path.join(os.path.dirname(recbole.__file__), "properties")) | recbole_args
    without_default = sorted(k for k, spec in KEYS.items()  # kind "any": RecBole's own, unchecked keys
                             if spec.kind != "any" and k not in recbole_keys and k not in _yaml_keys(properties_dir()))
    assert not without_default, f"give these a default in properties/: {without_default}"


def test_the_keys_document_is_up_to_date():
    with open(os.path.join(ROOT, "docs", "config-keys.md"), encoding="utf-8") as f:
        assert f.read() == table_markdown(), "regenerate docs/config-keys.md (command at its top)"


@pytest.mark.parametrize("key, value, message", [
    ("agg_max_samples", 0, "'agg_max_samples' must be a positive integer or ~, got 0"),  # never checked before
    ("partition_iterations", -1, "'partition_iterations' must be a positive integer"),  # never checked before
    ("agg_hidden_size", 0, "'agg_hidden_size' must be a positive integer or ~"),
    ("kookmin_reinit_ratio", 1.0, r"'kookmin_reinit_ratio' must be in \(0, 1\)"),
    ("scif_damping", -0.1, "'scif_damping' must be a non-negative number"),
    ("watch_idle_s", -1, "'watch_idle_s' must be a non-negative number or ~"),
    ("utility_topk", [10, 0], "'utility_topk' must be a list of positive integers"),
    ("audit_references", 1, "'audit_references' must be an integer >= 2"),
    ("num_workers", 0, "'num_workers' must be a positive integer"),
])
def test_every_declared_key_is_validated_when_a_config_is_built(key, value, message):
    with pytest.raises(UnlearnError, match=message):
        UnlearnConfig("SASRec", config_dict=tiny_dict(**{key: value}))


def test_method_defaults_are_validated_with_the_method():
    config = UnlearnConfig("SASRec", config_dict=tiny_dict())
    for method in ("scif", "kookmin", "fanchuan", "sru", "receraser", "sruga"):
        config.for_method(method)  # the shipped defaults are valid
    assert config.for_method("scif")["scif_params"] == "embeddings"


def test_phases_derive_the_saved_model_grid_and_results_keys():
    # what a saved model lets a later process change
    assert {"num_workers", "lock_timeout_s", "max_batch", "eval_batch_size"} <= {k for k in KEYS if phase_of(k) == "runtime"}
    assert phase_of("epochs") == "data" and phase_of("hidden_size") == "data"  # RecBole's own: data
    # what a grid row may vary
    assert all(is_variant_key(k) for k in ("n_shards", "scif_damping", "kookmin_select", "sruga_profile",
                                             "shard_unlearning", "num_workers"))
    with pytest.raises(UnlearnError, match="'epochs'"):
        expand_grid({"models": ["SASRec"], "datasets": ["d"], "methods": {"sisa": {"epochs": 3}}})
    with pytest.raises(UnlearnError, match="'audit'"):
        expand_grid({"models": ["SASRec"], "datasets": ["d"], "methods": {"sisa": {"audit": True}}})
    # what results.json records
    settings = UnlearnConfig("SASRec", config_dict=tiny_dict()).settings()
    assert "n_shards" in settings and "num_workers" in settings
    assert not {"data_path", "checkpoint_dir", "model_dir", "results_dir"} & set(settings)
    assert not is_recorded("device")


def test_a_module_declares_its_own_keys():
    declare({"toy_step_rate": number_key("forget")})
    try:
        assert is_variant_key("toy_step_rate") and phase_of("toy_step_rate") == "forget"
        from recbole_unlearn.config.keys import check_value
        with pytest.raises(UnlearnError, match="'toy_step_rate' must be a positive number"):
            check_value("toy_step_rate", 0)
        with pytest.raises(ValueError, match="declared twice"):
            declare({"toy_step_rate": number_key("fit")})
    finally:
        KEYS.pop("toy_step_rate")
