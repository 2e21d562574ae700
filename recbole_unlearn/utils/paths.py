"""Where recbole_unlearn's YAML defaults live, installed or run from a source checkout."""
import os
from typing import Optional

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def properties_dir() -> str:
    """The ``properties/`` folder.

    ``pip install .`` installs it as ``recbole_unlearn/properties`` (see ``setup.py``); in a
    source checkout (or an editable install) it is the repository's top-level ``properties/``.
    """
    candidates = [
        os.path.join(_PACKAGE_DIR, "properties"),
        os.path.join(os.path.dirname(_PACKAGE_DIR), "properties"),
    ]
    try:  # editable installs map the package name onto the source folder
        import importlib.util

        spec = importlib.util.find_spec("recbole_unlearn.properties")
        if spec is not None and spec.submodule_search_locations:
            candidates.extend(spec.submodule_search_locations)
    except (ImportError, ValueError):
        pass
    for path in candidates:
        if os.path.isfile(os.path.join(path, "overall.yaml")):
            return path
    raise FileNotFoundError(
        "recbole_unlearn's properties/overall.yaml was not found; reinstall the package"
    )


def property_file(*parts: str) -> Optional[str]:
    """Path of ``properties/<parts>`` if that file exists, else ``None``."""
    path = os.path.join(properties_dir(), *parts)
    return path if os.path.isfile(path) else None
