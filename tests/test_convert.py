"""dataset/convert.py: the two plain formats round-trip into RecBole atomic files."""
import os
import sys
import warnings

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


@pytest.mark.parametrize("text, fmt, message", [
    ("u1\n", "sequence", "expected 'user item"),
    ("1 2 3\n", "pairs", "expected 'user item'"),
    # a user's second line restarted its positions at 0: its items interleaved with the first line's
    ("u1 a b c\nu2 d e\nu1 f g\n", "sequence", "line 3: user 'u1' already has its line (line 1)"),
    ("", "pairs", "no interactions"),  # these wrote a header-only file
    ("\n\n", "sequence", "no interactions"),
])
def test_malformed_input_writes_nothing(tmp_path, capsys, text, fmt, message):
    src = tmp_path / "bad.txt"
    src.write_text(text)
    assert main(["--input", str(src), "--format", fmt, "--name", "bad", "--data_path", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.txt"]


def test_csv_format_sorts_by_time_and_keeps_times(tmp_path):
    src = tmp_path / "log.csv"
    src.write_text("uid,ts,iid,rating\n"
                   "a,30,x,5\n"
                   "b,2021-01-01T00:00:10,y,4\n"
                   "a,10,z,3\n"
                   "\n"
                   "a,20.5,y,1\n"
                   "b,2021-01-01T00:00:05Z,x,2\n")
    header, rows = _read(convert(str(src), "csv", "toy", str(tmp_path), "uid", "iid", "ts"))
    assert header == "user_id:token\titem_id:token\ttimestamp:float"
    by_user = {}
    for user, item, moment in rows:
        by_user.setdefault(user, []).append((item, float(moment)))
    assert by_user["a"] == [("z", 10.0), ("y", 20.5), ("x", 30.0)]
    assert by_user["b"] == [("x", 1609459205.0), ("y", 1609459210.0)]


def test_csv_round_trip_loads_in_recbole_unlearn_in_time_order(tmp_path):
    from recbole_unlearn.config import UnlearnConfig
    from recbole_unlearn.data import create_unlearn_dataset

    lines = ["user;item;time"]
    expected = {}
    for u in range(8):
        items = [f"i{(u * 3 + t) % 11}" for t in range(5)]
        expected[f"u{u}"] = items
        for t, item in reversed(list(enumerate(items))):  # file order is reversed in time
            lines.append(f"u{u};{item};{1000 + 10 * t}")
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    assert main(["--input", str(tmp_path / "log.csv"), "--format", "csv", "--name", "toy", "--data_path",
                 str(tmp_path), "--user_col", "user", "--item_col", "item", "--time_col", "time", "--sep", ";"]) == 0
    config = UnlearnConfig("GRU4Rec", "toy", config_dict={"data_path": str(tmp_path), "state": "ERROR"})
    dataset = create_unlearn_dataset(config)
    for user, items in expected.items():
        uid = dataset.token2id("user_id", user)
        assert dataset.id2token("item_id", dataset.log_item[dataset.user_rows(uid)]).tolist() == items


@pytest.mark.parametrize("text, extra, message", [
    ("user,item\nu,i\n", [], "no column 'time'"),
    ("user,item,time\nu,i,yesterday\n", [], "neither a number nor an ISO 8601 date"),
    ("user,item,time\nu,i\n", [], "line 2: 2 fields"),
    ("", [], "empty file"),
    ("user,item,time\nu,i,1\n", ["--sep", ";;"], "one character"),
])
def test_malformed_csv_writes_nothing(tmp_path, capsys, text, extra, message):
    src = tmp_path / "bad.csv"
    src.write_text(text)
    args = ["--input", str(src), "--format", "csv", "--name", "bad", "--data_path", str(tmp_path),
            "--user_col", "user", "--item_col", "item", "--time_col", "time"] + extra
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.csv"]


@pytest.mark.parametrize("text, message", [
    ("user,item,time\nu,i,nan\n", "time 'nan' is not a finite number"),
    ("user,item,time\nu,i,inf\n", "time 'inf' is not a finite number"),
    ("user,item,time\n", "no interactions"),
])
def test_csv_times_that_cannot_order_a_sequence_write_nothing(tmp_path, capsys, text, message):
    src = tmp_path / "bad.csv"
    src.write_text(text)
    assert main(["--input", str(src), "--format", "csv", "--name", "bad", "--data_path", str(tmp_path),
                 "--user_col", "user", "--item_col", "item", "--time_col", "time"]) == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.csv"]


def test_an_empty_name_is_refused_and_a_byte_order_mark_is_read(tmp_path, capsys):
    src = tmp_path / "ok.csv"
    src.write_bytes(b"\xef\xbb\xbfuser,item,time\nu,i,1\nu,j,2\n")  # spreadsheets' "CSV UTF-8"
    args = ["--input", str(src), "--format", "csv", "--data_path", str(tmp_path / "out"),
            "--user_col", "user", "--item_col", "item", "--time_col", "time"]
    assert main(args + ["--name", ""]) == 2
    assert "--name must be a folder name" in capsys.readouterr().err
    assert main(args + ["--name", "ok"]) == 0
    assert (tmp_path / "out" / "ok" / "ok.inter").read_text().splitlines()[1:] == ["u\ti\t1", "u\tj\t2"]


@pytest.mark.parametrize("fmt, lines", [
    ("sequence", [b"u1 i1 i2", b"u3 i4 i5", b"u2 i3 \xe9t\xe9"]),  # Latin-1, not UTF-8
    ("pairs", [b"u1 i1", b"u1 i2", b"u2 \xff"]),
    ("csv", [b"user,item,time", b"u1,i1,1", b"u2,caf\xe9,2"]),
])
def test_input_that_is_not_utf8_names_its_line_and_creates_no_folder(tmp_path, capsys, fmt, lines):
    """A file in another encoding was reported without its line, and the missing --data_path was
    created (empty) although nothing was written."""
    src = tmp_path / "latin1.txt"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "new" / "data"
    args = ["--input", str(src), "--format", fmt, "--name", "bad", "--data_path", str(out)]
    if fmt == "csv":
        args += ["--user_col", "user", "--item_col", "item", "--time_col", "time"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1, err
    assert f"line {len(lines)}: not UTF-8" in err, err
    assert sorted(os.listdir(tmp_path)) == ["latin1.txt"]


def test_csv_with_carriage_return_line_ends_is_read_as_before(tmp_path):
    """Lines are decoded one by one now; a CSV with old-Mac (lone CR) or Windows line ends still
    reads line by line, and a quoted field across lines counts its lines."""
    src = tmp_path / "cr.csv"
    src.write_bytes(b'user,item,time,note\ru,i,1,a\ru,j,2,b\r\nu,k,3,"two\nlines"\r')
    header, rows = _read(convert(str(src), "csv", "cr", str(tmp_path), "user", "item", "time"))
    assert rows == [("u", "i", "1"), ("u", "j", "2"), ("u", "k", "3")]
    src.write_bytes(b'user,item,time,note\ru,i,1,a\r\nu,k,3,"two\nlines"\rv,x\r')
    with pytest.raises(ValueError, match="line 5: 2 fields"):
        convert(str(src), "csv", "cr2", str(tmp_path), "user", "item", "time")


def test_probed_corners_of_the_line_by_line_reader(tmp_path, capsys):
    """Found by probing d5244c5: a carriage return inside a quoted CSV token was written into the
    token (the package then refused the file); a byte-order mark started the first user's name in
    the plain formats (one user became two); a bad byte after lone-CR line ends was "line 1"; and
    a --name that exists was overwritten without a word."""
    cr = tmp_path / "cr.csv"
    cr.write_bytes(b'user,item,ts\r"u\r1",i1,1\r')
    with pytest.raises(ValueError, match="lines 2 to 3: user or item contains a tab or a line break"):
        convert(str(cr), "csv", "cr", str(tmp_path / "out"), "user", "item", "ts")
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfu1 a\nu1 b\n")
    _, rows = _read(convert(str(bom), "pairs", "bom", str(tmp_path / "out")))
    assert rows == [("u1", "a", "0"), ("u1", "b", "1")]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"u1 a b\ru2 c d\ru3 \xff e\n")
    with pytest.raises(ValueError, match="line 3: not UTF-8"):
        convert(str(bad), "sequence", "bad", str(tmp_path / "out"))
    seq = tmp_path / "seq.txt"
    seq.write_text("u1 a b\n")
    target = convert(str(seq), "sequence", "seq", str(tmp_path / "out"))
    seq.write_text("u1 c d e\n")
    assert main(["--input", str(seq), "--format", "sequence", "--name", "seq", "--data_path",
                 str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert len(_read(target)[1]) == 2  # unchanged
    assert main(["--input", str(seq), "--format", "sequence", "--name", "seq", "--data_path",
                 str(tmp_path / "out"), "--overwrite"]) == 0
    assert len(_read(target)[1]) == 3


def test_an_interrupted_conversion_says_so_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """Ctrl-C printed a traceback; SIGTERM left the new --data_path and a partial .tmp file."""
    from dataset import convert as convert_module

    src = tmp_path / "in.txt"
    src.write_text("u1 a b\nu2 c d\n")

    def interrupted(path):
        yield "u1", "a", 0
        raise KeyboardInterrupt

    monkeypatch.setitem(convert_module.READERS, "sequence", interrupted)
    assert main(["--input", str(src), "--format", "sequence", "--name", "x", "--data_path",
                 str(tmp_path / "new" / "d")]) == 130
    err = capsys.readouterr().err
    assert err == "error: interrupted; nothing was written\n", err
    assert sorted(os.listdir(tmp_path)) == ["in.txt"]


@pytest.mark.parametrize("text, extra, message", [
    # an unbalanced quote in a column the converter does not use ran to the end of the file (tab
    # separated, as review dumps are) or to the next quote, merging the lines between: 1 of 5
    # interactions written, exit 0 (a probe)
    ('customer\tproduct\tdate\tbody\n11\tB01\t1\t"Best purchase ever\n11\tB02\t2\tok\n12\tB01\t3\tgood\n',
     ["--sep", "\t", "--user_col", "customer", "--item_col", "product", "--time_col", "date"],
     "line 2: a quote opened there is never closed"),
    # tokens RecBole refuses to load: written, then every run failed naming the converted file's line
    ('u,i,t\n"a""b",x,1\n', ["--user_col", "u", "--item_col", "i", "--time_col", "t"],
     "line 2: user 'a\"b' holds a quote"),
    ('u,i,t\nv,NA,1\n', ["--user_col", "u", "--item_col", "i", "--time_col", "t"],
     "line 2: item 'NA' is read by RecBole as a missing value"),
    # a tab in a token split its line of the converted file; one column for two roles, or a
    # header naming a chosen column twice, was read silently (r9data probe)
    ('u,i,t\n"a\tb",x,1\n', ["--user_col", "u", "--item_col", "i", "--time_col", "t"],
     "line 2: user or item contains a tab"),
    ('u,i,t\nv,x,1\n', ["--user_col", "u", "--item_col", "u", "--time_col", "t"],
     "--user_col, --item_col and --time_col must name three different columns"),
    ('u,i,u,t\nv,x,w,1\n', ["--user_col", "u", "--item_col", "i", "--time_col", "t"],
     "the header names column 'u' twice"),
])
def test_csv_lines_merged_by_a_quote_or_tokens_recbole_refuses_write_nothing(tmp_path, capsys, text, extra, message):
    src = tmp_path / "bad.csv"
    src.write_text(text)
    assert main(["--input", str(src), "--format", "csv", "--name", "bad", "--data_path", str(tmp_path)] + extra) == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.csv"]


def test_a_quoted_field_holding_record_like_lines_is_warned_of_and_ordinary_ones_are_not(tmp_path, capsys):
    """An unbalanced quote closed by a later one merges the lines between into one field, which
    is valid CSV: refusing it refused real multi-line review texts too (round 2). Both convert;
    a field holding lines with a record's separators is named in a warning."""
    merged = tmp_path / "merged.csv"
    merged.write_text('user,item,time,title\nu,i,1,"Weird\nu,j,2,ok\nu,k,3,Al"\nv,i,4,x\n')
    args = ["--format", "csv", "--data_path", str(tmp_path), "--user_col", "user", "--item_col", "item",
            "--time_col", "time"]
    assert main(["--input", str(merged), "--name", "merged"] + args) == 0
    assert "line 2: a quoted field runs over lines 2 to 4 and holds lines that read as records" in \
        capsys.readouterr().err
    long = tmp_path / "long.csv"  # a review longer than the csv module's default field limit (round 3)
    long.write_text('user,item,time,review\nu1,i1,1,"' + "word " * 40000 + '"\nu1,i2,2,ok\n')
    assert main(["--input", str(long), "--name", "long"] + args) == 0
    capsys.readouterr()
    plain = tmp_path / "plain.csv"
    plain.write_text('user,item,time,review\nu1,i1,1,"Great.\nCheap and light"\nu1,i2,2,ok\n')
    assert main(["--input", str(plain), "--name", "plain"] + args) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "plain" / "plain.inter").read_text().splitlines()[1:] == ["u1\ti1\t1", "u1\ti2\t2"]


def test_a_file_whose_quotes_are_text_is_read_with_quoting_none(tmp_path, capsys):
    """``--quoting=none`` reads a ``"`` as text (tab-separated dumps do not quote): every line is
    one record; the quote in a column not converted stays there."""
    src = tmp_path / "amz.tsv"
    src.write_text('customer\tproduct\tdate\tbody\n11\tB01\t1\t"Best purchase ever\n11\tB02\t2\tok\n12\tB01\t3\tgood\n')
    assert main(["--input", str(src), "--format", "csv", "--name", "amz", "--data_path", str(tmp_path), "--sep", "\t",
                 "--user_col", "customer", "--item_col", "product", "--time_col", "date", "--quoting", "none"]) == 0
    assert (tmp_path / "amz" / "amz.inter").read_text().splitlines()[1:] == ["11\tB01\t1", "11\tB02\t2", "12\tB01\t3"]


@pytest.mark.parametrize("text, fmt, message", [
    # split at Unicode white space: U+2028 made user u2 an item of u1, a no-break space made
    # 'café noir' two items (a probe)
    ("u1 a b\u2028u2 c d\n", "sequence", "line 1: 'b\\u2028u2' holds white space other than spaces and tabs"),
    ("u3 caf\u00e9\u00a0noir x\n", "sequence", "line 1: 'café\\xa0noir' holds white space other than spaces and tabs"),
    ("u1 a\u00a0b\n", "pairs", "line 1: 'a\\xa0b' holds white space other than spaces and tabs"),
])
def test_tokens_holding_other_white_space_write_nothing(tmp_path, capsys, text, fmt, message):
    src = tmp_path / "bad.txt"
    src.write_text(text, encoding="utf-8")
    assert main(["--input", str(src), "--format", fmt, "--name", "bad", "--data_path", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.txt"]


def test_a_multi_line_record_s_error_names_all_its_lines(tmp_path, capsys):
    """A record whose quoted field runs over lines 2 to 4 and holds one field too many was named
    by its last line only ("line 4"), where the reader sees nothing wrong (a note of the last
    session): the error names the lines the record spans."""
    src = tmp_path / "span.csv"
    src.write_text('user,item,time,title\nu,i,1,"a\nb\nc",extra\nv,i,4,x\n')
    assert main(["--input", str(src), "--format", "csv", "--name", "span", "--data_path", str(tmp_path),
                 "--user_col", "user", "--item_col", "item", "--time_col", "time"]) == 2
    assert "span.csv lines 2 to 4: 5 fields, header has 4" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["span.csv"]
    quoted = tmp_path / "quoted.csv"  # the csv module's own error, in a record opened on line 2 (round 2)
    quoted.write_text('user,item,time,title\nu,i,1,"abc\ndef"x\nv,i,4,x\n')
    assert main(["--input", str(quoted), "--format", "csv", "--name", "quoted", "--data_path", str(tmp_path),
                 "--user_col", "user", "--item_col", "item", "--time_col", "time"]) == 2
    assert "quoted.csv lines 2 to 3: ',' expected after '\"'" in capsys.readouterr().err


def test_convert_called_from_python_without_notes_warns(tmp_path):
    """``convert()`` called from Python without ``notes=`` said nothing of a quoted field holding
    record-like lines (only the command line printed the warning): it warns through ``warnings``."""
    merged = tmp_path / "merged.csv"
    merged.write_text('user,item,time,title\nu,i,1,"Weird\nu,j,2,ok\nu,k,3,Al"\nv,i,4,x\n')
    with pytest.warns(UserWarning, match="line 2: a quoted field runs over lines 2 to 4"):
        convert(str(merged), "csv", "merged", str(tmp_path), "user", "item", "time")
    with warnings.catch_warnings(record=True) as caught:  # Python's default filter shows a warning once per
        warnings.simplefilter("default")  # place: warned from inside convert.py, a second call said nothing
        convert(str(merged), "csv", "merged2", str(tmp_path), "user", "item", "time")
        convert(str(merged), "csv", "merged3", str(tmp_path), "user", "item", "time")
    assert sum("a quoted field runs over" in str(w.message) for w in caught) == 2, caught
    with warnings.catch_warnings():  # a warning turned into an error stops it before anything is written
        warnings.simplefilter("error")
        with pytest.raises(UserWarning):
            convert(str(merged), "csv", "merged4", str(tmp_path), "user", "item", "time")
    assert not (tmp_path / "merged4").exists()
    notes: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert(str(merged), "csv", "again", str(tmp_path), "user", "item", "time", notes=notes)
    assert len(notes) == 1


def test_user_tokens_no_request_file_can_name_are_warned_of(tmp_path, capsys):
    """A user token holding a comma or starting with # converted without a word, and every
    training run saving a model folder then refused the dataset (r9data probe)."""
    src = tmp_path / "odd.csv"
    src.write_text('u,i,t\n"x,y",a,1\n"x,y",b,2\n#h,b,3\nplain,c,4\n')
    args = ["--input", str(src), "--format", "csv", "--name", "odd", "--data_path", str(tmp_path),
            "--user_col", "u", "--item_col", "i", "--time_col", "t"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning: 2 user tokens ('#h', 'x,y') cannot be named in a request file" in err, err
    assert os.path.isfile(tmp_path / "odd" / "odd.inter")
