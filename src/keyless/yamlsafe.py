"""Every YAML document keyless reads, loaded with bounds (size, nodes, aliases, depth).

PyYAML's ``safe_load`` builds no arbitrary objects, but it bounds nothing: ten nested anchors of
ten aliases each (``&b [*a, *a, ...]``) are 500 bytes of text and 10^10 nodes to whatever walks the
result, and PyYAML composes nested collections recursively, so ten thousand ``[`` end in a
``RecursionError``. Here the document is composed into PyYAML's node graph (aliases stay shared
references there, so this costs what the text costs), with the nesting depth and the alias uses
counted as it is composed; then the size and depth the graph stands for with every alias expanded
are computed once per distinct node (memoised, so a bomb costs its text, not its expansion); only
a graph within every bound is constructed into Python objects. A refusal is one line naming the
file, the line and the limit.

libyaml (PyYAML's ``CParser``) scans and parses when PyYAML has it: the pure-Python scanner's
simple-key bookkeeping costs a pass over every open flow level per token (a megabyte of ``[[...]]``
took 88 s). The composing is PyYAML's own Python ``Composer``, under the counting ``compose_node``
below: ``CSafeLoader`` would compose in C, where no bound can be checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from keyless import limits
from keyless.errors import KeylessError, UsageError

__all__ = ["YamlLimits", "load_yaml_file", "load_yaml_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class YamlLimits:
    """The bounds one load enforces; production uses the defaults from ``keyless.limits``."""

    max_bytes: int = limits.YAML_MAX_BYTES
    max_nodes: int = limits.YAML_MAX_NODES
    max_aliases: int = limits.YAML_MAX_ALIASES
    max_depth: int = limits.YAML_MAX_DEPTH


#: Builds the error a refusal raises from its one-line message (a caller's own ``UsageError``
#: subclass, so that its ``kind`` stays its own).
ErrorFactory = Callable[..., KeylessError]


class _Refused(Exception):
    """A bound was crossed while composing; carries the line (1-based) and what was crossed."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


def _too_large(source: str, bounds: YamlLimits) -> str:
    return f"{source} is larger than {bounds.max_bytes:,} bytes (limit YAML_MAX_BYTES); shorten it"


def _too_deep(bounds: YamlLimits) -> str:
    return f"nesting deeper than {bounds.max_depth} levels (limit YAML_MAX_DEPTH); nest less deeply"


def _line(node_or_event: Any) -> int:
    mark = getattr(node_or_event, "start_mark", None)
    return int(mark.line) + 1 if mark is not None else 0


if yaml.__with_libyaml__:
    from yaml._yaml import CParser as _Parser
else:  # pragma: no cover - PyYAML built without libyaml: its pure-Python reader and parser

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class _BoundedLoader(Composer, _Parser, SafeConstructor, Resolver):
    """PyYAML's safe loading, with libyaml's parser and a composer that counts alias uses and
    distinct nodes and refuses nesting past ``max_depth`` before it recurses."""

    def __init__(self, stream: str, bounds: YamlLimits) -> None:
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._bounds = bounds
        self._depth = 0
        self._aliases = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self._bounds.max_aliases:
                raise _Refused(
                    _line(self.peek_event()),
                    f"more than {self._bounds.max_aliases:,} alias uses (limit YAML_MAX_ALIASES);"
                    " use fewer aliases",
                )
            return super().compose_node(parent, index)
        self._nodes += 1
        if self._nodes > self._bounds.max_nodes:
            raise _Refused(
                _line(self.peek_event()),
                f"more than {self._bounds.max_nodes:,} nodes (limit YAML_MAX_NODES); shorten it",
            )
        # Counted before PyYAML recurses into the collection, so a deep document stops here, at
        # the first level past the bound, long before Python's recursion limit.
        self._depth += 1
        try:
            if self._depth > self._bounds.max_depth:
                raise _Refused(_line(self.peek_event()), _too_deep(self._bounds))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass(kw_only=True)
