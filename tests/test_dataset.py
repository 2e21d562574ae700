"""The sample builder reproduces RecBole's own sequential augmentation and leave-one-out split."""
import numpy as np
import pytest
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


def test_short_sequences_are_validated_and_tested_where_recbole_trains_on_them(tmp_path):
    """RecBole augments a sequence into samples before its leave-one-out split, so a user with
    two interactions has no test sample and one with three no validation sample (both go to
    training); we always make the last interaction the test target and the one before it the
    validation target (thesis protocol). From four interactions on the splits are equal."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset

    folder = tmp_path / "short"
    folder.mkdir()
    lengths = {"u2": 2, "u3": 3, "u4": 4, "u6": 6}
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for offset, (user, length) in enumerate(lengths.items()):
        lines += [f"{user}\ti{(offset + k) % 7}\t{k}" for k in range(length)]
    (folder / "short.inter").write_text("\n".join(lines) + "\n")
    settings = tiny_dict(data_path=str(tmp_path), dataset="short", forget_user_ratio=0.5)
    config = UnlearnConfig("SASRec", config_dict=settings)
    ours = create_unlearn_dataset(config).build_split()
    rb_config = Config("SASRec", config_dict={k: v for k, v in settings.items()
                                             if k not in ("forget_user_ratio", "sru_inference_neg_num")}
                       | {"train_neg_sample_args": None, "MAX_ITEM_LIST_LENGTH": 10,
                          "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"}})
    theirs = create_dataset(rb_config).build()

    def users(part):
        return sorted(part.id2token(part.uid_field, part.inter_feat[part.uid_field].numpy()).tolist())

    (our_train, our_valid, our_test), (rb_train, rb_valid, rb_test) = ours, theirs
    assert users(our_test) == ["u2", "u3", "u4", "u6"] and users(rb_test) == ["u3", "u4", "u6"]
    assert users(our_valid) == ["u3", "u4", "u6"] and users(rb_valid) == ["u4", "u6"]
    assert users(our_train) == ["u4"] + ["u6"] * 3
    assert users(rb_train) == ["u2", "u3", "u4"] + ["u6"] * 3
    for mine, recbole_part in zip(ours, theirs):  # users with four or more interactions: equal
        def long_only(records, part=recbole_part):
            keep = set(part.token2id(part.uid_field, ["u4", "u6"]).tolist())
            return [r for r in records if r[0] in keep]
        assert long_only(_as_records(mine)) == long_only(_as_records(recbole_part))


def test_a_file_whose_order_float32_times_cannot_fix_is_named_in_a_warning(tmp_path, caplog):
    """RecBole holds ``timestamp:float`` as float32, which at 1.6e9 s cannot tell times up to
    128 s apart, so such interactions keep the file's order: a user written newest-first, 10 s
    apart, had its earliest interaction as its test target (found by probing). As in RecBole (whose
    splits ours equal), the order stays; a warning now names how many users it affects."""
    import logging

    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset

    folder = tmp_path / "rev"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"rv\ti{k}\t{1600000000 + 10 * (5 - k)}" for k in range(6)]  # newest first
    lines += [f"u{u}\ti{(u + k) % 6}\t{1600000000 + 1000 * k}" for u in range(3) for k in range(5)]
    (folder / "rev.inter").write_text("\n".join(lines) + "\n")
    config = UnlearnConfig("SASRec", config_dict=tiny_dict(data_path=str(tmp_path), dataset="rev"))
    with caplog.at_level(logging.WARNING):
        dataset = create_unlearn_dataset(config)
    assert "1 user has interactions whose order in rev.inter differs from their times" in dataset.order_warning
    assert not caplog.text  # said in the run's log, once it has one: bad input stays one error line


@pytest.mark.parametrize("tokens, message", [
    (['"q1', 'q2"'], "quote"),  # pandas reads the lines between two quotes as one field
    (['"q1'], "quote"),
    (["NA"], "reads as missing"), (["None"], "reads as missing"), ([""], "reads as missing")])
def test_tokens_recbole_would_merge_or_drop_rows_over_are_refused(tmp_path, tokens, message):
    """A token with a ``"`` made RecBole read several lines as one row, and ``NA``, ``None`` or an
    empty field made it drop the row with a log warning: users silently lost interactions, their
    targets shifted, and a request for the token was "unknown" (found by probing). Loading such a
    file is now one error."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.utils.errors import UnlearnError

    folder = tmp_path / "odd"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"u{u}\ti{(u + k) % 6}\t{k}" for u in range(3) for k in range(5)]
    for offset, token in enumerate(tokens):
        lines.insert(3 + 2 * offset, f"u0\t{token}\t2.5")
    (folder / "odd.inter").write_text("\n".join(lines) + "\n")
    config = UnlearnConfig("SASRec", config_dict=tiny_dict(data_path=str(tmp_path), dataset="odd"))
    with pytest.raises(UnlearnError, match=message):
        create_unlearn_dataset(config)


