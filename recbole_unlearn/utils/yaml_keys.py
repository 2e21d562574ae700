"""YAML mappings that refuse a key written twice.

PyYAML keeps the last of two equal keys without a word, so a config file that sets ``epochs``
twice, or a grid that lists a method label twice, silently runs something else than what one of
the two lines says (the YAML spec itself requires keys to be unique).
"""
import yaml


class UniqueKeys:
    """Mixin for a PyYAML loader class: a mapping with a key written twice is a
    ``ConstructorError`` whose mark is the second key (``utils.errors.yaml_problem`` turns it
    into `` (line L, column C): key 'k' is written twice``)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    written_before = key in seen
                except TypeError:  # an unhashable key: the constructor's own error says so
                    break
                if written_before:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is written twice",
                                                            key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class UniqueKeySafeLoader(UniqueKeys, yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice."""
