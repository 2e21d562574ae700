"""One unlearning experiment: a dataset, a forget set, the original model and method rows.

``run_recbole_unlearn`` (one run) and the leaderboard grid (many methods per model and
dataset, resumable) both drive this class, so a row means the same thing in both.
"""
import json
import os
import time
from logging import getLogger
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from recbole.utils import init_seed, set_color

from recbole_unlearn.config.keys import KEYS, cutoff_of
from recbole_unlearn.data import ForgetSet, build_forget_set, create_unlearn_dataset, sample_forget_set, split_loaders
from recbole_unlearn.data.forget import FORGET_PROTOCOLS, protocol_settings
from recbole_unlearn.evaluator import EvaluationSuite
from recbole_unlearn.evaluator.audit import (AUDIT_KEYS, INCONCLUSIVE, AuditSamples, MembershipAudit, gate_step_on_reference,
                                             split_twins)
from recbole_unlearn.serving.request_files import file_requests
from recbole_unlearn.serving.store import ModelStore
from recbole_unlearn.trainer import train_model
from recbole_unlearn.trainer.preflight import check_model_trains
from recbole_unlearn.trainer.training import TrainedModel, new_model, training_record
from recbole_unlearn.trainer.trainer import load_checkpoint
from recbole_unlearn.unlearn import METHODS
from recbole_unlearn.utils.atomic import save_weights, write_json
from recbole_unlearn.utils.cpu_meter import CpuMeter
from recbole_unlearn.utils.digests import file_sha256
from recbole_unlearn.utils.errors import UnlearnError, error_line
from recbole_unlearn.utils.results import make_row
from recbole_unlearn.utils.run_logger import init_run_logger
from recbole_unlearn.utils.trial_write import dangling_link_problem, write_trial

#: seeds of the audit's reference models: seed + AUDIT_SEED_STRIDE * (i + 1).
AUDIT_SEED_STRIDE = 7919
#: file names of the saved reference models: ``<prefix><index>.pth`` beside ``original.pth``
AUDIT_REFERENCE_PREFIX = "audit_reference_"


def unused_data_settings(config) -> Dict[str, str]:
    """The forget-set and audit settings the user gave (``external_config_dict``) that the run
    never reads (:func:`unread_data_settings`), each with why. Each was recorded in
    ``results.json`` as if it had mattered (a probe)."""
    given = config.external_config_dict
    return {key: why for key, why in unread_data_settings(config).items() if key in given}


def unread_data_settings(config) -> Dict[str, str]:
    """Every forget-set and audit setting the run never reads, given or not, each with why:
    another protocol's key, a protocol's key (or ``forget_protocol``) beside a request file
    (``forget``), an audit key with ``audit`` off. A leaderboard cell's fingerprint leaves them
    out (a cell made by earlier code with one of them given resumes once it is dropped)."""
    if config["forget"]:
        unread = {key: "a request file gives the forget set" for key in protocol_settings() + ["forget_protocol"]}
    else:
        protocol = config["forget_protocol"]
        reads = FORGET_PROTOCOLS.traits(protocol).get("reads", ())
        unread = {key: f"forget_protocol {protocol} does not read it" for key in protocol_settings() if key not in reads}
    if not config["audit"]:
        unread.update({key: "audit is off" for key in AUDIT_KEYS})
    return dict(sorted(unread.items()))


def check_request_steps_dealt(config, methods: Iterable[str]) -> None:
    """``request_steps`` deals the forget set into requests to the methods other than Retrain
    (which trains once, and once per request as their matched reference): with Retrain alone it
    did nothing, and was recorded as if it had (a probe)."""
    if config["request_steps"] > 1 and all(name == "retrain" for name in methods):
        raise UnlearnError(f"request_steps {config['request_steps']} deals the forget set into requests to the "
                           "methods other than Retrain, and Retrain is the only one here (it would be recorded as if "
                           "it had been used): drop it, or add a method")