class YamlWork:
    """The checking work one document cost, for tests that bound what hostile text can cause:
    ``listings`` counts how often a node's children were listed (twice per distinct node)."""

    listings: int = 0


def _children(node: Node, work: YamlWork) -> list[Node]:
    work.listings += 1
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expanded(root: Node, bounds: YamlLimits, work: YamlWork | None = None) -> None:
    """Refuse a graph that, aliases expanded, has more than ``max_nodes`` nodes, nests deeper than
    ``max_depth`` or refers to itself. Iterative, and each distinct node is visited once."""
    work = work or YamlWork()
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node, work)
            size[key] = 1 + sum(size[id(child)] for child in children)
            height[key] = 1 + max((height[id(child)] for child in children), default=0)
            entered.discard(key)
            if size[key] > bounds.max_nodes:
                raise _Refused(
                    _line(node),
                    f"more than {bounds.max_nodes:,} nodes with aliases expanded"
                    " (limit YAML_MAX_NODES); repeat less",
                )
            if height[key] > bounds.max_depth:
                raise _Refused(
                    _line(node),
                    f"nesting deeper than {bounds.max_depth} levels with aliases expanded"
                    " (limit YAML_MAX_DEPTH); nest less deeply",
                )
            continue
        if key in size:
            continue
        if key in entered:
            # Reached again before it was finished: the node contains an alias of itself.
            raise _Refused(
                _line(node),
                "an anchor contains an alias of itself, which never ends; remove that alias",
            )
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node, work) if id(child) not in size)


def load_yaml_text(
    text: str,
    *,
    source: str,
    bounds: YamlLimits | None = None,
    error: ErrorFactory = UsageError,
    work: YamlWork | None = None,
) -> Any:
    """The one document in ``text`` as Python objects (``None`` for an empty document), or
    ``error(message)`` naming ``source``, the line and the bound or syntax problem. ``work``, when
    given, is filled in with what the checking cost."""
    bounds = bounds or YamlLimits()
    if (
        len(text) > bounds.max_bytes
        or len(text.encode("utf-8", "surrogatepass")) > bounds.max_bytes
    ):
        raise error(_too_large(source, bounds))
    loader: _BoundedLoader | None = None
    try:
        # PyYAML's reader checks the whole text for unprintable characters here already.
        loader = _BoundedLoader(text, bounds)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded(node, bounds, work or YamlWork())
        return loader.construct_document(node)
    except _Refused as refused:
        raise error(f"{source} line {refused.line}: {refused.what}") from None
    except yaml.reader.ReaderError as exc:
        raise error(
            f"{source} is not valid YAML (character {exc.position}): {exc.reason}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        if problem == "exceeded maximum nesting depth" and mark is not None:
            # libyaml's own bound (1000 levels), met while it scans ahead of the composer: past
            # ours too, so said the way ours is.
            raise error(f"{source} line {mark.line + 1}: {_too_deep(bounds)}") from None
        raise error(f"{source} is not valid YAML{where}: {problem}") from None
    except (ValueError, OverflowError) as exc:
        # A scalar PyYAML's resolver typed but cannot build: a timestamp such as 2024-13-45, an
        # integer past Python's 4300-digit conversion limit.
        raise error(f"{source} has a value YAML cannot represent: {type(exc).__name__}") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_file(
    path: Path,
    *,
    source: str | None = None,
    bounds: YamlLimits | None = None,
    error: ErrorFactory = UsageError,
) -> Any:
    """``load_yaml_text`` of a UTF-8 file, reading at most ``max_bytes`` + 1 bytes of it."""
    bounds = bounds or YamlLimits()
    label = source or str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(bounds.max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {label}: {exc.strerror or exc}") from None
    if len(data) > bounds.max_bytes:
        raise error(_too_large(label, bounds))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{label} is not UTF-8 text") from None
    return load_yaml_text(text, source=label, bounds=bounds, error=error)
