"""Forget sets (SPEC section 2): which training interactions must be forgotten.

A :class:`ForgetSet` is a set of log rows of an :class:`UnlearnSequentialDataset`. From it
come the three things every method and metric needs:
  * ``keep_mask`` -> D_rem (every training interaction except the forgotten ones);
  * ``forget_samples`` -> D_fgt (for each forgotten item v at position i, the user's items
    before i with the other forgotten items removed -> target v);
  * ``triples`` -> the forgotten (user, item, position) interactions, in raw tokens.
"""
import hashlib
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np
from recbole.data.interaction import Interaction

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.registry import Registry

_EMPTY = np.array([], dtype=np.int64)


@dataclass
class ForgetSet:
    """Forgotten interactions as sorted, unique log rows.

    Attributes:
        requested: rows named by the request file or the sampling protocol, shape ``[n_req]``.
        extra: rows removed on top of them by extra deletion (SPEC section 3), shape ``[n_extra]``.
        source: where the set came from (``"thesis"``, ``"requests:<file>"``, ...).
        targets: the requested rows that become D_fgt / SRU-inference targets (default: all of
            them; the ``sru`` protocol forgets a target *and* everything after it, but only the
            target is an unlearning sample).
        requests: for a run forgetting a request file, its lines (each with ``id``, ``file``,
            ``line`` and ``rows``: ``serving.request_files.FileRequest``), which a saving
            method's model folder records as a request run would; ``None`` otherwise.
    """

    requested: np.ndarray
    extra: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    source: str = ""
    targets: Optional[np.ndarray] = None
    requests: Optional[list] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.requested = np.unique(np.asarray(self.requested, dtype=np.int64))
        self.extra = np.setdiff1d(np.asarray(self.extra, dtype=np.int64), self.requested)
        targets = self.requested if self.targets is None else self.targets
        self.targets = np.intersect1d(np.asarray(targets, dtype=np.int64), self.requested)

    @property
    def rows(self) -> np.ndarray:
        """All forgotten log rows (requested and extra), sorted."""
        return np.union1d(self.requested, self.extra)

    def __len__(self) -> int:
        return len(self.rows)

    def keep_mask(self, dataset: UnlearnSequentialDataset, include_extra: bool = True) -> np.ndarray:
        """Bool mask over the log, shape ``[n_rows]``: False for forgotten interactions."""
        keep = dataset.full_keep()
        keep[self.rows if include_extra else self.requested] = False
        return keep

    def users(self, dataset: UnlearnSequentialDataset) -> np.ndarray:
        """Internal ids of the users who lose at least one interaction."""
        return np.unique(dataset.log_user[self.rows])

    def forget_samples(self, dataset: UnlearnSequentialDataset) -> Interaction:
        """D_fgt: one sample per target with a non-empty history.

        The history excludes every requested interaction (but not the extra-deleted ones, so
        that D_fgt is the same for every method run on this forget set).
        """
        return dataset.samples(self.targets, self.keep_mask(dataset, include_extra=False))

    def inference_samples(self, dataset: UnlearnSequentialDataset) -> Interaction:
        """SRU inference samples: each target given the user's *remaining* items before it
        (requested and extra-deleted interactions removed)."""
        return dataset.samples(self.targets, self.keep_mask(dataset, include_extra=True))

    def triples(self, dataset: UnlearnSequentialDataset) -> List[Tuple[str, str, int]]:
        """Forgotten (user token, item token, position) for every row."""
        rows = self.rows
        users = dataset.id2token(dataset.uid_field, dataset.log_user[rows])
        items = dataset.id2token(dataset.iid_field, dataset.log_item[rows])
        return [(str(u), str(i), int(p)) for u, i, p in zip(users, items, dataset.log_position[rows])]

    def with_extra(self, extra_rows: np.ndarray) -> "ForgetSet":
        return ForgetSet(self.requested, np.union1d(self.extra, extra_rows), self.source, self.targets)


