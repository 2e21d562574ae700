"""Forget-set invariants (thesis protocol) and explicit request files."""
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recbole_unlearn.data.forget as forget_module

from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.data import ForgetSet, build_forget_set, forget_set_from_requests, sample_forget_set
from recbole_unlearn.data.forget import read_request_file
from recbole_unlearn.utils.errors import UnlearnError

from conftest import tiny_dict


@pytest.fixture(scope="module")
def thesis(tiny_setup):
    config, dataset = tiny_setup
    return sample_forget_set(config, dataset)


def test_only_training_interactions_never_first_two(tiny_setup, thesis):
    _, dataset = tiny_setup
    assert len(thesis.requested) > 0
    assert dataset.is_training[thesis.rows].all()
    assert (dataset.log_position[thesis.rows] >= 2).all()


def test_at_most_half_of_each_users_training_items(tiny_setup, thesis):
    _, dataset = tiny_setup
    for user in thesis.users(dataset):
        n_train = int(dataset.is_training[dataset.user_rows(user)].sum())
        n_forgotten = int((dataset.log_user[thesis.rows] == user).sum())
        assert 1 <= n_forgotten <= n_train // 2


def test_user_ratio(tiny_setup, thesis):
    config, dataset = tiny_setup
    assert len(thesis.users(dataset)) == round(config["forget_user_ratio"] * 60)


def test_forget_samples_exclude_other_forgotten_items(tiny_setup, thesis):
    _, dataset = tiny_setup
    samples = thesis.forget_samples(dataset)
    assert len(samples) == len(thesis.requested)  # never the first two -> never an empty history
    forgotten = set(thesis.rows.tolist())
    for row, hist, length, target in zip(
        thesis.requested, samples["item_id_list"].numpy(), samples["item_length"].numpy(), samples["item_id"].numpy()
    ):
        assert target == dataset.log_item[row]
        user_rows = dataset.user_rows(dataset.log_user[row])
        before = [r for r in user_rows if r < row and r not in forgotten]
        expected = dataset.log_item[before][-len(hist):]
        assert np.array_equal(hist[:length], expected)


def test_d_rem_has_exactly_the_non_forgotten_training_interactions(tiny_setup, thesis):
    _, dataset = tiny_setup
    keep = thesis.keep_mask(dataset)
    train_rows, valid_rows, test_rows = dataset.split_targets(keep)
    expected = set(np.flatnonzero(dataset.is_training).tolist()) - set(thesis.rows.tolist())
    assert set(train_rows.tolist()) == expected
    raw_valid, raw_test = dataset.split_targets()[1:]
    assert np.array_equal(valid_rows, raw_valid) and np.array_equal(test_rows, raw_test)
    # training samples of D_rem: targets are every kept training interaction except a user's first kept one
    train, _, _ = dataset.build_split(keep)
    first_kept = {int(dataset.log_user[r]): r for r in sorted(expected, reverse=True)}
    assert len(train) == len(expected) - len(first_kept)
    # no forgotten item appears in any D_rem history
    forgotten_by_user = {}
    for r in thesis.rows:
        forgotten_by_user.setdefault(int(dataset.log_user[r]), set()).add(int(dataset.log_item[r]))
    for user, hist, n in zip(train["user_id"].numpy(), train["item_id_list"].numpy(), train["item_length"].numpy()):
        still = set(hist[:n].tolist()) & forgotten_by_user.get(int(user), set())
        # an item may legitimately reappear if the user interacted with it again later
        for item in still:
            rows = dataset.user_rows(user)
            assert ((dataset.log_item[rows] == item) & ~np.isin(rows, thesis.rows)).any()


def test_seeded_and_reproducible(tiny_setup, thesis):
    config, dataset = tiny_setup
    assert np.array_equal(sample_forget_set(config, dataset).rows, thesis.rows)
    other = UnlearnConfig("SASRec", config_dict=tiny_dict(forget_seed=7))
    assert not np.array_equal(sample_forget_set(other, dataset).rows, thesis.rows)


# --- request files ---------------------------------------------------------------------
def _write(tmp_path, text):
    path = tmp_path / "requests.csv"
    path.write_text(text)
    return str(path)


def test_bare_user_forgets_all_training_interactions(tiny_setup, tmp_path):
    _, dataset = tiny_setup
    fs = forget_set_from_requests(_write(tmp_path, "# comment\n\n3\n"), dataset, 1000, 4096)
    uid = dataset.token2id("user_id", "3")
    rows = dataset.user_rows(uid)
    assert np.array_equal(fs.rows, rows[dataset.is_training[rows]])
    # every history prefix is empty once the whole training sequence is forgotten
    assert len(fs.forget_samples(dataset)) == 0


