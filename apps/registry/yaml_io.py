"""Every YAML document the registry reads or writes (descriptors, project info, MLflow files, the members
of a STAMM zip): loaded with bounded work and JSON-safe values, dumped in STAMM's layout.

``DescriptorError`` is the one error a document the registry cannot accept raises, whether it failed as
YAML here or as a descriptor in ``descriptors``: every problem as ``path: message``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml


class DescriptorError(ValueError):
    """A descriptor that cannot be accepted; ``errors`` lists every problem as ``path: message``."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


#: Largest YAML document read (descriptor, project info, a file inside a STAMM zip); STAMM's are a few KiB.
MAX_YAML_BYTES = 256 * 1024
#: Most nodes a document may hold once its aliases are expanded. Aliases let 600 bytes stand for 10⁹ nodes
#: (the "billion laughs"); the largest real descriptor has a few hundred.
MAX_YAML_NODES = 20_000
#: Deepest nesting accepted (a real descriptor nests five levels).
MAX_YAML_DEPTH = 50


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that keeps dates and timestamps as text (the stored descriptor stays JSON-safe) and
    refuses, while composing, a document whose alias expansion or nesting goes past the bounds above.

    Composing shares an anchored node wherever it is aliased, so memory stays small; it is expanding
    the result into plain data that explodes. So each node's expanded size (itself plus its children's
    expanded sizes, an alias counting as the whole anchored node) is summed as the tree is built, and
    the document is refused as soon as one node stands for more than ``MAX_YAML_NODES``.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _TooLarge(f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = self._expanded.get(id(node))
        if size is None:
            size = 1
            if isinstance(node, yaml.SequenceNode):
                size += sum(self._expanded.get(id(child), 1) for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                size += sum(self._expanded.get(id(k), 1) + self._expanded.get(id(v), 1) for k, v in node.value)
            self._expanded[id(node)] = size
        if size > MAX_YAML_NODES:
            raise _TooLarge(
                f"expands to more than {MAX_YAML_NODES} values (aliases repeating aliases?)", node.start_mark
            )
        return node


_BoundedLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_FLOW_BRACKETS = re.compile(r"[\[\]{}\n]")


def _deep_flow_line(text: str) -> int | None:
    """The line where ``[``/``{`` brackets first nest deeper than ``MAX_YAML_DEPTH``, or None.

    Checked before parsing because PyYAML's scanner, looking ahead for keys, spends seconds on a run of
    unclosed brackets before the composer's depth check could refuse it. Brackets inside quoted strings
    count too: a real document never nests fifty of them.
    """
    depth, line = 0, 1
    for match in _FLOW_BRACKETS.finditer(text):
        char = match.group()
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return line
        else:
            depth = max(depth - 1, 0)
    return None


class _TooLarge(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def load_yaml(text: str | bytes) -> Any:
    """Decode YAML safely: no arbitrary objects, dates kept as strings, and bounded work (at most
    ``MAX_YAML_BYTES``, ``MAX_YAML_NODES`` once aliases are expanded, ``MAX_YAML_DEPTH`` levels), so
    any document answers within a second. Raises DescriptorError."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_YAML_BYTES:
        raise DescriptorError([f"<yaml>: {size} bytes; a YAML document may have at most {MAX_YAML_BYTES}"])
    line = _deep_flow_line(text if isinstance(text, str) else text.decode("utf-8", errors="replace"))
    if line:
        raise DescriptorError([f"<yaml>: not valid YAML at line {line}: nested deeper than {MAX_YAML_DEPTH} levels"])
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DescriptorError([f"<yaml>: not valid YAML{where}: {problem}"]) from exc
    return json_safe(data)


def json_safe(value: Any) -> Any:
    """Non-finite floats become their YAML spelling; keys become strings; anything else stays."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def dump_yaml(data: Any) -> str:
    """YAML text keeping key order (the STAMM layout), block style, unicode as is."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
