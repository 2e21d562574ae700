from recbole_unlearn.config.configurator import UnlearnConfig, method_names

__all__ = ["UnlearnConfig", "method_names"]
