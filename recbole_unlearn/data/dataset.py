"""A RecBole ``SequentialDataset`` whose training data can be rebuilt without chosen interactions.

RecBole's ``SequentialDataset`` augments the interaction log into (prefix -> target) samples
once, at load time. Unlearning needs the same samples rebuilt from a *reduced* log (D_rem),
and evaluation needs the same valid/test targets with either the original histories (D_raw)
or the reduced ones. So this dataset keeps the chronological interaction log as its
``inter_feat`` and builds samples on demand from a boolean ``keep`` mask over that log.

Vocabulary used throughout the package:
  * *log row*: the index of one interaction in ``dataset.inter_feat`` (sorted by user, time);
  * *position*: its 0-based index inside the user's chronological sequence;
  * a user with ``n`` interactions has test target at position ``n-1``, valid target at
    ``n-2`` and training interactions at positions ``0 .. n-3`` (leave-one-out, SPEC section 1).
"""
import hashlib
import os
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.data.interaction import Interaction


class UnlearnSequentialDataset(SequentialDataset):
    """Sequential dataset that can build train/valid/test samples from any subset of its log.

    Attributes (all numpy arrays indexed by log row, length ``n_rows``):
        log_user: internal user id of each interaction.
        log_item: internal item id of each interaction.
        log_position: position of the interaction in its user's sequence.
        log_user_len: length of that user's whole sequence.
        is_training: True for training interactions (``position < user_len - 2``).
    Per user (indexed by internal user id):
        user_start: first log row of the user (``-1`` if the user has no interaction).
    """

    def __init__(self, config):
        super().__init__(config)
        #: a warning for the run's log (said once the run has one: bad input stays one line)
        self.order_warning: Optional[str] = self._float32_time_ties()
        # RecBole converts features and augments in ``build()``; we convert once, here, and keep
        # the raw chronological log instead of augmenting it.
        Dataset._change_feat_format(self)
        self._aug_presets()
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)
        self._index_log()

    def _remove_duplication(self) -> None:
        """RecBole's ``rm_dup_inter`` (drop repeated (user, item) pairs, keeping the ``first`` or
        ``last`` in time), with a stable sort by time: RecBole's ``sort_values`` default
        (quicksort) reordered tied interactions, so every user's targets could move though no
        pair repeats, and in an order that depends on the CPU (numpy's AVX-512 sort), so a model
        folder served on another machine forgot other rows than it recorded (a probe). Tied
        interactions keep the file's order, as they do without ``rm_dup_inter``."""
        keep = self.config["rm_dup_inter"]
        if keep is None:
            return
        self._check_field("uid_field", "iid_field")
        if self.time_field in self.inter_feat:
            self.inter_feat.sort_values(by=[self.time_field], ascending=True, inplace=True, kind="mergesort")
        else:
            self.logger.warning(f"Timestamp field has not been loaded or specified, thus strategy [{keep}] of "
                                "duplication removal may be meaningless.")
        self.inter_feat.drop_duplicates(subset=[self.uid_field, self.iid_field], keep=keep, inplace=True)

    def unknown_unused_columns(self) -> list:
        """The ``unused_col`` fields the run did not load (a typo, or one ``load_col`` leaves out:
        dropping it drops nothing; RecBole's warning comes from a split this dataset does not run)."""
        return [f for f in (self.config["unused_col"] or {}).get("inter") or [] if f not in self.log_feat.columns]

    def _load_inter_feat(self, token, dataset_path):
        """RecBole's loading of ``<token>.inter``, refusing what it would silently change: a ``"``
        anywhere (pandas reads the lines up to the next one as one quoted field, merging rows) and
        a user or item token it reads as missing (``NA``, ``None``, ``null``, ``nan``, an empty
        field), whose rows it drops with a log warning."""
        path = os.path.join(dataset_path, f"{token}.inter")
        row_lines = []  # the file line of each row pandas reads (it skips lines of spaces alone)
        separator = str(self.config["field_separator"]).encode("utf-8")
        if os.path.isfile(path):
            with open(path, "rb") as f:
                for number, line in enumerate(f, 1):
                    if b'"' in line:
                        raise ValueError(f"{path} line {number} holds a quote (\"), which RecBole's reader takes for "
                                         "the start of a quoted field running over the next lines, merging rows: "
                                         "remove the quotes from the tokens")
                    if number > 1 and (line.decode("utf-8", "replace").strip() or separator in line):
                        row_lines.append(number)
        super()._load_inter_feat(token, dataset_path)
        for field in (self.uid_field, self.iid_field):
            if field is None or field not in self.inter_feat:
                continue
            missing = np.flatnonzero(self.inter_feat[field].isnull().to_numpy())
            if len(missing):
                first = row_lines[missing[0]] if missing[0] < len(row_lines) else missing[0] + 2
                raise ValueError(f"{len(missing)} row{'s' if len(missing) > 1 else ''} of {path} (first at line "
                                 f"{first}) hold{'' if len(missing) > 1 else 's'} a {field} token that "
                                 "RecBole reads as missing (such as NA, None, null or nan, or an empty field) and "
                                 "would drop: rename such tokens")

    def _float32_time_ties(self) -> Optional[str]:
        """A warning (``None`` if none is due) when the file orders some user's interactions
        against their times, closer than float32 (which RecBole's ``timestamp:float`` becomes) can
        tell apart: about 64 s at ml-100k's times, 128 s at today's. Such ties keep the file's
        order, in RecBole as here (so the splits stay RecBole's); ``dataset/convert.py`` writes
        each user's lines in time order."""
        frame = self.inter_feat
        if self.time_field not in frame or not len(frame):
            return None
        users = frame[self.uid_field].to_numpy()
        exact = frame[self.time_field].to_numpy(dtype=np.float64)
        as_held = np.lexsort((exact.astype(np.float32), users))
        wrong = as_held != np.lexsort((exact, users))
        if not wrong.any():
            return None
        n = len(np.unique(users[as_held[wrong]]))
        return (f"{n} user{' has' if n == 1 else 's have'} interactions whose order in {self.dataset_name}.inter "
                "differs from their times, which are closer than float32 (RecBole's timestamp:float) tells "
                "apart: the file's order is kept, as RecBole does; sort the file by user and time to use the times")

    def _index_log(self) -> None:
        self.log_feat = self.inter_feat  # survives ``copy()``, which replaces ``inter_feat``
        users = self.inter_feat[self.uid_field].numpy()
        n_rows = len(users)
        self.log_user = users
        self.log_item = self.inter_feat[self.iid_field].numpy()
        starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1] if n_rows else np.array([], dtype=np.int64)
        lengths = np.diff(np.r_[starts, n_rows])
        self.log_user_len = np.repeat(lengths, lengths)
        self.log_position = np.arange(n_rows) - np.repeat(starts, lengths)
        self.is_training = self.log_position < self.log_user_len - 2
        self.user_start = np.full(self.user_num, -1, dtype=np.int64)
        self.user_start[users[starts]] = starts

    # --- the samples -------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return len(self.log_user)

    def active_users(self) -> np.ndarray:
        """Internal ids of the users with at least one interaction, sorted."""
        return np.flatnonzero(self.user_start >= 0)

    #: log rows no model may train on or see in a history (the audit's held-out twins); every
    #: ``keep`` mask starts from :meth:`full_keep`, which leaves them out.
    held_out: np.ndarray = np.array([], dtype=np.int64)

    def full_keep(self) -> np.ndarray:
        """A ``keep`` mask with every interaction kept except :attr:`held_out`, shape ``[n_rows]``."""
        keep = np.ones(self.n_rows, dtype=bool)
        keep[self.held_out] = False
        return keep

    def rows_kept_by_count_filters(self, forgotten: np.ndarray) -> np.ndarray:
        """``[m]`` remaining training rows that RecBole's count filters (``user_inter_num_interval``,
        ``item_inter_num_interval``) would have dropped had the file not held the ``forgotten``
        rows' lines: they count every line, so a forgotten one can lift a user's or item's count
        over the lower bound. RecBole's loop is repeated on the remaining rows (a row dropped
        lowers other counts) until nothing more drops; a forgotten line cannot push a count the
        other way, so rows an upper bound dropped are not in this dataset to be found."""
        intervals = [(ids, self._parse_intervals_str(self.config[key])) for ids, key in (
            (self.log_user, "user_inter_num_interval"), (self.log_item, "item_inter_num_interval"))]
        intervals = [(ids, interval) for ids, interval in intervals if interval]
        if not intervals or not len(forgotten):
            return np.array([], dtype=np.int64)
        alive = np.ones(self.n_rows, dtype=bool)
        alive[forgotten] = False
        remaining = alive.copy()
        while True:
            dropped = np.zeros(self.n_rows, dtype=bool)
            for ids, interval in intervals:
                counts = np.bincount(ids[alive], minlength=int(ids.max()) + 1)
                banned = [c for c in np.unique(counts[counts > 0]).tolist() if not self._within_intervals(c, interval)]
                dropped |= alive & np.isin(counts, banned)[ids]
            if not dropped.any():  # the rows trained on (not validation or test targets, nor twins)
                return np.setdiff1d(np.flatnonzero(remaining & ~alive & self.is_training), self.held_out)
            alive &= ~dropped

    def user_rows(self, user_id: int) -> np.ndarray:
        """Log rows of one user, in chronological order."""
        start = self.user_start[user_id]
        if start < 0:
            return np.array([], dtype=np.int64)
        return np.arange(start, start + self.log_user_len[start])

    def history_rows(self, targets: np.ndarray, keep: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The log rows every sample is built from.

        Args:
            targets: log rows of the targets, shape ``[n]``.
            keep: bool mask over the log, shape ``[n_rows]``.

        Returns:
            ``(targets [n'], history [n', L], valid [n', L])``: targets with a non-empty history,
            the log rows of their histories (the last ``L = MAX_ITEM_LIST_LENGTH`` kept rows of
            the same user before the target, left-aligned) and which history cells are real.
        """
        targets = np.asarray(targets, dtype=np.int64)
        max_len = self.max_item_list_len
        kept_rows = np.flatnonzero(keep)
        kept_before = np.cumsum(keep) - keep  # number of kept rows strictly before each row
        user_first = targets - self.log_position[targets]
        end = kept_before[targets]
        start = np.maximum(kept_before[user_first], end - max_len)
        length = end - start
        nonempty = length > 0
        targets, start, length = targets[nonempty], start[nonempty], length[nonempty]
        offsets = np.arange(max_len)
        valid = offsets[None, :] < length[:, None]
        history_pos = np.where(valid, start[:, None] + offsets[None, :], 0)
        history = kept_rows[history_pos] if len(kept_rows) else np.zeros_like(history_pos)
        return targets, history, valid

    def n_samples(self, targets: np.ndarray, keep: np.ndarray) -> int:
        """How many samples :meth:`samples` builds for ``targets`` under ``keep`` (those with a
        non-empty history)."""
        return len(self.history_rows(targets, keep)[0])

    def has_training_samples(self, keep: np.ndarray) -> bool:
        """Whether the training interactions kept by ``keep`` give at least one sample."""
        return self.n_samples(self.split_targets(keep)[0], keep) > 0

    def rows_used(self, targets: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Every log row that :meth:`samples` reads for ``targets`` under ``keep`` (the targets
        that get a sample, and their histories), unique and sorted."""
        kept_targets, history, valid = self.history_rows(targets, keep)
        return np.union1d(kept_targets, history[valid])

    def samples_digest(self, target_sets: Sequence[np.ndarray], keep: np.ndarray) -> str:
        """SHA-256 hex digest of the samples a model trains (and validates) on: for each array of
        ``target_sets`` in turn, the log rows of every sample's target and history under ``keep``
        (:meth:`history_rows`; ``-1`` pads a short history). Equal digests, equal samples. Log rows
        are fixed by the dataset file, whose own SHA-256 a saved model checks."""
        digest = hashlib.sha256()
        for targets in target_sets:
            kept_targets, history, valid = self.history_rows(np.asarray(targets, dtype=np.int64), keep)
            digest.update(np.asarray(kept_targets, dtype=np.int64).tobytes())
            digest.update(np.where(valid, history, -1).astype(np.int64).tobytes())
            digest.update(b"|")
        return digest.hexdigest()

    @staticmethod
    def keep_digest(keep: np.ndarray) -> str:
        """SHA-256 hex digest of a ``keep`` mask ``[n_rows]`` (of the log rows it leaves out)."""
        return hashlib.sha256(np.flatnonzero(~keep).astype(np.int64).tobytes()).hexdigest()

    def samples(self, targets: np.ndarray, keep: np.ndarray) -> Interaction:
        """Build (history -> target) samples in RecBole's sequential format.

        Args:
            targets: log rows of the targets, shape ``[n]``.
            keep: bool mask over the log, shape ``[n_rows]``; the history of a target is the last
                ``MAX_ITEM_LIST_LENGTH`` *kept* interactions of the same user before it.

        Returns:
            ``Interaction`` with ``n' <= n`` rows (targets with an empty history are dropped):
            ``user_id [n']``, every other log field ``[n']`` (the target's value) and its
            ``<field>_list [n', L]`` history (left-aligned, zero-padded), ``item_length [n']``.
        """
        targets, history_rows, valid = self.history_rows(targets, keep)
        length = valid.sum(axis=1)
        history_rows_t = torch.from_numpy(history_rows)
        valid_t = torch.from_numpy(valid)
        target_t = torch.from_numpy(targets)

        data = {}
        # RecBole's split drops unused_col's fields (the target's value; their history lists stay)
        unused = set((self.config["unused_col"] or {}).get("inter") or [])
        for field in self.log_feat.columns:
            value = self.log_feat[field]
            if field not in unused:
                data[field] = value[target_t]
            if field == self.uid_field:
                continue
            hist = value[history_rows_t]  # [n', L, ...]
            mask = valid_t.view(valid_t.shape + (1,) * (hist.dim() - 2))
            data[field + self.config["LIST_SUFFIX"]] = torch.where(mask, hist, torch.zeros_like(hist))
        data[self.item_list_length_field] = torch.from_numpy(length)
        return Interaction(data)

    def user_histories(self, users: np.ndarray, keep: np.ndarray) -> Interaction:
        """One sample per user whose history is its last ``MAX_ITEM_LIST_LENGTH`` kept *training*
        interactions (the history of its validation target); users without any are dropped.
        The ``user_id`` field says which users remain."""
        users = np.asarray(users, dtype=np.int64)
        starts = self.user_start[users]
        present = starts >= 0
        users, starts = users[present], starts[present]
        lengths = self.log_user_len[starts]
        has_train = lengths >= 3
        targets = starts[has_train] + lengths[has_train] - 2  # each user's validation target
        return self.samples(targets, keep)

    def split_targets(self, keep: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log rows of the train / valid / test targets under a ``keep`` mask.

        Valid and test targets never change (unlearning only touches training interactions).
        """
        keep = self.full_keep() if keep is None else keep
        pos, length = self.log_position, self.log_user_len
        train = np.flatnonzero(self.is_training & keep)
        valid = np.flatnonzero((pos == length - 2) & (length >= 3))
        test = np.flatnonzero((pos == length - 1) & (length >= 2))
        return train, valid, test

    def build_split(self, keep: Optional[np.ndarray] = None):
        """Train / valid / test datasets built from the log rows selected by ``keep``."""
        keep = self.full_keep() if keep is None else keep
        return [self.copy(self.samples(rows, keep)) for rows in self.split_targets(keep)]

    def build(self):
        """RecBole's hook (used by ``data_preparation``): the D_raw split."""
        return self.build_split()

    def sample_dataset(self, targets: np.ndarray, keep: np.ndarray) -> "UnlearnSequentialDataset":
        """A dataset copy whose ``inter_feat`` holds :meth:`samples` (for RecBole dataloaders)."""
        return self.copy(self.samples(targets, keep))