class Experiment:
    """The fixed parts of one (model, dataset) experiment.

    Construction loads the dataset and builds the forget set; it writes nothing and raises
    ``UnlearnError`` on bad input. :meth:`open` starts logging into a run folder and builds
    the evaluation loaders; after that :meth:`train_original` and :meth:`run_method` produce
    results rows (see ``utils/results.make_row``).
    """

    def __init__(self, config):
        self.config = config
        init_seed(config["seed"], config["reproducibility"])
        self.data = create_unlearn_dataset(config)
        self.held_out = None
        unknown = self.data.unknown_unused_columns()
        if unknown:  # (a run's own setting: a folder saved with one still answers requests)
            raise UnlearnError(f"unused_col names {', '.join(unknown)}, which the run does not load from "
                               f"{config['dataset']}.inter (loaded: {', '.join(self.data.log_feat.columns)}; a typo, "
                               "or a field load_col leaves out already)")
        if config["forget"] and config["request_steps"] > 1:
            raise UnlearnError("request_steps deals a sampled forget set into requests; a request file's lines are "
                               "requests already: answer several files with the saved model (--model_dir with "
                               "--forget) instead (the steps recorded none of the file's requests in the folder)")
        if config["forget"] and config["forget_protocol"] == "none":
            raise UnlearnError(f"forget names a request file to forget ({config['forget']}), and forget_protocol none "
                               "forgets nothing: give one of them (to answer requests with a saved model, give "
                               "--model_dir and --forget alone)")
        unused = unused_data_settings(config)
        if unused:
            named = ", ".join(f"{key} ({why})" for key, why in unused.items())
            raise UnlearnError(f"{named} {'is' if len(unused) == 1 else 'are'} not used by this run (it would be "
                               "recorded in results.json as if the run had used it): drop it")
        if not self.data.has_training_samples(self.data.full_keep()):
            raise UnlearnError(f"{config['dataset']}.inter holds no training sample (after the load's filters): a "
                               "user's last two interactions are the validation and test targets, and a training "
                               "sample needs an earlier interaction as its history, so only users with at least "
                               "four interactions train")
        if config["audit"]:
            self.forget_set, self.held_out, self._audit_samples = self._twins()
            self.data.held_out = self.held_out.rows  # never trained on, by any model
        elif config["forget"]:
            self.forget_set = _request_file_forget_set(config, self.data)
        else:
            self.forget_set = build_forget_set(config, self.data)
        if self.nothing_to_forget:
            self._check_nothing_to_forget()
        elif not self.data.has_training_samples(self.forget_set.keep_mask(self.data)):
            raise UnlearnError("the forget set leaves no training samples: Retrain and every method would "
                               "train on nothing (a saved model can still be asked to forget everything)")
        self._check_model()
        users = len(self.forget_set.users(self.data))
        if config["request_steps"] > 1 and config["request_steps"] > users:
            raise UnlearnError(f"request_steps ({config['request_steps']}) deals the forget set's {users} users into "
                               "that many requests: at most one request per user (a step with no user still "
                               "trained a matched Retrain)")
        self.suite: Optional[EvaluationSuite] = None
        self.original: Optional[TrainedModel] = None
        self.audit: Optional[MembershipAudit] = None
        self.audit_cost: Dict[str, object] = {}
        self._steps: Optional[List[Tuple[ForgetSet, EvaluationSuite, dict]]] = None

    @property
    def nothing_to_forget(self) -> bool:
        """True for a run that only trains and saves (``forget_protocol: none``): every method
        row is its fitted, deployed model, evaluated for utility alone."""
        return len(self.forget_set) == 0

    def _check_nothing_to_forget(self) -> None:
        if self.config["request_steps"] > 1:
            raise UnlearnError("request_steps splits the forget set into requests, and forget_protocol none "
                               "forgets nothing: set request_steps 1 or choose a protocol")

    def _check_cutoffs(self, config, keys: Optional[List[str]] = None) -> None:
        """Every cut-off a full ranking is cut at ranks at most the dataset's items: the run's
        (``utility_topk``, ``forget_topk``, RecBole's ``topk`` and ``valid_metric``), or ``keys``
        (a method's checks such as ``sruga_forget_check``, only where the method uses them). A
        larger one failed after the run folder (and a saved model that then failed every
        request) was written. ``sru_inference_topk`` ranks the target among
        ``sru_inference_neg_num`` negatives: a cut-off past them is a hit by construction (past
        the fewer a forgotten user's unseen items leave, it is reported ``None``:
        ``evaluator.metrics.sampled_hit``)."""
        items = self.data.item_num - 1  # id 0 is padding
        if keys is None:
            cutoffs = [(key, k) for key in ("utility_topk", "forget_topk", "topk") for k in (config[key] or [])]
            cutoffs.append(("valid_metric", cutoff_of(config["valid_metric"])))
            negatives = min(config["sru_inference_neg_num"], items - 1)
            for k in config["sru_inference_topk"] or []:
                if isinstance(k, int) and k > negatives:
                    raise UnlearnError(f"config key 'sru_inference_topk' cuts at {k}, but the target is ranked among "
                                       f"{negatives} negatives only (sru_inference_neg_num): every hit@{k} would be 1")
        else:
            cutoffs = [(key, cutoff_of(config[key])) for key in keys if key in config]
        for key, k in cutoffs:
            if isinstance(k, int) and k > items:
                raise UnlearnError(f"config key '{key}' cuts the ranking at {k}, but {config['dataset']} ranks only "
                                   f"{items} items")

    def _check_model(self) -> None:
        """Build the model once and drop it, so that settings RecBole or torch refuse (heads that
        do not divide the hidden size, an unknown loss type, ...) are one line before a run
        writes anything, not a traceback after. Torch's random state is left as it was."""
        self._check_cutoffs(self.config)
        try:
            with torch.random.fork_rng(devices=[]):
                model = self.config.model_class(self.config, self.data)
        except Exception as e:  # RecBole and torch refuse with ValueError, NotImplementedError, ...
            raise UnlearnError(f"{self.config['model']} cannot be built with these settings: {error_line(e)}") from None
        if getattr(model, "mask_item_length", 1) < 1:  # BERT4Rec: int(mask_ratio x MAX_ITEM_LIST_LENGTH)
            raise UnlearnError(f"mask_ratio {self.config['mask_ratio']} masks no item of a sequence of "
                               f"MAX_ITEM_LIST_LENGTH {self.config['MAX_ITEM_LIST_LENGTH']} (BERT4Rec masks "
                               "int(mask_ratio x MAX_ITEM_LIST_LENGTH) items; its training failed after the run folder "
                               "was written)")

    def _twins(self):
        """With ``audit``: a candidate set drawn by the forget protocol at twice its user share,
        split by users into the forget set F and its held-out twins H (see ``evaluator.audit``);
        returns F, H and the audit's samples of both, which the minimum of users is counted on."""
        config = self.config
        if config["forget"]:
            raise UnlearnError("audit needs held-out twins drawn with the forget set: it runs only with a "
                               "sampled forget set (drop --forget, or set audit False)")
        ratio_key = "sru_forget_ratio" if config["forget_protocol"] == "sru" else "forget_user_ratio"
        if config[ratio_key] > 0.5:
            raise UnlearnError(f"{ratio_key} must be at most 0.5 with audit: True, got {config[ratio_key]}: the audit "
                               "draws its candidates at twice that share of users and deals half of them to the "
                               "held-out twins (a larger ratio was capped at every user without a word)")
        n_users = len(self.data.active_users())
        if int(round(2 * config[ratio_key] * n_users)) == 0:
            raise UnlearnError(f"{ratio_key} {config[ratio_key]:g} of {n_users} users draws none with audit: True (its "
                               f"candidates, twice that share, round to 0 users): raise it")
        doubled = config.override({"forget_user_ratio": min(1.0, 2 * config["forget_user_ratio"]),
                                   "sru_forget_ratio": min(1.0, 2 * config["sru_forget_ratio"])})
        candidates = sample_forget_set(doubled, self.data)
        if not len(candidates):
            raise UnlearnError("audit needs held-out twins drawn with the forget set: forget_protocol "
                               f"{config['forget_protocol']!r} draws none (choose one that samples, or set audit False)")
        forget, twins = split_twins(config, self.data, candidates)
        # the users of the samples it scores: a target without a history once F and H are removed
        # (a user's first item) has none, and users drawn with only such targets counted
        scored = AuditSamples.build(self.data, forget, twins)
        users = (len(np.unique(scored.users[scored.is_member])), len(np.unique(scored.users[~scored.is_member])))
        if min(users) < config["audit_min_users"]:
            raise UnlearnError(f"audit needs at least audit_min_users ({config['audit_min_users']}) users in the forget "
                               f"set and in its held-out twins whose targets the audit scores (a target with a "
                               f"history once both are removed), drew {users[0]} and {users[1]} (of "
                               f"{len(forget.users(self.data))} and {len(twins.users(self.data))} users drawn): its "
                               "interval resamples users (raise the forget ratio, lower audit_min_users, or set audit "
                               "False)")
        return forget, twins, scored

    def check_model(self, method_configs: Sequence) -> None:
        """Raise ``UnlearnError`` if the run's model cannot be trained here, or read or acted on
        as the methods of ``method_configs`` (their configs) need (``trainer.preflight``)."""
        methods = [(METHODS.get(c.method), c) for c in method_configs]
        check_model_trains(self.config, self.data, any(method.reads_representations(c) for method, c in methods),
                           {step: c for method, c in methods for step in method.steps_used(c)})

    def check_method(self, method_config) -> None:
        """Raise ``UnlearnError`` if the method named by ``method_config.method`` cannot run."""
        method = METHODS.get(method_config.method)
        if self.nothing_to_forget and not method.deploys_model:
            raise UnlearnError(f"forget_protocol none forgets nothing, so '{method_config.method}' has nothing to "
                               "do: name a method that saves a model for later requests (sisa, sru, receraser, "
                               "sruga, ...)")
        method.check(method_config, self.data)
        self._check_cutoffs(method_config, [key for key in method.settings_used(method_config)
                                            if key in KEYS and KEYS[key].kind == "metric"])

    def open(self, run_dir: str, console: bool = True) -> None:
        """Log into ``run_dir`` (RecBole's logger; ``console``: on the console too) and build the
        D_raw / D_rem / D_fgt loaders."""
        self.config["checkpoint_dir"] = run_dir
        init_run_logger(self.config, console=console)
        logger = getLogger()
        logger.info(self.config)
        logger.info(self.data)
        if self.data.order_warning:
            logger.warning(self.data.order_warning)
        self.suite = EvaluationSuite(self.config, self.data, self.forget_set)
        logger.info(set_color("forget set", "green") + f": {self.forget_summary()}")

    def forget_summary(self) -> Dict[str, object]:
        fs = self.forget_set
        summary = {
            "source": fs.source,
            "interactions": int(len(fs.requested)),
            "users": int(len(fs.users(self.data))),
        }
        if self.suite is not None:
            summary["forget_samples"] = int(len(self.suite.forget_loader._dataset))
        if self.held_out is not None:
            summary["held_out_twins"] = {"interactions": int(len(self.held_out.requested)),
                                         "users": int(len(self.held_out.users(self.data)))}
        return summary

    def prepare_audit(self, save_dir: Optional[str] = None) -> Optional[dict]:
        """With ``audit``: train the ``audit_references`` reference models (D_raw minus F and
        H, other seeds; reloaded from ``save_dir`` when saved there before), then audit the
        original model. Returns the original's audit (with a shuffled-label check) or ``None``."""
        if not self.config["audit"]:
            return None
        start = time.perf_counter()
        keep = self.forget_set.keep_mask(self.data)
        references: List[torch.nn.Module] = []
        trained, epochs_run, hit_cap, carried = 0, [], [], 0.0
        digests: Dict[str, str] = {}  # {file name: sha256} of the saved references the original is audited with
        for index in range(self.config["audit_references"]):
            seed = self.config["seed"] + AUDIT_SEED_STRIDE * (index + 1)
            config = self.config.override({"seed": seed})
            path = os.path.join(save_dir, f"{AUDIT_REFERENCE_PREFIX}{index}.pth") if save_dir else None
            # its training's cost, saved beside it: a run stopped after it lost that time on resume
            cost_path = path[:-len(".pth")] + ".json" if path else None
            if path and os.path.isfile(path):
                model = new_model(config, self.suite.raw.train.dataset)
                model.load_state_dict(load_checkpoint(path, config["device"]))
                saved_cost = _read_cost(cost_path)
                epochs_run.append(saved_cost.get("epochs_run"))  # None: lent by another grid's cell
                hit_cap.append(saved_cost.get("hit_cap"))  # None: not recorded (saved before it was)
                if saved_cost:  # trained by an earlier, stopped run of this cell
                    trained += 1
                    carried += float(saved_cost["seconds"])
            else:
                reference = train_model(config, split_loaders(config, self.data, keep), tag=f"audit reference {index}")
                model = reference.model
                epochs_run.append(reference.epochs_run)
                hit_cap.append(reference.hit_cap)
                trained += 1
                if path:
                    write_json(cost_path, {"seconds": round(reference.seconds, 3), "epochs_run": reference.epochs_run,
                                           "hit_cap": reference.hit_cap})
                    save_weights(path, model.state_dict())
            if path:
                digests[os.path.basename(path)] = file_sha256(path)
            references.append(model.eval())
        self.audit = MembershipAudit(self.config, self._audit_samples, references)
        result = self.audit.set_original(self.original.model)
        result["shuffled_labels"] = self.audit.shuffled(self.original.model)
        self.audit_cost = {"seconds": round(time.perf_counter() - start + carried, 3), "references": len(references),
                           "references_trained": trained, "references_epochs_run": epochs_run,
                           "references_hit_cap": hit_cap, **({"references_sha256": digests} if digests else {})}
        getLogger().info(set_color("audit", "green") + f" of the original: {result}")
        return result

    def train_original(self) -> dict:
        """Train the single model on D_raw; returns its row."""
        meter = CpuMeter()
        self.original = train_model(self.config, self.suite.raw, tag="original on D_raw")
        return make_row("original", self.suite.evaluate(self.original.model), self.original.seconds,
                        **training_record(self.original, self.config), cpu_meter=meter.result())

    def save_original(self, path: str) -> None:
        save_weights(path, self.original.model.state_dict())

    def load_original(self, path: str, row: dict) -> None:
        """Restore the original model saved by :meth:`save_original` (weights only)."""
        model = new_model(self.config, self.suite.raw.train.dataset)
        model.load_state_dict(load_checkpoint(path, self.config["device"]))
        model.eval()
        self.original = TrainedModel(model, float(row["seconds"]), None, int(row.get("epochs_run", 0)),
                                     row.get("hit_cap"))

    def _method(self, method_config):
        """The unlearning method ``method_config`` configures, on this experiment's data."""
        return METHODS.get(method_config.method)(method_config, self.data, self.suite, self.original)

    def fit_key(self, method_config) -> Optional[str]:
        """The ``fit_key`` of the method ``method_config`` configures (``None``: its fit is
        never shared)."""
        return self._method(method_config).fit_key()

    def run_method(self, method_config, label: Optional[str] = None,
                   fit_cache: Optional[Dict[str, tuple]] = None,
                   went_live: Callable[[str], None] = lambda folder: None) -> Tuple[dict, torch.nn.Module]:
        """Fit the method, forget the experiment's forget set, evaluate; returns (row, model).
        ``went_live`` is told the method's model folder once its forget went live there: after the
        forget, or when the forget or the evaluation after it fails with the folder moved on (a
        failure in the evaluation, or in a later request step, was reported as if the folder were
        as it was; r12trainkill probe).

        With ``fit_cache`` (kept by the caller: a dict, or anything with ``in``, ``[key]`` and
        ``[key] =``, such as the grid runner's ``SharedFits``), a method whose ``fit_key`` matches an
        earlier row's starts from a copy of that row's fitted state instead of training again
        (training only what differs, e.g. its own aggregator); its ``initial_train_seconds`` are
        the earlier fit's with that part replaced, and ``fit_shared_with`` names it."""
        name = method_config.method
        meter = CpuMeter()
        method = self._method(method_config)
        if not self.nothing_to_forget:  # the request file's requests go live queued with the first version
            method.first_requests = self.forget_set.requests or ()
        key = method.fit_key() if fit_cache is not None else None
        extra = {}
        if key is not None and key in fit_cache:
            state, fit_seconds, extra["fit_shared_with"] = fit_cache[key]
            fit_seconds = method.adopt_fit(state, fit_seconds)
        else:
            fit_seconds = method.fit()
            if key is not None:
                fit_cache[key] = (method.fitted_state(), fit_seconds, label or name)
        folder = method.model_dir() if method.deploys_model and not self.nothing_to_forget else None
        fitted = _current_version(folder)
        try:
            row, model = self._forget_and_measure(method, name, label, meter, fit_seconds, extra)
        except Exception:
            if folder and _current_version(folder) != fitted:
                went_live(folder)
            raise
        if folder:
            went_live(folder)
        return row, model

    def _forget_and_measure(self, method, name: str, label: Optional[str], meter: CpuMeter, fit_seconds: float,
                            extra: dict) -> Tuple[dict, torch.nn.Module]:
        """:meth:`run_method` after the fit: the forget, its audit and its row."""
        forget_meter = CpuMeter()  # the row's seconds are the forget's: a slowed forget must not average away
        if self.nothing_to_forget:
            result = method.deployed(self.forget_set)
        elif self.config["request_steps"] > 1 and name != "retrain":
            result, extra["steps"] = self._forget_in_steps(method)
        else:
            result = method.forget(self.forget_set)
        forget_usage = forget_meter.result()
        if fit_seconds:
            extra["initial_train_seconds"] = round(fit_seconds, 3)
        extra.update(result.info)
        extra["forgotten_interactions"] = int(len(result.forget_set))
        kept = self.data.rows_kept_by_count_filters(result.forget_set.rows)
        if len(kept):  # README: what a model folder still depends on (Retrain's training data too)
            extra["kept_by_count_filters"] = int(len(kept))
        if self.audit is not None:
            audit_start = time.perf_counter()
            extra["audit"] = self.audit.report(result.model)
            extra["audit"]["seconds"] = round(time.perf_counter() - audit_start, 3)  # not in the run's audit.seconds
        row = make_row(label or name, self.suite.evaluate(result.model, result.forget_set), result.seconds, **extra)
        row["cpu_meter"] = meter.result()
        if row["cpu_meter"] is not None and forget_usage is not None:
            row["cpu_meter"]["forget_others_share"] = forget_usage["others_share"]
        if label and label != name:
            row["unlearn_method"] = name
        getLogger().info(set_color(f"{label or name} done", "green") + f" in {result.seconds:.1f}s")
        return row, result.model


    # --- repeated requests (``request_steps``) ------------------------------------------
    def request_batches(self) -> List[ForgetSet]:
        """The forget set as ``request_steps`` successive requests: its users shuffled with
        ``forget_seed`` and dealt into that many batches of (nearly) equal size."""
        fs, steps = self.forget_set, self.config["request_steps"]
        users = np.random.default_rng([self.config["forget_seed"], steps]).permutation(fs.users(self.data))
        owner = self.data.log_user
        batches = []
        for k, chosen in enumerate(np.array_split(users, steps), start=1):
            batches.append(ForgetSet(fs.requested[np.isin(owner[fs.requested], chosen)],
                                     source=f"{fs.source} request {k}/{steps}",
                                     targets=fs.targets[np.isin(owner[fs.targets], chosen)]))
        return batches

    def step_references(self) -> List[Tuple[ForgetSet, EvaluationSuite, dict]]:
        """For every step k: the forget set of requests 1..k, its evaluation suite, and a Retrain
        matched to that point (trained on D_raw minus requests 1..k; computed once, shared by
        every method)."""
        if self._steps is None:
            self._steps = []
            rows = np.array([], dtype=np.int64)
            targets = np.array([], dtype=np.int64)
            for k, batch in enumerate(self.request_batches(), start=1):
                rows, targets = np.union1d(rows, batch.requested), np.union1d(targets, batch.targets)
                cumulative = ForgetSet(rows, source=f"{self.forget_set.source} requests 1..{k}", targets=targets)
                suite = EvaluationSuite(self.config, self.data, cumulative)
                start = time.perf_counter()
                retrain = train_model(self.config, suite.rem, tag=f"retrain matched to request {k}")
                seconds = time.perf_counter() - start
                metrics = suite.evaluate(retrain.model, cumulative)
                summary = _step_summary(metrics, seconds, self.audit, retrain.model, cumulative.users(self.data))
                summary.update(training_record(retrain, self.config))
                self._steps.append((cumulative, suite, summary))
        return self._steps

    def _forget_in_steps(self, method) -> Tuple[object, List[dict]]:
        """Apply the forget set to ``method``'s deployed model as successive requests (its own
        ``forget``: the model folder and request path of any single request), measuring after
        each; returns the last result and the per-step records."""
        steps, total, extras, infos = [], 0.0, np.array([], dtype=np.int64), []
        result = None
        batches = self.request_batches()
        for k, (batch, (cumulative, suite, retrain)) in enumerate(zip(batches, self.step_references()), start=1):
            result = method.forget(batch)
            infos.append(result.info)
            total += result.seconds
            extras = np.union1d(extras, result.forget_set.extra)
            applied = cumulative.with_extra(extras)
            record = _step_summary(suite.evaluate(result.model, applied), result.seconds, self.audit, result.model,
                                   cumulative.users(self.data))
            record.update(step=k, users=int(len(batch.users(self.data))), cumulative_seconds=round(total, 3),
                          retrain=retrain)
            gate_step_on_reference(record, retrain)
            steps.append(record)
            getLogger().info(f"request {k}/{len(batches)}: {record}")
        result.forget_set = self.forget_set.with_extra(extras)
        result.seconds = total
        result.info = _info_over_requests(infos, extras)
        return result, steps


