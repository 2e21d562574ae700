"""The RecBole baseline row: the same model trained by RecBole's own pipeline on D_raw.

This is what ``recbole.quick_start.run_recbole`` does (``SequentialDataset`` ->
``data_preparation`` -> model -> trainer ``fit`` -> ``evaluate`` on the test split), with
differences that do not change the numbers: the dataset is built directly instead of through
``create_dataset``, and the dataloaders as ``data_preparation`` builds them, without its
``load_split_dataloaders`` (each would unpickle a cached file lying in the cell folder, the
checkpoint folder: a pickle put there ran its code), and the trainer is our ``UnlearnTrainer``
subclass, whose only change is a weights-only checkpoint (RecBole's own checkpoint cannot be
read back under torch >= 2.6). It trains and validates on ``metrics`` x ``topk`` as RecBole does, and
reports the test split with ``utility_metrics`` x ``utility_topk`` (RecBole's own Evaluator), as
every other row reports D_raw: each number is the one ``run_recbole`` prints for that metric.
"""
import time
from logging import getLogger

from recbole.data.dataset import SequentialDataset
from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import init_seed, set_color

from recbole_unlearn.trainer.trainer import UnlearnTrainer
from recbole_unlearn.trainer.training import TrainedModel, training_record, validated_score
from recbole_unlearn.utils.cpu_meter import CpuMeter
from recbole_unlearn.utils.results import make_row

BASELINE = "recbole"


def recbole_baseline_row(config) -> dict:
    """Train ``config['model']`` with RecBole's data pipeline; the row has D_raw utility only
    (RecBole knows nothing of forget sets) and the training seconds."""
    logger = getLogger()
    meter = CpuMeter()  # over the whole row, as every other row's (training, evaluation)
    init_seed(config["seed"], config["reproducibility"])
    dataset = SequentialDataset(config)
    train_data, valid_data, test_data = _split_loaders(config, dataset)
    start = time.perf_counter()
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    trainer = UnlearnTrainer(config, model)
    logger.info(set_color("training RecBole baseline", "green") + f" on {len(train_data._dataset)} samples")
    trainer.fit(train_data, valid_data, verbose=True, saved=True, show_progress=config["show_progress"])
    trainer.load_best()
    seconds = time.perf_counter() - start
    reporting = UnlearnTrainer(config.override({"metrics": config["utility_metrics"],
                                                "topk": config["utility_topk"]}), model)
    result = reporting.evaluate(test_data, load_best_model=False, show_progress=config["show_progress"])
    utility = {key: float(value) for key, value in result.items()}
    trained = TrainedModel(model, seconds, validated_score(trainer.best_valid_score), len(trainer.train_loss_dict),
                           trainer.hit_cap())
    return make_row(BASELINE, {"utility_raw": utility}, seconds, **training_record(trained, config),
                    cpu_meter=meter.result())


def _split_loaders(config, dataset: SequentialDataset):
    """RecBole's ``data_preparation`` for a sequential model, without loading (or saving) split
    dataloaders from ``checkpoint_dir``: ``(train, valid, test)`` dataloaders."""
    built = dataset.build()
    samplers = create_samplers(config, dataset, built)
    return (get_dataloader(config, "train")(config, built[0], samplers[0], shuffle=config["shuffle"]),
            get_dataloader(config, "valid")(config, built[1], samplers[1], shuffle=False),
            get_dataloader(config, "test")(config, built[2], samplers[2], shuffle=False))
