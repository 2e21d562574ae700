"""Compatibility fixes applied when recbole_unlearn is imported.

NumPy aliases. RecBole 1.2.1's metric code uses NumPy aliases that NumPy >= 1.24 removed (``np.float``,
``np.int``, ...). RecBole restores them inside ``Config.__init__`` only, so evaluating a
model in a process that never built a ``Config`` (a saved model loaded for a request, a unit
test) fails with ``AttributeError: module 'numpy' has no attribute 'float'``. We restore the
same aliases, to the same targets, once at import. RecBole's own restoring code reads
``np.float_``, ``np.complex_`` and ``np.unicode_``, which NumPy 2.0 removed, so under NumPy 2
(the pinned stack keeps NumPy 1.x, but a user's CUDA image may ship 2.x) every ``Config``
fails with ``AttributeError: `np.float_` was removed``; we restore those three as well.

Autograd anomaly detection. RecBole 1.2.1's ``recbole/model/sequential_recommender/sine.py``
calls ``torch.autograd.set_detect_anomaly(True)`` at module level, and importing any RecBole
sequential model (``get_model``, RecBole's ``Config``) imports that module. From then on every
forward operation records a Python stack trace, for every model, not only SINE: on our CPU
machine a SASRec or BERT4Rec training step takes 1.9 x, a GRU4Rec step 3.1 x as long
(``benchmarks/anomaly_overhead.py``, results in ``docs/benchmarks.md``). Anomaly detection is a debugging aid, so we import that module now
(its side effect happens once) and switch detection off; ``UnlearnConfig`` then applies the
``detect_anomaly`` config key (default ``False``; ``True`` to debug NaN gradients).
"""
import warnings

import numpy as np
import torch

_ALIASES = {
    "bool": np.bool_,
    "int": np.int_,
    "float": np.float64,
    "complex": np.complex128,
    "object": np.object_,
    "str": np.str_,
    "long": np.int_,
    "unicode": np.str_,
    # read by RecBole's Config.compatibility_settings; removed in NumPy 2.0
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
}


def restore_numpy_aliases() -> None:
    for name, target in _ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, target)


restore_numpy_aliases()


def import_recbole_models() -> None:
    """Import RecBole's sequential models without the compiler's warnings about their source.
    RecBole 1.2.1's ``dien.py`` has docstrings with invalid escapes (``'\\p'``); where its bytecode
    is not cached (an install without compiled files, ``PYTHONDONTWRITEBYTECODE``), Python 3.12
    prints a ``SyntaxWarning`` (3.11: a ``DeprecationWarning``) with source lines on stderr at
    import, which turned our one-line ``error:`` into five lines on a CUDA image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import recbole.model.sequential_recommender  # noqa: F401


def set_anomaly_detection(enabled: bool) -> None:
    """Set torch's global autograd anomaly detection after RecBole's sequential models (and the
    ``set_detect_anomaly(True)`` in their ``sine.py``) have been imported."""
    import_recbole_models()  # runs sine.py's module-level call now

    torch.autograd.set_detect_anomaly(bool(enabled))


set_anomaly_detection(False)
