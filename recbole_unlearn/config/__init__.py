from recbole_unlearn.config.configurator import UnlearnConfig, default_setting, method_names

__all__ = ["UnlearnConfig", "default_setting", "method_names"]
