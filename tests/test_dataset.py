"""The sample builder reproduces RecBole's own sequential augmentation and leave-one-out split."""
import numpy as np
from recbole.config import Config
from recbole.data import create_dataset

from conftest import tiny_dict


def _as_records(dataset):
    feat = dataset.inter_feat
    users = feat["user_id"].numpy()
    targets = feat["item_id"].numpy()
    lengths = feat["item_length"].numpy()
    hist = feat["item_id_list"].numpy()
    return sorted(
        (int(u), int(t), tuple(int(x) for x in h[:n])) for u, t, n, h in zip(users, targets, lengths, hist)
    )


def test_raw_split_equals_recbole_split(tiny_setup):
    config, dataset = tiny_setup
    ours = dataset.build_split()
    rb_config = Config("SASRec", config_dict={k: v for k, v in tiny_dict().items()
                                             if k not in ("forget_user_ratio", "sru_inference_neg_num")}
                       | {"train_neg_sample_args": None, "MAX_ITEM_LIST_LENGTH": 10,
                          "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"}})
    theirs = create_dataset(rb_config).build()
    for mine, recbole_part in zip(ours, theirs):
        assert _as_records(mine) == _as_records(recbole_part)


def test_log_indexing(tiny_setup):
    _, dataset = tiny_setup
    for user in range(1, dataset.user_num):
        rows = dataset.user_rows(user)
        assert np.array_equal(dataset.log_position[rows], np.arange(len(rows)))
        assert (dataset.log_user[rows] == user).all()
        assert dataset.is_training[rows].sum() == max(len(rows) - 2, 0)


def test_history_skips_removed_rows(tiny_setup):
    _, dataset = tiny_setup
    rows = dataset.user_rows(1)
    keep = dataset.full_keep()
    keep[rows[[1, 3]]] = False
    sample = dataset.samples(np.array([rows[5]]), keep)
    expected = dataset.log_item[rows[[0, 2, 4]]]
    assert sample["item_length"].item() == 3
    assert np.array_equal(sample["item_id_list"][0, :3].numpy(), expected)
    assert (sample["item_id_list"][0, 3:] == 0).all()
    assert sample["item_id"].item() == dataset.log_item[rows[5]]


def test_history_is_truncated_to_max_length(tiny_setup):
    config, dataset = tiny_setup
    rows = dataset.user_rows(1)
    sample = dataset.samples(np.array([rows[-1]]), dataset.full_keep())
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    assert sample["item_length"].item() == max_len
    assert np.array_equal(sample["item_id_list"][0].numpy(), dataset.log_item[rows[-1 - max_len:-1]])


def test_empty_histories_are_dropped(tiny_setup):
    _, dataset = tiny_setup
    rows = dataset.user_rows(2)
    assert len(dataset.samples(np.array([rows[0]]), dataset.full_keep())) == 0
