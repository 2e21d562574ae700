"""YAML mappings that refuse a key written twice.

PyYAML keeps the last of two equal keys without a word, so a config file that sets ``epochs``
twice, or a grid that lists a method label twice, silently runs something else than what one of
the two lines says (the YAML spec itself requires keys to be unique).
"""
import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeys:
    """Mixin for a PyYAML loader class: a mapping with a scalar key written twice is a
    ``ComposerError`` whose mark is the second key (``utils.errors.yaml_problem`` turns it into
    `` (line L, column C): key 'k' is written twice``). Checked as the parser composes each
    mapping, before merge keys (``<<: *anchor``) are expanded, so a key a merge brings in and the
    mapping sets again is an override, as YAML means it, not a duplicate."""

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key = (key_node.tag, key_node.value)  # resolved tag: 1 (int) and "1" (str) differ
            if key in seen:
                raise yaml.composer.ComposerError(None, None, f"key {key_node.value!r} is written twice",
                                                  key_node.start_mark)
            seen.add(key)
        return node


class UniqueKeySafeLoader(UniqueKeys, yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice."""