def _current_version(folder: Optional[str]) -> Optional[str]:
    """The live version of the model folder ``folder`` (``None``: none, or no folder)."""
    return ModelStore(folder, 0.0).current_version() if folder else None


def _request_file_forget_set(config, dataset) -> ForgetSet:
    """The forget set of the request file ``forget``, carrying its lines (ids as a request run
    gives them), so that a saving method's folder queues them in its ledger before its forget
    (a run killed during the forget left them nowhere) and records them applied after it."""
    path = str(config["forget"])
    _, requests = file_requests(path, dataset, config["max_request_lines"], config["max_request_line_bytes"],
                                strict=True)
    return ForgetSet(np.concatenate([r.rows for r in requests]), source=f"requests:{os.path.basename(path)}",
                     requests=requests)


def _info_over_requests(infos: List[dict], extras: np.ndarray) -> dict:
    """A row's facts over all its requests (``request_steps``), not the last one's: extra
    deletions (all of them), shards and slices retrained (by any request), aggregator seconds
    (summed), the forgets' training (every request's: ``{"steps": [...]}``, whose stages at their
    cap are counted), ``changed`` (some request changed the weights; ``unchanged_steps``: the
    1-based requests that did not, when some did) and an approximate step's facts (``epochs_run``,
    ``eval_seconds`` and ``finetune_epochs`` summed, ``stopped_by`` every reason in order, and each request's own
    record under ``approximate_steps``: its ``history`` and forget Hit@10 before / after,
    measured on that request's samples). Other keys are the last request's."""
    out = dict(infos[-1])
    if isinstance(out.get("approximate"), dict):  # shard_unlearning: each request's shards
        out["approximate_steps"] = [info.get("approximate") for info in infos]
        del out["approximate"]
    if "history" in out:
        per_request = ("epochs_run", "stopped_by", "kept_epoch", "eval_seconds", "history",
                       "forget_hit@10_before", "forget_hit@10_after", "epochs_key", "cap", "finetune_epochs")
        out["approximate_steps"] = [{k: info[k] for k in per_request if k in info} for info in infos]
        for key in ("history", "kept_epoch", "forget_hit@10_before", "forget_hit@10_after"):
            out.pop(key, None)
        out["epochs_run"] = sum(int(info.get("epochs_run") or 0) for info in infos)
        out["eval_seconds"] = round(sum(float(info.get("eval_seconds") or 0.0) for info in infos), 3)
        if any("finetune_epochs" in info for info in infos):
            out["finetune_epochs"] = round(sum(float(info.get("finetune_epochs") or 0.0) for info in infos), 6)
        out["stopped_by"] = "; ".join(dict.fromkeys(str(info.get("stopped_by")) for info in infos))
    if "extra_deleted" in out:
        out["extra_deleted"] = int(len(extras))
    if "shards_retrained" in out:
        out["shards_retrained"] = sorted({shard for info in infos for shard in info.get("shards_retrained") or []})
    if "slices_retrained" in out:
        slices: Dict[str, int] = {}
        for info in infos:
            for shard, stage in (info.get("slices_retrained") or {}).items():
                slices[shard] = min(stage, slices.get(shard, stage))
        out["slices_retrained"] = dict(sorted(slices.items(), key=lambda kv: int(kv[0])))
    if "aggregator_seconds" in out:
        out["aggregator_seconds"] = round(sum(info.get("aggregator_seconds") or 0.0 for info in infos), 3)
    if "forget_training" in out:
        out["forget_training"] = {"steps": [info.get("forget_training") for info in infos]}
    if "changed" in out:
        flags = [info.get("changed", True) for info in infos]
        out["changed"] = any(flags)
        if any(flags) and not all(flags):
            out["unchanged_steps"] = [step for step, flag in enumerate(flags, 1) if not flag]
            out["request_steps"] = len(flags)
        # shards a request that changed others left as they were (shard_unlearning), by any request
        partly = sorted({shard for info in infos for shard in info.get("unchanged_shards") or []})
        out.pop("unchanged_shards", None)
        if partly:
            out["unchanged_shards"] = partly
            out["request_steps"] = len(flags)
    return out


