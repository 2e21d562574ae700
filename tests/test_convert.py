"""dataset/convert.py: the two plain formats round-trip into RecBole atomic files."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dataset.convert import convert, main  # noqa: E402


def _read(path):
    with open(path) as f:
        header, *rows = f.read().splitlines()
    return header, [tuple(r.split("\t")) for r in rows]


def test_sequence_format_round_trip(tmp_path):
    src = tmp_path / "seq.txt"
    src.write_text("u1 5 7 9\nu2 7\n\nu3 1 2\n")
    header, rows = _read(convert(str(src), "sequence", "toy", str(tmp_path)))
    assert header == "user_id:token\titem_id:token\ttimestamp:float"
    assert rows == [("u1", "5", "0"), ("u1", "7", "1"), ("u1", "9", "2"), ("u2", "7", "0"),
                    ("u3", "1", "0"), ("u3", "2", "1")]


def test_pairs_format_keeps_per_user_order(tmp_path):
    src = tmp_path / "pairs.txt"
    src.write_text("1 10\n2 20\n1 11\n1 12\n2 21\n")
    _, rows = _read(convert(str(src), "pairs", "toy", str(tmp_path)))
    assert rows == [("1", "10", "0"), ("2", "20", "0"), ("1", "11", "1"), ("1", "12", "2"), ("2", "21", "1")]


def test_converted_file_loads_in_recbole_unlearn(tmp_path):
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset

    src = tmp_path / "seq.txt"
    src.write_text("".join(f"u{u} " + " ".join(str((u + t) % 7 + 1) for t in range(6)) + "\n" for u in range(10)))
    convert(str(src), "sequence", "toy", str(tmp_path))
    config = UnlearnConfig("GRU4Rec", "toy", config_dict={"data_path": str(tmp_path), "state": "ERROR"})
    dataset = create_unlearn_dataset(config)
    assert dataset.n_rows == 60 and dataset.user_num == 11
    user = dataset.token2id("user_id", "u3")
    assert dataset.id2token("item_id", dataset.log_item[dataset.user_rows(user)]).tolist() == \
        [str((3 + t) % 7 + 1) for t in range(6)]


@pytest.mark.parametrize("text, fmt, message", [("u1\n", "sequence", "expected 'user item"),
                                                ("1 2 3\n", "pairs", "expected 'user item'")])
def test_malformed_input_writes_nothing(tmp_path, capsys, text, fmt, message):
    src = tmp_path / "bad.txt"
    src.write_text(text)
    assert main(["--input", str(src), "--format", fmt, "--name", "bad", "--data_path", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.txt"]