def test_user_item_pair(tiny_setup, tmp_path):
    _, dataset = tiny_setup
    uid = dataset.token2id("user_id", "1")
    row = dataset.user_rows(uid)[4]
    item = dataset.id2token("item_id", dataset.log_item[row])
    fs = forget_set_from_requests(_write(tmp_path, f"1 , {item}\n"), dataset, 1000, 4096)
    assert fs.rows.tolist() == [row]
    assert fs.triples(dataset) == [("1", str(item), 4)]


def test_a_spreadsheet_export_reads_like_plain_text(tiny_setup, tmp_path):
    """Spreadsheets save "CSV UTF-8" with a byte-order mark and CRLF line ends; the mark used to
    make the first user token unknown ('\\ufeff1')."""
    _, dataset = tiny_setup
    plain = forget_set_from_requests(_write(tmp_path, "1\n3,302\n"), dataset, 1000, 4096)
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf1\r\n3,302\r\n")
    exported = forget_set_from_requests(str(tmp_path / "excel.csv"), dataset, 1000, 4096)
    assert np.array_equal(exported.rows, plain.rows) and len(plain.rows) > 1


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.text(alphabet="ab #\t,\u00e9", max_size=6), max_size=12),
       ends=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=12, max_size=12),
       bom=st.booleans(), last_end=st.booleans(), block=st.integers(min_value=1, max_value=9))
def test_a_streamed_request_file_reads_like_the_whole_file(lines, ends, bom, last_end, block, tmp_path_factory):
    """Streaming a request file block by block (so a big one is never held whole) gives the same
    digest, line numbers and lines as reading it whole: CRLF split across two blocks, a lone CR,
    a byte-order mark, a last line without its end."""
    text = "".join(line + end for line, end in zip(lines, ends))
    if lines and not last_end:
        text = text[:-len(ends[len(lines) - 1])]
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    path = tmp_path_factory.mktemp("stream") / "req.csv"
    path.write_bytes(data)
    whole = list(enumerate(data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1))
    # white space stripped at the edges, but for a tab-separated line's tabs (empty fields)
    expected = [(n, "\t".join(f.strip() for f in raw.split("\t")) if "\t" in raw else raw.strip())
                for n, raw in whole if raw.strip() and not raw.strip().startswith("#")]
    original = forget_module._READ_BLOCK
    forget_module._READ_BLOCK = block
    try:
        digest, got = read_request_file(str(path), 1000, 4096)
    finally:
        forget_module._READ_BLOCK = original
    assert digest == hashlib.sha256(data).hexdigest()
    assert got == expected


def test_tab_separated_request_lines(tiny_setup, tmp_path):
    """Request lines cut from the dataset's tab-separated .inter file (``cut -f1,2``) read like
    comma-separated ones (earlier: "unknown user token '3\\t302'")."""
    _, dataset = tiny_setup
    plain = forget_set_from_requests(_write(tmp_path, "1\n3,302\n"), dataset, 1000, 4096)
    (tmp_path / "cut.tsv").write_text("1\n3\t302\n")
    assert np.array_equal(forget_set_from_requests(str(tmp_path / "cut.tsv"), dataset, 1000, 4096).rows, plain.rows)
    (tmp_path / "three.tsv").write_text("3\t302\t5\n")
    with pytest.raises(UnlearnError, match="or tab-separated"):
        forget_set_from_requests(str(tmp_path / "three.tsv"), dataset, 1000, 4096)


@pytest.mark.parametrize("line", ["\t302", "3\t", " 3 \t ", "3\t302\t"])
def test_a_tab_separated_line_with_an_empty_field_is_refused_not_read_as_a_user(tiny_setup, tmp_path, line):
    """A tab at a line's edge marks an empty field of a tab-separated export; the line was
    stripped before it was split, so ``<TAB>302`` (an empty user field) forgot every training
    interaction of *user* 302 and ``3<TAB>`` (an empty item field) all of user 3's, where
    ``,302`` and ``3,`` are errors (found by probing). The empty field is an error too."""
    _, dataset = tiny_setup
    (tmp_path / "empty.tsv").write_text(f"1\n{line}\n")
    with pytest.raises(UnlearnError, match="line 2: expected 'user_token\\[,item_token\\]' \\(or tab-separated\\)"):
        forget_set_from_requests(str(tmp_path / "empty.tsv"), dataset, 1000, 4096)


