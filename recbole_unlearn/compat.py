"""Compatibility fixes applied when recbole_unlearn is imported.

RecBole 1.2.1's metric code uses NumPy aliases that NumPy >= 1.24 removed (``np.float``,
``np.int``, ...). RecBole restores them inside ``Config.__init__`` only, so evaluating a
model in a process that never built a ``Config`` (a saved model loaded for a request, a unit
test) fails with ``AttributeError: module 'numpy' has no attribute 'float'``. We restore the
same aliases, to the same targets, once at import.
"""
import numpy as np

_ALIASES = {
    "bool": np.bool_,
    "int": np.int_,
    "float": np.float64,
    "complex": np.complex128,
    "object": np.object_,
    "str": np.str_,
    "long": np.int_,
    "unicode": np.str_,
}


def restore_numpy_aliases() -> None:
    for name, target in _ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, target)


restore_numpy_aliases()