@pytest.mark.parametrize("edit, message", [
    (lambda line: line + "\t", r"line 2 of .*shifted\.inter has 4 fields, its header 3"),  # a trailing tab
    (lambda line: line.rsplit("\t", 1)[0], r"line 2 of .*shifted\.inter has 2 fields, its header 3"),
])
def test_a_line_with_more_or_fewer_fields_than_its_header_is_refused(tmp_path, edit, message):
    """Data lines ending in a tab (one field more than the header) loaded with every column
    shifted: pandas took the first column for the index, so items read as users and times as
    items (NaN times); a request for user 1 was recorded ``applied`` after forgetting the rows of
    *item* 1, and ``--verify`` passed (a probe). A line with fewer fields read its missing ones as
    missing values. Both are one error naming the line, for every atomic file RecBole reads."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.utils.errors import UnlearnError

    folder = tmp_path / "shifted"
    folder.mkdir()
    lines = [f"u{u}\ti{(u + k) % 6}\t{k}" for u in range(3) for k in range(5)]
    body = [edit(line) for line in lines]
    (folder / "shifted.inter").write_text("\n".join(["user_id:token\titem_id:token\ttimestamp:float"] + body) + "\n")
    config = UnlearnConfig("SASRec", config_dict=tiny_dict(data_path=str(tmp_path), dataset="shifted"))
    with pytest.raises(UnlearnError, match=message):
        create_unlearn_dataset(config)
    # an .item file beside it, with the same fault: refused where RecBole reads it (load_col names
    # it), read as RecBole reads it (a quoted tab is text), and never where RecBole leaves it unread
    # (the package's default load_col: a folder saved before could answer no request; round 2)
    (folder / "shifted.inter").write_text("\n".join(["user_id:token\titem_id:token\ttimestamp:float"] + lines) + "\n")
    (folder / "shifted.item").write_text("item_id:token\tprice:float\n" + "".join(f"i{k}\t{k}.5\t\n" for k in range(6)))
    assert create_unlearn_dataset(config).n_rows == len(lines)
    reading_items = UnlearnConfig("SASRec", config_dict=tiny_dict(data_path=str(tmp_path), dataset="shifted", load_col={
        "inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "price"]}))
    with pytest.raises(UnlearnError, match=r"line 2 of .*shifted\.item has 3 fields, its header 2"):
        create_unlearn_dataset(reading_items)
    (folder / "shifted.item").write_text('item_id:token\ttitle:token_seq\n' + "".join(f'i{k}\t"a\tb"\n' for k in range(6)))
    assert create_unlearn_dataset(UnlearnConfig("SASRec", config_dict=tiny_dict(
        data_path=str(tmp_path), dataset="shifted", load_col={"inter": ["user_id", "item_id", "timestamp"],
                                                              "item": ["item_id", "title"]}))).n_rows == len(lines)


def test_an_atomic_file_starting_with_a_byte_order_mark_is_named_as_such(tmp_path):
    """A ``.inter`` file saved with a byte-order mark (spreadsheets' "CSV UTF-8") was refused as
    having "no column 'user_id'", though its header names it (a probe)."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.utils.errors import UnlearnError

    folder = tmp_path / "bom"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"] + [f"u{u}\ti{k}\t{k}" for u in range(3) for k in range(5)]
    (folder / "bom.inter").write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    config = UnlearnConfig("SASRec", config_dict=tiny_dict(data_path=str(tmp_path), dataset="bom"))
    with pytest.raises(UnlearnError, match="starts with a byte-order mark"):
        create_unlearn_dataset(config)
    # the same mark on an .item file RecBole reads ended in pandas' "Usecols do not match columns"
    (folder / "bom.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "bom.item").write_text("\ufeffitem_id:token\tprice:float\n" + "".join(f"i{k}\t{k}.5\n" for k in range(5)),
                                     encoding="utf-8")
    reading_items = UnlearnConfig("SASRec", config_dict=tiny_dict(data_path=str(tmp_path), dataset="bom", load_col={
        "inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "price"]}))
    with pytest.raises(UnlearnError, match=r"bom\.item starts with a byte-order mark"):
        create_unlearn_dataset(reading_items)


def test_a_line_of_spaces_in_the_inter_file_is_skipped_as_recbole_skips_it(tmp_path):
    """pandas skips a line of spaces (no separator) in a ``.inter`` file; the time check refused
    it as "the timestamp on line 3 is not a number ('')" (a note of the last session). A line of
    separators and spaces, which pandas reads as a row of missing values, stays refused."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.utils.errors import UnlearnError

    folder = tmp_path / "spaced"
    folder.mkdir()
    lines = [f"u{u}\ti{(u + k) % 6}\t{k}" for u in range(3) for k in range(5)]
    header = "user_id:token\titem_id:token\ttimestamp:float"
    (folder / "spaced.inter").write_text("\n".join([header, lines[0], "   "] + lines[1:]) + "\n")
    config = UnlearnConfig("SASRec", config_dict=tiny_dict(data_path=str(tmp_path), dataset="spaced"))
    assert create_unlearn_dataset(config).n_rows == len(lines)
    (folder / "spaced.inter").write_text("\n".join([header, lines[0], " \t \t "] + lines[1:]) + "\n")
    with pytest.raises(UnlearnError, match="not a number"):
        create_unlearn_dataset(config)
    # a row RecBole reads as missing after skipped lines: its line, not the row's index + 2 (round 2)
    (folder / "spaced.inter").write_text("\n".join([header, lines[0], "   ", "", "  ", "NA\ti1\t9"] + lines[1:]) + "\n")
    with pytest.raises(UnlearnError, match=r"first at line 6\)"):
        create_unlearn_dataset(config)
    # pandas skips a line of Unicode white space too (round 3: it was counted as a row)
    (folder / "spaced.inter").write_text("\n".join([header, lines[0], "\u00a0", "NA\ti1\t9"] + lines[1:]) + "\n")
    with pytest.raises(UnlearnError, match=r"first at line 4\)"):
        create_unlearn_dataset(config)


def test_feature_files_are_checked_as_recbole_reads_them(tmp_path):
    """Round 3 of probing the field-count check: a two-character ``field_separator`` (which pandas
    reads, and the csv module refuses) ended every load in a ``TypeError``, also a saved folder's;
    an ``.item`` line opening a quote that a later line closes merged the lines between into one
    row (45 interactions dropped unsaid); ``load_col: {item: []}`` reads no ``.item`` file, yet it
    was checked; a line of spaces, which pandas skips, was refused."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.utils.errors import UnlearnError

    lines = [("u%d" % u, "i%d" % ((u + k) % 6), str(k)) for u in range(3) for k in range(5)]
    inter = ["user_id:token", "item_id:token", "timestamp:float"]

    def dataset(name, separator, item_lines, load_col):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}.inter").write_text("\n".join(separator.join(r) for r in [inter] + lines) + "\n")
        (folder / f"{name}.item").write_text("\n".join(item_lines) + "\n")
        return UnlearnConfig("SASRec", config_dict=tiny_dict(data_path=str(tmp_path), dataset=name,
                                                            field_separator=separator, load_col=load_col))

    both = {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "price"]}
    two = dataset("two", "::", ["item_id:token::price:float"] + [f"i{k}::{k}.5" for k in range(6)], both)
    assert create_unlearn_dataset(two).n_rows == len(lines)
    merged = dataset("merged", "\t", ["item_id:token\tprice:float\ttitle:token_seq", 'i0\t1.5\t"t x',
                                      "i1\t1.5\tt y", 'i2\t1.5\tt z"', "i3\t1.5\tw", "i4\t1.5\tw", "i5\t1.5\tw"],
                     dict(both, item=["item_id", "price", "title"]))
    with pytest.raises(UnlearnError, match=r"a quoted field of .*merged\.item runs over lines 2 to 4"):
        create_unlearn_dataset(merged)
    unread = dataset("unread", "\t", ["item_id:token\tprice:float", "i0\t1.5\textra"], dict(both, item=[]))
    assert create_unlearn_dataset(unread).n_rows == len(lines)
    spaces = dataset("spaces", "\t", ["item_id:token\tprice:float", "i0\t1.5", "   "] + [f"i{k}\t2.5" for k in range(1, 6)],
                     both)
    assert create_unlearn_dataset(spaces).n_rows == len(lines)


def test_unused_columns_are_dropped_as_recbole_drops_them():
    """``unused_col`` (RecBole drops those columns when it splits) was ignored: the samples still
    carried ``timestamp`` (configuration probe). The columns RecBole's split keeps are the
    samples' too (its ``timestamp_list``, built before the split, stays)."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset

    settings = tiny_dict(unused_col={"inter": ["timestamp"]})
    ours = create_unlearn_dataset(UnlearnConfig("SASRec", config_dict=settings)).build_split()
    rb_config = Config("SASRec", config_dict={k: v for k, v in settings.items()
                                             if k not in ("forget_user_ratio", "sru_inference_neg_num")}
                       | {"train_neg_sample_args": None, "MAX_ITEM_LIST_LENGTH": 10,
                          "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"}})
    theirs = create_dataset(rb_config).build()
    for mine, recbole_part in zip(ours, theirs):
        assert "timestamp" not in mine.inter_feat.columns
        assert set(mine.inter_feat.columns) == set(recbole_part.inter_feat.columns)


def test_removing_duplicates_keeps_tied_interactions_in_the_file_order():
    """RecBole's ``rm_dup_inter`` sorts by time with an unstable sort: on ml-tiny, which holds no
    duplicate pair, it reordered the tied interactions of every user (30 users' validation or
    test targets changed), and the order depended on the CPU (numpy's AVX-512 sort), so a model
    folder moved to another machine forgot other rows than those recorded (r9data probe)."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset

    def loaded(**settings):
        dataset = create_unlearn_dataset(UnlearnConfig("GRU4Rec", config_dict=tiny_dict(**settings)))
        sequences = {}  # each user's items in the order loaded (internal ids follow the load order)
        for user, item in zip(dataset.id2token(dataset.uid_field, dataset.log_user),
                              dataset.id2token(dataset.iid_field, dataset.log_item)):
            sequences.setdefault(str(user), []).append(str(item))
        return sequences

    assert loaded(rm_dup_inter="first") == loaded() == loaded(rm_dup_inter="last")
