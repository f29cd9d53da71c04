"""Reading a config file's YAML, with limits that keep parsing small and fast.

YAML's anchors and aliases let a few hundred bytes stand for billions of values (the "billion
laughs" alias bomb: each level lists the previous one nine times). The parser itself shares the
aliased objects, but everything that walks the parsed config afterwards (environment
substitution, validation, deployment ids) sees the tree fully expanded, so such a file would
take hours and more memory than the machine has before any error. Limits are therefore
checked while the file is composed, before anything walks it:

- `MAX_FILE_BYTES`: the file's size (4 MiB);
- `MAX_NODES`: keys and values in the document, every alias counted as all the keys and
  values it repeats (200,000);
- `MAX_DEPTH`: levels of nesting (64);
- an alias inside the value it refers to (a recursive structure) is refused outright.

Real configs stay far below: a gateway with a thousand deployments has some 30,000 keys and
values at a depth under 10, in a few hundred kilobytes. At the limit, a config still loads in
well under a second and a few megabytes. A file beyond a limit is a `ConfigError` naming the
limit and the line where it was crossed. Keys given twice in one mapping are refused as well,
as YAML would otherwise keep the last one silently.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from turnout.errors import ConfigError

#: Largest config file read, in bytes.
MAX_FILE_BYTES: Final = 4 * 1024 * 1024
#: Most keys and values in one config, counting each alias as all it stands for.
MAX_NODES: Final = 200_000
#: Deepest nesting of mappings and lists in one config.
MAX_DEPTH: Final = 64


def read_yaml(name: str) -> Any:
    """The parsed content of the YAML file `name`; any problem is a `ConfigError` naming it."""
    try:
        with open(name, "rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{name}: larger than {MAX_FILE_BYTES} bytes, the most turnout reads as a config"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> Any:
    """`text` parsed within the limits; `name` is where errors say it came from."""
    try:
        return yaml.load(text, Loader=_Loader)
    except _LimitError as exc:
        raise ConfigError(f"{_where(name, exc)}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or "invalid syntax"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise ConfigError(f"{_where(name, exc)}: invalid YAML: {problem}{context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {exc}") from None


class _LimitError(ComposerError):
    """The document goes beyond one of the limits (not a syntax error: the YAML may be valid)."""

    def __init__(self, problem: str, event: yaml.Event) -> None:
        mark = event.start_mark if isinstance(event.start_mark, yaml.Mark) else None
        super().__init__(None, None, problem, mark)


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, counting values as it composes and refusing duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        #: Values composed so far, each alias counted as the size of the value it repeats.
        self._nodes = 0
        self._depth = 0
        #: Anchor -> size of its value, once the value is complete.
        self._sizes: dict[str, int] = {}
        #: Anchors whose values are still being composed (an alias to one is recursive).
        self._open: set[str] = set()

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.check_event()  # parses the next event into current_event
        event: yaml.NodeEvent = self.current_event
        anchor = event.anchor
        if isinstance(event, yaml.AliasEvent):
            if anchor in self._open:
                raise _LimitError(
                    f"alias *{anchor} is inside the value it refers to; "
                    "turnout refuses recursive structures",
                    event,
                )
            # An undefined alias has no size: the composer reports it.
            self._count(self._sizes.get(anchor or "", 0), event)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _LimitError(
                f"nested more than {MAX_DEPTH} levels deep, the most turnout reads in a config",
                event,
            )
        start = self._nodes
        self._count(1, event)
        if anchor is not None:
            self._open.add(anchor)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self._nodes - start
        return node

    def _count(self, nodes: int, event: yaml.Event) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            raise _LimitError(
                f"the config has more than {MAX_NODES} values once its aliases are expanded "
                "(a YAML alias bomb?); turnout refuses configs beyond this limit",
                event,
            )

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _where(name: str, error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    return f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name


__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "parse_yaml", "read_yaml"]
