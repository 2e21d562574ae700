"""Deployment: the model folder (versions, manifest, lock), the audit log, request files, the
ledger, the batcher and request streams. Every forget of a stored model goes through
:func:`recbole_unlearn.serving.apply.apply_forget`."""
from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
from recbole_unlearn.serving.apply import AppliedForget, ForgetRequest, apply_forget
from recbole_unlearn.serving.audit import AuditLog, verify_model
from recbole_unlearn.serving.store import ModelStore, open_store
from recbole_unlearn.serving.stream import stream_request_file, watch_request_folder

__all__ = ["AppliedForget", "ForgetRequest", "apply_forget", "AuditLog", "verify_model", 
           "ModelStore", "open_store", "stream_request_file", "watch_request_folder"]