# --- sampling protocols ----------------------------------------------------------------
ProtocolFn = Callable[[object, UnlearnSequentialDataset], ForgetSet]
#: ``@FORGET_PROTOCOLS.register(name, reads=(<its own keys>,))``: a run giving another protocol's
#: key is refused (it would be recorded as if it had mattered).
FORGET_PROTOCOLS: Registry[ProtocolFn] = Registry("forget protocol", "forget_protocol")


def _sample_users(rng: np.random.Generator, dataset: UnlearnSequentialDataset, eligible: np.ndarray,
                  ratio_key: str, ratio: float, empty_message: str) -> np.ndarray:
    """``round(ratio * number of users)`` users drawn from ``eligible`` (all of them if fewer),
    sorted; ``empty_message`` is raised when no user is eligible, and another when the ratio
    (``ratio_key``) rounds to none."""
    n_users = len(dataset.active_users())
    n_pick = int(round(ratio * n_users))
    if len(eligible) == 0:
        raise UnlearnError(empty_message)
    if n_pick == 0:
        raise UnlearnError(f"{ratio_key} {ratio:g} of {n_users} users draws none (it rounds to 0 users): raise it")
    return np.sort(rng.choice(eligible, size=min(n_pick, len(eligible)), replace=False))


@FORGET_PROTOCOLS.register("thesis", reads=("forget_user_ratio", "forget_item_ratio", "forget_skip_first"))
def thesis_protocol(config, dataset: UnlearnSequentialDataset) -> ForgetSet:
    """Thesis section 3.2.2: ``forget_user_ratio`` of the users; for each, a random number
    ``k in [1, floor(forget_item_ratio * n_train)]`` of its training items, never one of the
    first ``forget_skip_first``.

    Every forgotten interaction is a D_fgt target.
    """
    rng = np.random.default_rng(config["forget_seed"])
    skip = config["forget_skip_first"]
    ratio = config["forget_item_ratio"]
    n_train = np.bincount(dataset.log_user[dataset.is_training], minlength=dataset.user_num)
    max_k = np.minimum(np.floor(ratio * n_train).astype(np.int64), n_train - skip)
    chosen = _sample_users(
        rng, dataset, np.flatnonzero(max_k >= 1), "forget_user_ratio", config["forget_user_ratio"],
        "the thesis protocol found no user to forget from: a user needs more than "
        f"{skip} training interactions (forget_skip_first) and at least 1 / forget_item_ratio ({ratio:g}) of them, "
        f"so that floor(forget_item_ratio x its training interactions) >= 1 (dataset '{config['dataset']}')",
    )
    rows = []
    for user in chosen:
        k = int(rng.integers(1, max_k[user] + 1))
        start = dataset.user_start[user]
        positions = rng.choice(np.arange(skip, n_train[user]), size=k, replace=False)
        rows.append(start + positions)
    return ForgetSet(np.concatenate(rows), source="thesis")


