"""Config layering and one-line errors for bad configuration."""
import os

import pytest

from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.paths import properties_dir

from conftest import tiny_dict


def test_defaults_come_from_properties():
    config = UnlearnConfig(config_dict=tiny_dict(dataset="ml-100k"))
    assert config["model"] == "SASRec" and config["dataset"] == "ml-100k"
    assert config["MAX_ITEM_LIST_LENGTH"] == 10
    assert config.methods == ["retrain"]
    assert config["forget_protocol"] == "thesis"
    assert os.path.isfile(os.path.join(properties_dir(), "overall.yaml"))


def test_precedence_file_then_dict(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("epochs: 7\nlearning_rate: 0.01\n")
    config = UnlearnConfig("GRU4Rec", config_file_list=[str(path)], config_dict=tiny_dict(epochs=3))
    assert config["epochs"] == 3 and config["learning_rate"] == 0.01
    assert config["hidden_size"] == 128  # RecBole's GRU4Rec.yaml


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"config_dict": tiny_dict(epoch=3)}, "unknown config key 'epoch'"),
        ({"config_dict": tiny_dict(epochs=-1)}, "'epochs' must be a positive integer"),
        ({"config_dict": tiny_dict(forget_user_ratio=2)}, "'forget_user_ratio' must be in"),
        ({"config_dict": tiny_dict(eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO"})},
         "leave-one-out"),
        ({"model": "NoSuchModel", "config_dict": tiny_dict()}, "unknown model 'NoSuchModel'"),
        ({"model": "BPR", "config_dict": tiny_dict()}, "not a sequential recommender"),
        ({"config_file_list": ["/no/such.yaml"], "config_dict": tiny_dict()}, "config file not found"),
        # RecBole reads it: it was refused as "not a RecBole or recbole_unlearn setting"
        ({"config_dict": tiny_dict(encoding="latin-1")}, "config key 'encoding': RecBole reads the dataset files in "
                                                         "it, but this package reads and checks them .* as UTF-8"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(UnlearnError, match=message):
        UnlearnConfig(**kwargs)


def test_a_partial_eval_args_completes_from_our_defaults():
    """RecBole completes a partial ``eval_args`` from its own defaults (a random split): ``{mode:
    full}``, our own default mode, was refused as "needs leave-one-out splits", a split the user
    never set (r10baseline probe)."""
    config = UnlearnConfig("SASRec", config_dict=tiny_dict(eval_args={"mode": "full"}))
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"} and config["eval_args"]["order"] == "TO"
    with pytest.raises(UnlearnError, match="leave-one-out"):
        UnlearnConfig("SASRec", config_dict=tiny_dict(eval_args={"order": "RO"}))


def test_unload_col_beside_the_default_load_col_names_that_default():
    """RecBole refuses load_col and unload_col for the same file, naming our default load_col,
    which the user never gave (r10round6 probe): the line says it is the default."""
    settings = {k: v for k, v in tiny_dict(unload_col={"inter": ["rating"]}).items() if k != "load_col"}
    with pytest.raises(UnlearnError, match=r"load_col \{'inter': \['user_id', 'item_id', 'timestamp'\]\} \(the "
                                           r"default\) lists the inter file's fields too"):
        UnlearnConfig("SASRec", config_dict=settings)
    assert UnlearnConfig("SASRec", config_dict=dict(settings, load_col=None))["unload_col"] == {"inter": ["rating"]}


def test_keys_of_other_models_are_not_typos():
    # BERT4Rec's mask_ratio is a real RecBole key even when the model is SASRec
    config = UnlearnConfig("SASRec", config_dict=tiny_dict(mask_ratio=0.3))
    assert config["mask_ratio"] == 0.3


def test_bert4rec_config_has_its_mask_fields_before_any_dataloader():
    config = UnlearnConfig("BERT4Rec", config_dict=tiny_dict())
    assert config["MASK_ITEM_SEQ"] == "Mask_item_id_list" and config["POS_ITEMS"] == "Pos_item_id"
    assert config.for_method("retrain")["MASK_ITEM_SEQ"] == "Mask_item_id_list"


@pytest.mark.parametrize("text", ["__import__('os').getpid()", "1/0", "[x for x in ()]"])
def test_command_line_values_are_literals_never_code(text):
    """RecBole evals command-line values; ours are only read as literals."""
    from recbole_unlearn.cli import parse_args

    _, _, _, config_dict = parse_args([f"--epochs={text}", "--learning_rate=1e-3", "--topk=[5, 10]",
                                       "--reproducibility=true"])
    assert config_dict == {"epochs": text, "learning_rate": 0.001, "topk": [5, 10], "reproducibility": True}
    with pytest.raises(UnlearnError, match="'epochs' must be a positive integer"):
        UnlearnConfig("GRU4Rec", config_dict=tiny_dict(epochs=text))


def test_command_line_tilde_is_none_as_in_yaml():
    """``--agg_max_samples=~`` means what ``agg_max_samples: ~`` means in a config file."""
    from recbole_unlearn.cli import parse_args

    _, _, _, config_dict = parse_args(["--agg_max_samples=~", "--slice_epochs=null", "--watch_idle_s=None",
                                       "--forget=~"])
    assert config_dict == {"agg_max_samples": None, "slice_epochs": None, "watch_idle_s": None, "forget": "~"}
    assert UnlearnConfig("GRU4Rec", config_dict=tiny_dict(agg_max_samples=config_dict["agg_max_samples"]))[
        "agg_max_samples"] is None


def test_a_command_line_list_of_names_is_read_as_yaml_reads_it():
    """``--metrics=[Hit,NDCG]`` stayed the string '[Hit,NDCG]' (RecBole: "There is no metric
    named '[Hit,NDCG]'"; ``utility_metrics``: "must be a list ..., got '[Hit,NDCG]'"): only the
    quoted Python form worked, where ``unlearn_method`` took this one (README probe). A list of
    bare names is a list, as in a config file."""
    from recbole_unlearn.cli import parse_args

    _, _, _, config_dict = parse_args(["--metrics=[Hit,NDCG]", "--utility_metrics=[ Hit , NDCG ]",
                                       "--valid_metric=Hit@10", "--unlearn_method=[sisa,sruga]"])
    assert config_dict == {"metrics": ["Hit", "NDCG"], "utility_metrics": ["Hit", "NDCG"],
                           "valid_metric": "Hit@10", "unlearn_method": ["sisa", "sruga"]}
    config = UnlearnConfig("GRU4Rec", config_dict=tiny_dict(metrics=config_dict["metrics"],
                                                            utility_metrics=config_dict["utility_metrics"],
                                                            valid_metric="Hit@10"))
    assert config["metrics"] == ["Hit", "NDCG"] and config["utility_metrics"] == ["Hit", "NDCG"]


def test_recbole_anomaly_detection_is_switched_off_unless_asked():
    import torch
    import recbole.model.sequential_recommender.sine  # noqa: F401  (its import enables detection)

    torch.autograd.set_detect_anomaly(True)  # as sine.py leaves it
    UnlearnConfig(config_dict=tiny_dict(dataset="ml-100k"))
    assert not torch.is_anomaly_enabled()
    UnlearnConfig(config_dict=tiny_dict(dataset="ml-100k", detect_anomaly=True))
    assert torch.is_anomaly_enabled()
    UnlearnConfig(config_dict=tiny_dict(dataset="ml-100k"))
    assert not torch.is_anomaly_enabled()
    with pytest.raises(UnlearnError, match="'detect_anomaly' must be True or False"):
        UnlearnConfig(config_dict=tiny_dict(dataset="ml-100k", detect_anomaly="yes"))


def test_importing_the_package_leaves_anomaly_detection_off():
    import subprocess
    import sys

    code = "import recbole_unlearn, torch; print(torch.is_anomaly_enabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_builds_under_numpy_2_which_removed_the_aliases_recbole_reads(monkeypatch):
    """NumPy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``; RecBole 1.2.1's
    ``Config.compatibility_settings`` reads them, so without our aliases every config fails
    (seen with NumPy 2.4 on the CPU, ``AttributeError: `np.float_` was removed``; the H200's
    CUDA image ships NumPy 2.5).
    Simulated here on NumPy 1.x by removing the names the way NumPy 2 lacks them."""
    import numpy as np

    from recbole_unlearn.compat import restore_numpy_aliases

    for name in ("float_", "complex_", "unicode_", "float", "complex", "unicode"):
        monkeypatch.delitem(np.__dict__, name, raising=False)
    restore_numpy_aliases()
    config = UnlearnConfig(config_dict=tiny_dict(dataset="ml-100k"))
    assert config["model"] == "SASRec"
    assert np.float_ is np.float64 and np.unicode_ is np.str_ and np.complex_ is np.complex128


def test_numpy_scalars_from_the_python_api_are_plain_values():
    """A sweep written with numpy passes ``np.int64`` / ``np.float32`` values: they used to be
    refused with a message that showed a valid-looking value ("'learning_rate' must be a
    positive number, got 0.003"). They are read as the Python numbers they hold."""
    import numpy as np

    config = UnlearnConfig("SASRec", config_dict=tiny_dict(
        n_shards=np.int64(3), learning_rate=np.float32(0.003), topk=[np.int64(10)], include_retrain=np.bool_(False)))
    assert type(config["n_shards"]) is int and config["n_shards"] == 3
    assert type(config["learning_rate"]) is float and abs(config["learning_rate"] - 0.003) < 1e-9
    assert config["topk"] == [10] and type(config["topk"][0]) is int
    assert config["include_retrain"] is False


def test_config_files_that_hold_no_setting_or_a_key_twice(tmp_path):
    """Found by probing: a config file of comments only (valid YAML, no settings) was refused with
    "'NoneType' object is not iterable"; a key written twice kept the last value without a word;
    a folder given as a config file was "not found"."""
    empty, comments, twice = tmp_path / "empty.yaml", tmp_path / "comments.yaml", tmp_path / "twice.yaml"
    empty.write_text("")
    comments.write_text("# nothing set here yet\n")
    config = UnlearnConfig("GRU4Rec", config_file_list=[str(empty), str(comments)], config_dict=tiny_dict(epochs=3))
    assert config["epochs"] == 3
    twice.write_text("epochs: 1\nlearning_rate: 0.01\nepochs: 3\n")
    with pytest.raises(UnlearnError, match=r"twice.yaml is not valid YAML \(line 3, column 1\): key 'epochs' is written twice"):
        UnlearnConfig("GRU4Rec", config_file_list=[str(twice)], config_dict=tiny_dict())
    merged = tmp_path / "merged.yaml"  # a merge key's key set again is an override, not a duplicate
    merged.write_text("base: &base {a: 1}\nx:\n  y:\n    mid: &mid\n      <<: *base\n      a: 2\nleaf:\n  <<: *mid\n")
    from recbole_unlearn.config.configurator import _check_yaml_file

    _check_yaml_file(str(merged))
    for text in ("- epochs\n", "[]\n", "false\n"):
        (tmp_path / "listed.yaml").write_text(text)
        with pytest.raises(UnlearnError, match="must be a mapping of settings"):
            UnlearnConfig("GRU4Rec", config_file_list=[str(tmp_path / "listed.yaml")], config_dict=tiny_dict())
    (tmp_path / "listed.yaml").write_text("- epochs\n")
    with pytest.raises(UnlearnError, match="must be a mapping of settings"):
        UnlearnConfig("GRU4Rec", config_file_list=[str(tmp_path / "listed.yaml")], config_dict=tiny_dict())
    with pytest.raises(UnlearnError, match="is a folder, not a config file"):
        UnlearnConfig("GRU4Rec", config_file_list=[str(tmp_path)], config_dict=tiny_dict())


def test_two_runs_in_two_threads_of_one_process_each_log_into_their_own_file(tmp_path):
    """A watcher answering requests in one thread while an experiment ran in another: the second
    run's logger setup removed the first's handlers, so the watcher's later lines went into the
    experiment's log or nowhere, and the first run's end gave the root logger its caller's level
    back while the other still ran (found by probing). Each run's handlers take only its own
    thread's lines; the caller's level comes back when the last run ends."""
    import logging
    import threading

    from recbole_unlearn.utils.run_logger import init_run_logger, release_run_logger

    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.ERROR)
    first_set_up, second_set_up, second_done = threading.Event(), threading.Event(), threading.Event()

    def run(name, set_up, wait_for, then):
        init_run_logger({"state": "INFO"}, str(tmp_path / f"{name}.log"))
        set_up.set()
        wait_for.wait(30)
        for n in range(3):
            logging.getLogger().info(f"{name} line {n}")
        if then is not None:
            then.set()
        release_run_logger()

    watcher = threading.Thread(target=run, args=("watcher", first_set_up, second_done, None))
    watcher.start()
    first_set_up.wait(30)
    experiment = threading.Thread(target=run, args=("experiment", second_set_up, first_set_up, second_done))
    experiment.start()
    experiment.join(60)
    watcher.join(60)
    for name, other in (("watcher", "experiment"), ("experiment", "watcher")):
        text = (tmp_path / f"{name}.log").read_text()
        assert all(f"{name} line {n}" in text for n in range(3)), (name, text)
        assert other not in text, (name, text)
    assert root.level == logging.ERROR
    root.setLevel(before)


def test_api_values_of_other_python_kinds_are_read_as_what_they_hold(tmp_path):
    """NumPy scalars inside a dict-valued setting (``clip_grad_norm={"max_norm": np.float32(5)}``)
    were refused showing a valid value; a NumPy array as ``topk`` got RecBole's "must be a
    integer, list"; ``pathlib.Path`` values were refused as ``config_file_list`` entries and as
    ``results_dir`` while accepted as ``data_path``; and a model named both as the argument and in
    ``config_dict`` ran the argument's without a word (found by probing)."""
    import pathlib

    import numpy as np

    from recbole_unlearn.utils.errors import UnlearnError

    settings = tmp_path / "s.yaml"
    settings.write_text("stopping_step: 4\n")
    config = UnlearnConfig("SASRec", config_file_list=[pathlib.Path(settings)], config_dict=tiny_dict(
        clip_grad_norm={"max_norm": np.float32(5.0)}, topk=np.array([10, 20]),
        results_dir=pathlib.Path(tmp_path / "r"), data_path=pathlib.Path(tiny_dict()["data_path"])))
    assert config["stopping_step"] == 4 and config["topk"] == [10, 20]
    assert config["clip_grad_norm"] == {"max_norm": 5.0} and type(config["clip_grad_norm"]["max_norm"]) is float
    assert config["results_dir"] == str(tmp_path / "r")
    with pytest.raises(UnlearnError, match="model is given twice: 'GRU4Rec' as the argument and 'SASRec' in "):
        UnlearnConfig("GRU4Rec", config_dict=tiny_dict(model="SASRec"))


def test_the_methods_of_a_run_are_recorded_alike_however_they_were_given():
    """The same run recorded ``unlearn_method`` as the list the API was given and as the comma
    string the command line was given (``["sisa", "sru"]`` against ``"sisa,sru"``; a probe): two
    results.json files of identical runs then differed. Recorded as the command line's form."""
    forms = [["sisa", "sru"], "sisa,sru", "SISA, sru", ("sisa", "SRU")]
    recorded = {UnlearnConfig("GRU4Rec", config_dict=tiny_dict(unlearn_method=form, n_shards=2)).settings()[
        "unlearn_method"] for form in forms}
    assert recorded == {"sisa,sru"}


def test_use_gpu_false_runs_on_the_cpu_where_cuda_is_available(monkeypatch):
    """RecBole 1.2.1 never reads ``use_gpu``: it chose ``cuda`` wherever CUDA was available
    (config probe)."""
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert str(UnlearnConfig(config_dict=tiny_dict(use_gpu=False))["device"]) == "cpu"


@pytest.mark.parametrize("visible", ["", "3", "1,2"])
def test_the_environments_cuda_visible_devices_is_kept(monkeypatch, visible):
    """RecBole set ``CUDA_VISIBLE_DEVICES`` to ``gpu_id`` (default ``0``) in every process: a
    process started with ``CUDA_VISIBLE_DEVICES=`` (no GPU) saw GPU 0 again, and one given its
    GPUs by a scheduler used another job's. Where the environment names the devices, it stays."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    for use_gpu in (True, False):
        UnlearnConfig(config_dict=tiny_dict(use_gpu=use_gpu))
        assert os.environ["CUDA_VISIBLE_DEVICES"] == visible


def test_a_gpu_id_given_by_the_user_still_chooses_the_device(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    UnlearnConfig(config_dict=tiny_dict(gpu_id="2", use_gpu=True))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2"  # RecBole's way of choosing a GPU


def test_device_is_refused_as_a_setting():
    """``device`` is derived (``use_gpu``, ``gpu_id``): ``--device=cuda:3`` ran on the CPU silently."""
    with pytest.raises(UnlearnError, match="'device' is set from use_gpu and gpu_id"):
        UnlearnConfig(config_dict=tiny_dict(device="cuda:3"))


def test_data_path_is_read_for_ml_100k_too(tmp_path):
    """RecBole replaces ``data_path`` with its bundled copy for a dataset named ``ml-100k``: a
    user's own ml-100k was ignored without a word."""
    config = UnlearnConfig(config_dict=tiny_dict(dataset="ml-100k", data_path=str(tmp_path)))
    assert os.path.normpath(config["data_path"]) == os.path.join(str(tmp_path), "ml-100k")
    bundled = UnlearnConfig(config_dict={k: v for k, v in tiny_dict(dataset="ml-100k").items() if k != "data_path"})
    assert os.path.isfile(os.path.join(bundled["data_path"], "ml-100k.inter"))  # the default job's data


def test_a_profile_stays_above_its_methods_own_yaml(monkeypatch):
    """``<name>_profile`` put its file over our defaults, and ``for_method`` then put the method's
    ``properties/method/<name>.yaml`` over every key the user did not set: a step with defaults in
    its own YAML (as the README's plugin recipe has it) got nothing of its profile, unsaid
    (r11peers probe; SRUGA's profile worked only because ``sruga.yaml`` sets no key)."""
    own_yaml = UnlearnConfig.method_defaults
    monkeypatch.setattr(UnlearnConfig, "method_defaults", lambda self, method: dict(
        own_yaml(self, method), **({"sruga_learning_rate": 0.5, "sruga_anneal": 0.3} if method == "sruga" else {})))
    plain = UnlearnConfig("GRU4Rec", "ml-tiny", config_dict=tiny_dict(unlearn_method="sruga")).for_method("sruga")
    assert (plain["sruga_learning_rate"], plain["sruga_anneal"]) == (0.5, 0.3)
    thesis = UnlearnConfig("GRU4Rec", "ml-tiny", config_dict=tiny_dict(unlearn_method="sruga", sruga_profile="thesis"))
    thesis = thesis.for_method("sruga")
    assert (thesis["sruga_learning_rate"], thesis["sruga_anneal"]) == (1e-4, 0.9)  # the profile's
    mine = UnlearnConfig("GRU4Rec", "ml-tiny", config_dict=tiny_dict(
        unlearn_method="sruga", sruga_profile="thesis", sruga_learning_rate=0.002)).for_method("sruga")
    assert mine["sruga_learning_rate"] == 0.002  # the user's own key above both


@pytest.mark.parametrize("model_dir", [5, True, ["x"]])
def test_a_model_dir_of_another_type_is_the_configs_to_refuse(model_dir):
    """The early check of a folder holding a model gave a bare TypeError, or "model_dir True is a
    file" (``os.path.exists(True)`` asks about file descriptor 1), before the config refused the
    value (r11round3 probe)."""
    from recbole_unlearn import run_recbole_unlearn

    with pytest.raises(UnlearnError, match="config key 'model_dir' must be a non-empty string"):
        run_recbole_unlearn("GRU4Rec", config_dict=tiny_dict(model_dir=model_dir, unlearn_method="sisa"))


def test_collecting_a_loads_log_records_leaves_the_root_loggers_handlers_alone():
    """A request run keeps the warnings its model's load logs, for its run.log, which begins after
    the load. A temporary root handler for that raced with another thread's run setting up its log
    (which takes every handler off and puts them back): it leaked for good, or left that run's log
    empty (r11round4 probe). It is a filter on the root logger: handlers untouched, this thread's
    records only."""
    import logging
    import threading

    from recbole_unlearn.utils.run_logger import collecting_log_records

    root = logging.getLogger()
    handlers, filters = list(root.handlers), list(root.filters)
    with collecting_log_records() as records:
        assert root.handlers == handlers
        root.warning("mine")
        root.info("below the level")
        other = threading.Thread(target=lambda: root.warning("another thread's"))
        other.start()
        other.join()
    assert [record.getMessage() for record in records] == ["mine"]
    assert root.handlers == handlers and root.filters == filters