@pytest.mark.parametrize(
    "text, message",
    [
        ("999999\n", "unknown user token '999999'"),
        ("1,999999\n", "unknown item token '999999'"),
        ("1,2,3\n", "expected 'user_token[,item_token]'"),
        ("1,\n", "expected 'user_token[,item_token]'"),
        (",5\n", "expected 'user_token[,item_token]'"),
        ("\n# nothing\n", "contains no requests"),
        ("1\n3\n 1 \n", "line 3: repeats line 1"),
        ("\n".join(str(u) for u in range(1, 12)) + "\n", "more than 10 requests"),
    ],
)
def test_bad_request_files(tiny_setup, tmp_path, text, message):
    _, dataset = tiny_setup
    with pytest.raises(UnlearnError, match=message.replace("[", r"\[").replace("]", r"\]")):
        forget_set_from_requests(_write(tmp_path, text), dataset, 10, 4096)


@pytest.mark.parametrize("position, role", [(-1, "test"), (-2, "validation")])
def test_item_the_user_never_trained_on(tiny_setup, tmp_path, position, role):
    """A user's test and validation targets are not training interactions: asking to forget one
    is rejected, and the reason says which it is (earlier: "no training interaction with item",
    about an item the user did interact with)."""
    _, dataset = tiny_setup
    for uid in range(1, dataset.user_num):
        rows = dataset.user_rows(uid)
        others = np.delete(rows, len(rows) + position)
        if dataset.log_item[rows[position]] not in set(dataset.log_item[others].tolist()):
            break
    else:
        pytest.fail(f"fixture has no user whose {role} item is new")
    user = dataset.id2token("user_id", uid)
    item = dataset.id2token("item_id", dataset.log_item[rows[position]])
    with pytest.raises(UnlearnError, match=f"no training interaction with item '{item}': it is the user's "
                                           f"{role} target"):
        forget_set_from_requests(_write(tmp_path, f"{user},{item}\n"), dataset, 1000, 4096)


def test_item_the_user_never_had(tiny_setup, tmp_path):
    _, dataset = tiny_setup
    rows = dataset.user_rows(1)
    item = next(i for i in range(1, dataset.item_num) if i not in set(dataset.log_item[rows].tolist()))
    with pytest.raises(UnlearnError, match=r"no training interaction with item '[^']+'$"):
        forget_set_from_requests(_write(tmp_path, f"{dataset.id2token('user_id', 1)},"
                                                  f"{dataset.id2token('item_id', item)}\n"), dataset, 1000, 4096)


def test_missing_request_file(tiny_setup, tmp_path):
    _, dataset = tiny_setup
    with pytest.raises(UnlearnError, match="request file not found"):
        forget_set_from_requests(str(tmp_path / "nope.csv"), dataset, 1000, 4096)


def test_build_forget_set_uses_request_file(tiny_setup, tmp_path):
    config, dataset = tiny_setup
    path = _write(tmp_path, "5\n")
    cfg = UnlearnConfig("SASRec", config_dict=tiny_dict(forget=path))
    fs = build_forget_set(cfg, dataset)
    assert fs.source == "requests:requests.csv"
    assert set(dataset.log_user[fs.rows].tolist()) == {dataset.token2id("user_id", "5")}


def test_extra_rows_are_forgotten_but_not_targets(tiny_setup, thesis):
    _, dataset = tiny_setup
    extra_row = next(r for r in np.flatnonzero(dataset.is_training) if r not in set(thesis.rows.tolist()))
    fs = thesis.with_extra(np.array([extra_row]))
    assert extra_row in fs.rows and extra_row not in fs.requested
    assert not fs.keep_mask(dataset)[extra_row]
    assert fs.keep_mask(dataset, include_extra=False)[extra_row]
    assert isinstance(fs, ForgetSet)


def test_a_request_for_a_short_users_held_out_interaction_says_what_it_is(tmp_path):
    """A user with one or two interactions has no validation or test sample (no history before
    them), yet a request for one was refused as "the user's test (validation) target" (found by
    probing). It now says the user has no training data."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.data.forget import RequestLineError, parse_request_line

    folder = tmp_path / "short"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float", "s1\ti1\t0", "s2\ti1\t0", "s2\ti2\t1"]
    lines += [f"u{u}\ti{u * 5 + k}\t{k}" for u in range(4) for k in range(5)]
    (folder / "short.inter").write_text("\n".join(lines) + "\n")
    dataset = create_unlearn_dataset(UnlearnConfig("SASRec", config_dict=tiny_dict(data_path=str(tmp_path),
                                                                                   dataset="short")))
    for user, item, length in (("s1", "i1", 1), ("s2", "i1", 2)):
        with pytest.raises(RequestLineError, match=f"with {length} the user has no training data"):
            parse_request_line(f"{user},{item}", dataset, "request")


def test_a_token_removed_by_recboles_filters_is_not_just_unknown(tmp_path):
    """A user or item that RecBole's filters removed (``user_inter_num_interval`` ...) was
    "unknown" in a request, though it is in the dataset file (found by probing). The error now
    names the filters that may have removed it."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.data.forget import RequestLineError, parse_request_line

    folder = tmp_path / "filt"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float", "s3\ti1\t0", "s3\ti2\t1", "s3\ti3\t2"]
    lines += [f"u{u}\ti{u * 7 + k}\t{k}" for u in range(4) for k in range(7)]
    (folder / "filt.inter").write_text("\n".join(lines) + "\n")
    dataset = create_unlearn_dataset(UnlearnConfig("SASRec", config_dict=tiny_dict(
        data_path=str(tmp_path), dataset="filt", user_inter_num_interval="[5,inf)")))
    with pytest.raises(RequestLineError, match=r"unknown user token 's3'.*user_inter_num_interval \[5,inf\)"):
        parse_request_line("s3", dataset, "request")