@FORGET_PROTOCOLS.register("sru", reads=("sru_forget_ratio",))
def sru_protocol(config, dataset: UnlearnSequentialDataset) -> ForgetSet:
    """SRU code: ``sru_forget_ratio`` of the users; for each, a position ``p`` uniform in
    ``[floor(0.5 * n_train), n_train)``; the item at ``p`` is the target, and it and every later
    training item are forgotten (the user keeps the prefix before ``p``).

    SRU samples 20% of each shard's users; the forget set here is drawn once for all methods
    (so every method forgets the same interactions), uniformly over users, which gives each
    shard that share in expectation.
    """
    rng = np.random.default_rng(config["forget_seed"])
    n_train = np.bincount(dataset.log_user[dataset.is_training], minlength=dataset.user_num)
    chosen = _sample_users(
        rng, dataset, np.flatnonzero(n_train >= 2), "sru_forget_ratio", config["sru_forget_ratio"],
        f"the sru protocol found no user with 2 or more training interactions (dataset '{config['dataset']}')",
    )
    requested, targets = [], []
    for user in chosen:
        n = int(n_train[user])
        p = int(rng.integers(n // 2, n))
        start = dataset.user_start[user]
        targets.append(start + p)
        requested.append(np.arange(start + p, start + n))
    return ForgetSet(np.concatenate(requested), source="sru", targets=np.array(targets))


@FORGET_PROTOCOLS.register("none", reads=())
def no_forget_protocol(config, dataset: UnlearnSequentialDataset) -> ForgetSet:
    """Nothing to forget: a run that trains and saves a model for deployment (``model_dir``),
    whose later forgets come only from request files. Its rows measure utility alone."""
    return ForgetSet(_EMPTY.copy(), source="none")


def protocol_settings() -> List[str]:
    """Every key some forget protocol reads (its ``reads`` trait: a protocol registers the keys
    of its own), sorted; ``forget_seed`` is not one (the evaluation draws with it too)."""
    return sorted({key for name in FORGET_PROTOCOLS.names() for key in FORGET_PROTOCOLS.traits(name).get("reads", ())})


def sample_forget_set(config, dataset: UnlearnSequentialDataset) -> ForgetSet:
    """The forget set of the protocol named by ``forget_protocol``."""
    return FORGET_PROTOCOLS.get(config["forget_protocol"])(config, dataset)


# --- explicit request files ---------------------------------------------------------------
@dataclass
class Request:
    """One line of a request file, resolved to log rows."""

    line: int
    user: str
    item: Optional[str]
    rows: np.ndarray


class RequestLineError(UnlearnError):
    """A request line that cannot be applied. Its message quotes what the line sent, for the
    person who gave the file; ``redacted`` says the same without the line's tokens, for records
    kept after the file is gone (a watched folder's ledger): a rejected line can still name a
    user's real interaction (a validation target, say)."""

    def __init__(self, where: str, problem: str, redacted: str):
        super().__init__(f"{where}: {problem}")
        self.redacted = f"{where}: {redacted}"


def unrequestable_tokens(dataset: UnlearnSequentialDataset) -> List[str]:
    """User and item tokens no request line can name (``[n]``, quoted): a user token starting
    with ``#`` (the line is a comment), a user token holding a comma (a line naming the user
    alone is split at it, into another user and an item), any token holding a tab (a line
    holding one is split at tabs; only a dataset read with another ``field_separator`` has such
    tokens) and any token with whitespace at an edge (a line's and a field's edges are stripped,
    so it names another token or none)."""
    bad = []
    for field in (dataset.uid_field, dataset.iid_field):
        for token in dataset.field2id_token[field][1:]:  # [0] is RecBole's padding token
            token = str(token)
            if token != token.strip() or "\t" in token or (
                    field == dataset.uid_field and (token.startswith("#") or "," in token)):
                bad.append(repr(token))
    return bad


def unrequestable_line(dataset: UnlearnSequentialDataset) -> Optional[str]:
    """What is wrong with a dataset with tokens no request line can name, or ``None``."""
    bad = unrequestable_tokens(dataset)
    if not bad:
        return None
    return (f"{len(bad)} token{'s' if len(bad) > 1 else ''} of the dataset ({', '.join(bad[:5])}"
            f"{', ...' if len(bad) > 5 else ''}) cannot be named in a request file (a user token "
            "starting with # is a comment line; a user token holding a comma is split at it, and a "
            "token holding a tab at its tab; spaces at a token's edge are stripped), so a saved model "
            "could never forget them: "
            "rename them in the dataset")


def request_line_text(text: str) -> str:
    """Request line ``text`` with white space at its edges stripped, except tabs where it holds
    one: a tab at the edge of a tab-separated line marks an empty field (stripped, ``<TAB>302``
    read as user 302)."""
    if "\t" not in text:
        return text.strip()
    return "\t".join(field.strip() for field in text.split("\t"))


def request_tokens(text: str) -> List[str]:
    """The stripped fields of request line ``text``: split at tabs if it holds one (as the
    dataset's ``.inter`` file is; an empty field at an edge stays one), else at commas."""
    text = request_line_text(text)
    return [p.strip() for p in text.split("\t" if "\t" in text else ",")]


def parse_request_line(text: str, dataset: UnlearnSequentialDataset, where: str) -> Tuple[str, Optional[str], np.ndarray]:
    """Resolve one ``user_token[,item_token]`` request to training log rows.

    A bare user forgets all of that user's training interactions; ``user,item`` forgets every
    training interaction of the user with that item. A line with a tab is split at tabs
    instead, as the dataset's ``.inter`` file is (``cut -f1,2`` of it gives request lines, and
    a token may hold a comma). Raises a one-line :class:`RequestLineError` starting with
    ``where`` for a malformed line, an unknown token or nothing to forget.

    Returns:
        ``(user, item or None, rows)`` with ``rows`` a ``[n]`` int64 array of log rows.
    """
    text = request_line_text(text)
    parts = request_tokens(text)
    user_ids = dataset.field2token_id[dataset.uid_field]
    if len(parts) == 2 and text in user_ids:  # a folder saved before such users were refused
        reading = f"names user {text!r} and also user {parts[0]!r} with item {parts[1]!r}"
        held = "a tab" if "\t" in text else "a comma"
        pair = f"{parts[0]}<TAB>{parts[1]}" if held == "a comma" else f"{parts[0]},{parts[1]}"
        hint = f" (the pair is named {pair!r}; that user alone cannot be named)"
        raise RequestLineError(where, f"{reading}: ambiguous, not applied{hint}", f"names a user token holding "
                               f"{held} and also a user with an item: ambiguous, not applied")
    if len(parts) > 2 or not all(parts):
        expected = "expected 'user_token[,item_token]' (or tab-separated)"
        shape = f"{len(parts)} fields" if len(parts) > 2 else "an empty field"
        raise RequestLineError(where, f"{expected}, got {text!r}", f"{expected}, got {shape}")
    user = parts[0]
    if user not in user_ids:
        form = _normal_form_held(user, user_ids)
        hint = _filters_hint(dataset)
        raise RequestLineError(where, f"unknown user token {user!r}{_form_hint(form, True)}{hint}",
                               f"unknown user token{_form_hint(form, False)}{hint}")
    all_rows = dataset.user_rows(user_ids[user])
    rows = all_rows[dataset.is_training[all_rows] & ~np.isin(all_rows, dataset.held_out)]
    item = parts[1] if len(parts) == 2 else None
    if item is not None:
        item_ids = dataset.field2token_id[dataset.iid_field]
        if item not in item_ids:
            form = _normal_form_held(item, item_ids)
            hint = _filters_hint(dataset)
            raise RequestLineError(where, f"unknown item token {item!r}{_form_hint(form, True)}{hint}",
                                   f"unknown item token{_form_hint(form, False)}{hint}")
        rows = rows[dataset.log_item[rows] == item_ids[item]]
        if len(rows) == 0:
            note = _held_out_note(dataset, all_rows, item_ids[item]) or _filters_hint(dataset)
            raise RequestLineError(where, f"user {user!r} has no training interaction with item {item!r}{note}",
                                   f"the user has no training interaction with the item{note}")
    elif len(rows) == 0:
        raise RequestLineError(where, f"user {user!r} has no training interactions to forget",
                               "the user has no training interactions to forget")
    return user, item, rows


def _normal_form_held(token: str, token_ids: dict) -> Optional[str]:
    """The Unicode normal form (``NFC``, ``NFD``, ``NFKC``, ``NFKD``) in which the dataset
    holds a token that ``token`` matches only once normalised, or ``None``. Tokens are matched
    exactly (a normalised match could name another token); this only explains the error."""
    for form in ("NFC", "NFD", "NFKC", "NFKD"):
        normal = unicodedata.normalize(form, token)
        if normal != token and normal in token_ids:
            return form
    return None


def _form_hint(form: Optional[str], named: bool) -> str:
    if form is None:
        return ""
    if named:
        return (f" (the dataset holds it in Unicode {form} form: the same on screen, other code points; "
                "tokens are matched exactly)")
    return " (the dataset holds it in another Unicode form; tokens are matched exactly)"


#: RecBole's settings that remove users, items or interactions while loading, and their "off" values
_FILTER_KEYS = {"user_inter_num_interval": (None, "[0,inf)"), "item_inter_num_interval": (None, "[0,inf)"),
                "val_interval": (None, {})}


def _filters_hint(dataset: UnlearnSequentialDataset) -> str:
    """`` (RecBole's filters ... may have removed it from the dataset as loaded)`` when the
    model's settings filter the dataset (a filtered token is in the file but not in the model);
    ``""`` otherwise."""
    active = [f"{key} {dataset.config[key]}" for key, off in _FILTER_KEYS.items()
              if str(dataset.config[key]).replace(" ", "") not in {str(v).replace(" ", "") for v in off}]
    features = [name for name in ("user", "item") if getattr(dataset, f"{name}_feat", None) is not None]
    if features and dataset.config["filter_inter_by_user_or_item"]:  # a token without a line there is dropped
        active.append(f"filter_inter_by_user_or_item True (with the .{' and .'.join(features)} file"
                      f"{'s' if len(features) > 1 else ''}: an interaction whose token has no line there)")
    if not active:
        return ""
    return f" (RecBole's filters in the model's settings, {', '.join(active)}, may have removed it from the dataset)"


def _held_out_note(dataset: UnlearnSequentialDataset, user_rows: np.ndarray, item_id: int) -> str:
    """Why a user's interaction with an item is not training data, when the user has one: it is
    an audit twin held out of every model's training data, or the user's validation or test
    target (``""`` if the user never interacted with the item)."""
    with_item = user_rows[dataset.log_item[user_rows] == item_id]
    if np.isin(with_item, dataset.held_out).any():
        return (": it is held out of every model's training data as an audit twin (README: the "
                "membership-inference audit), so no model learned from it")
    held = with_item[~dataset.is_training[with_item]]
    if len(held) == 0:
        return ""
    if dataset.log_user_len[held[0]] <= 2:  # no history before it: no validation or test sample either
        return (f": it is one of the user's last two interactions, held out for validation and test (SPEC section "
                f"1); with {dataset.log_user_len[held[0]]} the user has no training data, so no model learned from it")
    roles = sorted({"test" if dataset.log_position[r] == dataset.log_user_len[r] - 1 else "validation" for r in held})
    return (f": it is the user's {' and '.join(roles)} target (a user's last two interactions are its validation "
            "and test targets, never trained on; SPEC section 1), so no model learned from it")


_READ_BLOCK = 1 << 20  # bytes read at a time; a request file is never held whole
_BOM = b"\xef\xbb\xbf"


def read_request_file(path: str, max_lines: int, max_line_bytes: int) -> Tuple[str, List[Tuple[int, Optional[str]]]]:
    """The SHA-256 hex digest of the request file at ``path`` and ``(line number, text)`` of its
    request lines (blank lines and ``#`` comments skipped; ``\\n``, ``\\r\\n`` and ``\\r`` end a
    line; a UTF-8 byte-order mark, as spreadsheets write, is not a token), both from one pass
    over its bytes, so its request ids and its lines come from the same content.

    The file is streamed, never held whole: it is refused at its first line past ``max_lines``
    requests or longer than ``max_line_bytes`` (a longer comment is skipped unread), so memory
    stays within what those bounds allow however big the file is. One-line errors for those and for a missing or unreadable file. A
    request line that is not UTF-8 comes back with text ``None`` (its caller rejects it, alone
    in a watched folder); a comment need not be UTF-8."""
    digest = hashlib.sha256()
    lines: List[Tuple[int, str]] = []
    number = 0

    def take(raw: bytes) -> None:
        nonlocal number
        number += 1
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        if is_comment(raw, first=number == 1):
            return
        if len(raw) > max_line_bytes:
            raise UnlearnError(f"request file {path} line {number} is longer than {max_line_bytes} bytes "
                               "(max_request_line_bytes): not a request line")
        try:
            line: Optional[str] = request_line_text(raw.decode("utf-8"))
        except UnicodeDecodeError:
            line = None
        if line is not None and (not line.strip() or line.startswith("#")):  # (a line of tabs is blank)
            return
        if len(lines) >= max_lines:
            raise UnlearnError(f"request file {path} has more than {max_lines} requests "
                               "(max_request_lines); split it")
        lines.append((number, line))

    def is_comment(raw: bytes, first: bool) -> bool:
        """A line (or its start) that is a ``#`` comment once leading white space (Unicode's
        too, as a request line is stripped) is dropped; a comment need not be UTF-8 past its
        ``#``. A byte that is no UTF-8 before it is no white space (decoded leniently, it was
        dropped: ``\\xe9#...`` was skipped as a comment, unsaid)."""
        if first and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        return raw.strip().startswith(b"#") or raw.decode("utf-8", "replace").lstrip().startswith("#")

    try:
        # not blocking: a FIFO put in the file's place after it was listed would wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnlearnError(f"request file {path} is not a regular file")
        with os.fdopen(fd, "rb") as f:
            pending = b""
            skipping = False  # inside a comment longer than a request line may be: dropped unread
            for block in iter(lambda: f.read(_READ_BLOCK), b""):
                digest.update(block)
                pending += block
                if skipping:
                    end = re.search(rb"\r\n|\r(?!$)|\n", pending)  # a last \r may be half of \r\n
                    if end is None:
                        pending = b"\r" if pending.endswith(b"\r") else b""
                        continue
                    number += 1
                    pending, skipping = pending[end.end():], False
                # a trailing \r may be the first half of \r\n: keep it for the next block
                cut = len(pending) - 1 if pending.endswith(b"\r") else len(pending)
                parts = re.split(rb"\r\n|\r|\n", pending[:cut])
                for raw in parts[:-1]:
                    take(raw)
                pending = parts[-1] + pending[cut:]
                if len(pending) > max_line_bytes + 1:
                    if not is_comment(pending, first=number == 0):
                        take(pending)  # refused: longer than any request line may be
                    skipping = True
                    pending = b"\r" if pending.endswith(b"\r") else b""
            if not skipping:
                take(pending)
    except FileNotFoundError:
        raise UnlearnError(f"request file not found: {path}") from None
    except OSError as e:
        raise UnlearnError(f"request file {path} cannot be read: {e.strerror}") from None
    return digest.hexdigest(), lines


def parse_request_lines(lines: List[Tuple[int, Optional[str]]], path: str,
                        dataset: UnlearnSequentialDataset) -> List[Request]:
    """Resolve a request file's ``user_token[,item_token]`` lines to training log rows.

    Everything is validated before anything is returned: the first problem (malformed line,
    unknown token, a line repeating an earlier one, no requests at all) raises a one-line
    :class:`UnlearnError` naming the file and line.
    """
    requests: List[Request] = []
    seen = {}
    for number, text in lines:
        where = f"request file {path} line {number}"
        if text is None:
            raise UnlearnError(f"{where}: is not UTF-8 text")
        user, item, rows = parse_request_line(text, dataset, where)
        if (user, item) in seen:
            raise UnlearnError(f"{where}: repeats line {seen[(user, item)]} ({text!r})")
        seen[(user, item)] = number
        requests.append(Request(number, user, item, rows))
    if not requests:
        raise UnlearnError(f"request file {path} contains no requests")
    return requests


def parse_request_file(path: str, dataset: UnlearnSequentialDataset, max_lines: int,
                       max_line_bytes: int) -> List[Request]:
    """Read the request file at ``path`` (:func:`read_request_file`, whose bounds are errors too)
    and resolve its lines (:func:`parse_request_lines`)."""
    return parse_request_lines(read_request_file(path, max_lines, max_line_bytes)[1], path, dataset)


def forget_set_from_requests(path: str, dataset: UnlearnSequentialDataset, max_lines: int,
                             max_line_bytes: int) -> ForgetSet:
    """The union of every request in a request file."""
    requests = parse_request_file(path, dataset, max_lines, max_line_bytes)
    rows = np.concatenate([r.rows for r in requests])
    return ForgetSet(rows, source=f"requests:{os.path.basename(path)}")


def build_forget_set(config, dataset: UnlearnSequentialDataset) -> ForgetSet:
    """The request file given as ``forget`` if any, else the sampled protocol."""
    if config["forget"]:
        return forget_set_from_requests(str(config["forget"]), dataset, config["max_request_lines"],
                                        config["max_request_line_bytes"])
    return sample_forget_set(config, dataset)