def _step_summary(metrics: Dict[str, Dict[str, float]], seconds: float, audit, model, users: np.ndarray) -> dict:
    """What a repeated-requests table shows for one model state after one request: its audit on the
    members of ``users``, those requested so far (the others are still trained on)."""
    out = {"ndcg@10_rem": metrics["utility_rem"].get("ndcg@10"), "forget_hit@10": metrics["forget"].get("hit@10"),
           "seconds": round(seconds, 3)}
    if audit is not None:
        report = audit.report(model, member_users=users)
        out["audit_auc"] = report.get("auc")
        out["audit_verdict"] = report["verdict"]
        if "member_users" in report:  # no verdict on this step's members: how many users, and why
            out["audit_member_users"] = report["member_users"]
        if report["verdict"] == INCONCLUSIVE:
            out["audit_reason"] = report["reason"]
    return out


def check_results_dir(results_dir: str) -> None:
    """Refuse a ``results_dir`` that is a file or lies below one (``FileExistsError`` after the
    run was set up, before)."""
    path = os.path.abspath(results_dir)
    while path and not os.path.exists(path):
        path = os.path.dirname(path) if os.path.dirname(path) != path else ""
    if path and not os.path.isdir(path):
        raise UnlearnError(f"results_dir {results_dir}: {path} is a file, not a folder")
    dangling = dangling_link_problem(results_dir)
    if dangling:  # exit 1 at the run folder's making (r12docs probe)
        raise UnlearnError(f"results_dir {results_dir}: {dangling}")