def test_an_interaction_removed_by_recboles_filters_names_them(tmp_path):
    """An interaction that ``val_interval`` removed while loading (its user and item stay known)
    was "user 'u0' has no training interaction with item 'i9'" without the filter hint the
    unknown-token errors give (a note of the last session)."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.data.forget import RequestLineError, parse_request_line

    folder = tmp_path / "late"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float", "u0\ti9\t100"]
    lines += [f"u{u}\ti{(u + k) % 10}\t{k}" for u in range(4) for k in range(7)]
    (folder / "late.inter").write_text("\n".join(lines) + "\n")
    dataset = create_unlearn_dataset(UnlearnConfig("SASRec", config_dict=tiny_dict(
        data_path=str(tmp_path), dataset="late", val_interval={"timestamp": "[0,50]"})))
    with pytest.raises(RequestLineError, match=r"no training interaction with item 'i9' \(RecBole's filters .*"
                                               r"val_interval") as refused:
        parse_request_line("u0,i9", dataset, "request")
    assert "val_interval" in refused.value.redacted
    unfiltered = create_unlearn_dataset(UnlearnConfig("SASRec", config_dict=tiny_dict(
        data_path=str(tmp_path), dataset="late")))
    with pytest.raises(RequestLineError, match=r"no training interaction with item 'i8'$"):
        parse_request_line("u0,i8", unfiltered, "request")


def test_an_unknown_token_that_differs_only_in_unicode_normalisation_says_so():
    """A request for ``José`` written decomposed (NFD: ``e`` + combining accent) where the
    dataset holds it composed (NFC) was "unknown user token 'José'", two strings identical on
    screen (found by probing). Tokens are matched exactly (a normalised match could name another
    user); the error says which form the dataset holds."""
    import unicodedata
    from types import SimpleNamespace

    from recbole_unlearn.data.forget import RequestLineError, parse_request_line

    composed = unicodedata.normalize("NFC", "Jos\u00e9")
    dataset = SimpleNamespace(uid_field="user_id", iid_field="item_id",
                              field2token_id={"user_id": {"[PAD]": 0, composed: 1}, "item_id": {"[PAD]": 0}},
                              config={"user_inter_num_interval": None, "item_inter_num_interval": None,
                                      "val_interval": None})
    decomposed = unicodedata.normalize("NFD", composed)
    with pytest.raises(RequestLineError, match="the dataset holds it in Unicode NFC form") as refused:
        parse_request_line(decomposed, dataset, "r.csv line 1")
    assert "another Unicode form" in refused.value.redacted


def test_an_unknown_token_names_the_filter_that_drops_tokens_missing_from_the_item_file(tmp_path):
    """With an ``.item`` file loaded, RecBole drops every interaction whose item has no line there
    (``filter_inter_by_user_or_item``, on by default): a request for such an item, 17 times in
    the ``.inter`` file, was "unknown item token '007'" with no hint of the filter (a probe)."""
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset
    from recbole_unlearn.data.forget import RequestLineError, parse_request_line

    folder = tmp_path / "itm"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"u{u}\ti{(u + k) % 8}\t{k}" for u in range(6) for k in range(6)]
    (folder / "itm.inter").write_text("\n".join(lines) + "\n")
    (folder / "itm.item").write_text("item_id:token\tprice:float\n" + "".join(f"i{k}\t{k}.5\n" for k in range(7)))
    dataset = create_unlearn_dataset(UnlearnConfig("SASRec", config_dict=tiny_dict(
        data_path=str(tmp_path), dataset="itm", load_col={"inter": ["user_id", "item_id", "timestamp"],
                                                          "item": ["item_id", "price"]})))
    with pytest.raises(RequestLineError, match=r"unknown item token 'i7'.*filter_inter_by_user_or_item True "
                                               r"\(with the \.item file"):
        parse_request_line("u0,i7", dataset, "r.csv line 1")
