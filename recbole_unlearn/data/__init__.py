from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.forget import (
    FORGET_PROTOCOLS,
    ForgetSet,
    Request,
    build_forget_set,
    forget_set_from_requests,
    parse_request_file,
    sample_forget_set,
)
from recbole_unlearn.data.utils import (
    SplitLoaders,
    check_dataset_files,
    create_unlearn_dataset,
    dataset_file,
    eval_loader,
    split_loaders,
    train_loader,
)
from recbole_unlearn.data.partition import PARTITIONERS, ShardMap, build_shard_map
from recbole_unlearn.data.similarity import PartitionEmbeddings, similarity_partitioners

__all__ = [
    "UnlearnSequentialDataset", "FORGET_PROTOCOLS", "ForgetSet", "Request", "build_forget_set",
    "forget_set_from_requests", "parse_request_file", "sample_forget_set", "SplitLoaders",
    "check_dataset_files", "create_unlearn_dataset", "dataset_file", "eval_loader", "split_loaders",
    "train_loader", "PARTITIONERS", "ShardMap", "build_shard_map", "similarity_partitioners",
    "PartitionEmbeddings",
]