def check_results_dir_writable(results_dir: str, name: str) -> None:
    """Refuse a ``results_dir`` this process cannot create and write in (a read-only mount, a name
    too long, no permission), by trying it: a request run writes ``<results_dir>/<name>-.../
    results.json`` after its forgets went live. The try makes a folder of that name's length
    with a ``results.json`` in it, and removes it and every folder it created (on the path as the
    kernel resolves it: ``..`` and links included), so nothing is left."""
    check_results_dir(results_dir)
    try:
        write_trial(results_dir, f"{name}-", "results.json")
    except OSError as e:
        raise UnlearnError(f"results_dir {results_dir} cannot be written ({e.strerror or e}): nothing was "
                           "forgotten") from None


def run_dir_for(results_dir: str, name: str) -> str:
    """A new folder ``<results_dir>/<name>`` (``-1``, ``-2`` ... if taken, by an earlier run or by
    another process between a look and the creation: the creation itself is the test)."""
    os.makedirs(results_dir, exist_ok=True)
    suffix = 0
    while True:
        path = os.path.join(results_dir, f"{name}-{suffix}" if suffix else name)
        try:
            os.mkdir(path)
            return path
        except FileNotFoundError:  # removed meanwhile (another process's empty try of it): make it again
            os.makedirs(results_dir, exist_ok=True)
            continue
        except FileExistsError:
            suffix += 1


def _read_cost(path: Optional[str]) -> dict:
    """The saved training cost of an audit reference (``{"seconds", "epochs_run"}``), or ``{}``
    where none was saved (a reference lent by another grid's cell, or saved by earlier code)."""
    if not path or not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            cost = json.load(f)
    except (OSError, ValueError):
        return {}
    return cost if isinstance(cost, dict) and isinstance(cost.get("seconds"), (int, float)) else {}
