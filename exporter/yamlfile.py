"""The one YAML reader: config, tasks and web config files are all read, and refused, the same way.

A safe loader (no arbitrary objects) that also refuses duplicate keys, since two entries for one
option or user must not silently merge. Every failure is a ``YamlFileError`` whose message is one
line naming the file and, where PyYAML knows it, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlFileError(ValueError):
    """A YAML file that cannot be read or parsed: ``"<what> <path>: <reason>"``, one line."""

    def __init__(self, what: str, path: Path, reason: str) -> None:
        super().__init__(f"{what} {path}: {reason}")
        self.reason = reason


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path, what: str) -> Any:
    """The document in ``path`` (None when empty); ``what`` names the file in errors ("tasks file")."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise YamlFileError(what, path, f"cannot read the file: {reason}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(getattr(exc, "problem", None) or type(exc).__name__).split())
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise YamlFileError(what, path, f"not valid YAML{at}: {problem}") from None
    except Exception as exc:  # PyYAML's constructors also raise ValueError, IndexError, RecursionError...
        raise YamlFileError(what, path, f"not valid YAML: {type(exc).__name__}") from None


def top_level_key_lines(path: Path) -> dict[str, int]:
    """Line numbers (1-based) of the keys of a top-level mapping, for messages; {} for anything else.

    Call after ``read_yaml`` accepted the file (parse errors are reported there).
    """
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except Exception:  # read_yaml already reported what is wrong with the file
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}
