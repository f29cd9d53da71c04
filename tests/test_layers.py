"""The package's shape, checked from the source: layers, no import cycles, a size budget.

Every import counts: module level, inside functions, and under ``TYPE_CHECKING``. A cycle of
type-only imports still ties the modules together for whoever reads or moves them.
"""

from __future__ import annotations

import ast
import statistics
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "turnout"

#: Lowest first. A module imports only from its own layer or lower ones.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("turnout.errors", "turnout.secrets", "turnout.clock", "turnout.tokens", "turnout.processes"),
    ("turnout.wire",),
    ("turnout.config",),
    ("turnout.pricing", "turnout.health", "turnout.redisio"),
    ("turnout.state", "turnout.observe", "turnout.upstream", "turnout.governance"),
    ("turnout.providers",),
    ("turnout.router",),
    ("turnout.gateway", "turnout.cli", "turnout.demo", "turnout.testing", "turnout"),
)

#: Pairs inside one layer that must stay apart (importer prefix, imported prefix).
APART: tuple[tuple[str, str], ...] = (
    ("turnout.state", "turnout.observe"),
    ("turnout.state", "turnout.upstream"),
    ("turnout.observe", "turnout.state"),
    ("turnout.upstream", "turnout.state"),
    ("turnout.upstream", "turnout.observe"),
    # Health rules read config and nothing priced: the same rules run in every store.
    ("turnout.health", "turnout.pricing"),
    # The Redis plumbing knows no health rules and no prices.
    ("turnout.redisio", "turnout.health"),
    ("turnout.redisio", "turnout.pricing"),
    # Governance (keys, budgets, spend) stands beside routing state: neither knows the other,
    # and governance reads no health, events or transport.
    ("turnout.governance", "turnout.health"),
    ("turnout.governance", "turnout.state"),
    ("turnout.governance", "turnout.observe"),
    ("turnout.governance", "turnout.upstream"),
    ("turnout.state", "turnout.governance"),
    ("turnout.observe", "turnout.governance"),
    ("turnout.upstream", "turnout.governance"),
)

#: Provider families: none imports another, except Azure, which speaks the OpenAI family's API,
#: and Bedrock, whose Claude models speak Anthropic's Messages API.
FAMILIES = ("openai", "azure", "anthropic", "gemini", "bedrock")
FAMILY_ALLOWED = {("azure", "openai"), ("bedrock", "anthropic")}

#: Lines per module: the median and the largest allowed.
MEDIAN_LINES = 200
MAX_LINES = 800


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module a dotted import names (a package's submodule, else the package itself)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "turnout" or name.startswith("turnout."):
                target = _resolve(name)
                if target is not None and target != module:
                    yield target


GRAPH = {module: set(_imports(module, path)) for module, path in MODULES.items()}


def _layer(module: str) -> int:
    best = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                best = max(best, (len(prefix), index))
    assert best[1] >= 0, f"{module} belongs to no layer"
    return best[1]


def _family(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] == "providers" and parts[2] in FAMILIES:
        return parts[2]
    return None


def wrong_way_imports() -> set[tuple[str, str]]:
    """(importer, imported) pairs that break a rule."""
    wrong = set()
    for module, targets in GRAPH.items():
        for target in targets:
            if _layer(target) > _layer(module):
                wrong.add((module, target))
            if any(
                (module == a or module.startswith(a + "."))
                and (target == b or target.startswith(b + "."))
                for a, b in APART
            ):
                wrong.add((module, target))
            testing = target == "turnout.testing" or target.startswith("turnout.testing.")
            if testing and not module.startswith("turnout.testing"):
                wrong.add((module, target))
            mine, theirs = _family(module), _family(target)
            if mine and theirs and mine != theirs and (mine, theirs) not in FAMILY_ALLOWED:
                wrong.add((module, target))
    return wrong


def cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(GRAPH):
        if root in index:
            continue
        work = [(root, iter(sorted(GRAPH[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_graph_sees_every_kind_of_import() -> None:
    # Guards the walker itself: function-local and TYPE_CHECKING imports are counted.
    assert "turnout.router.router" in GRAPH["turnout"]
    assert any(GRAPH.values())


def test_no_import_cycle_of_any_kind() -> None:
    assert cycles() == []


def test_imports_point_down_the_layers() -> None:
    assert sorted(wrong_way_imports()) == []


def test_modules_keep_to_the_size_budget() -> None:
    sizes = {module: len(path.read_text().splitlines()) for module, path in MODULES.items()}
    too_big = {module: lines for module, lines in sizes.items() if lines > MAX_LINES}
    assert too_big == {}
    assert statistics.median(sizes.values()) <= MEDIAN_LINES


def _modules_importing(prefix: str) -> set[str]:
    found = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if any(name == prefix or name.startswith(prefix + ".") for name in names):
                found.add(module)
    return found


def test_only_the_transport_and_the_gateway_speak_http() -> None:
    # The upstream client lives behind the transport; the web server behind the gateway.
    speakers = _modules_importing("aiohttp")
    assert {m for m in speakers if not m.startswith("turnout.gateway")} == {
        "turnout.upstream.aiohttp"
    }


def test_secrets_are_revealed_only_where_they_are_sent_or_checked() -> None:
    # Adapters put credentials on the wire and the gateway compares the caller's key; provider
    # settings reveal theirs only into the one-way digest a deployment's id is derived from
    # (so ids stay what they were when those settings were plain params). Nothing else ever
    # holds a secret in the clear.
    revealing = {
        module
        for module, path in MODULES.items()
        if ".reveal()" in path.read_text() and module != "turnout.secrets"
    }
    # The Redis link hands the state backend's password to the Redis client alone; the
    # governance store hands the database's password to its driver alone, and keys its digests
    # of virtual keys with the pepper.
    allowed = {
        "turnout.gateway.auth",
        "turnout.config.providers",
        "turnout.redisio.link",
        "turnout.governance.sql.engine",
        "turnout.governance.keys",
    }
    assert {m for m in revealing if not m.startswith("turnout.providers.")} <= allowed


def _package(module: str) -> str:
    """The unit drawn in the graph: the layer prefix a module falls under."""
    best = module
    for prefixes in LAYERS:
        for prefix in prefixes:
            if prefix != "turnout" and (module == prefix or module.startswith(prefix + ".")):
                best = prefix
    return best.removeprefix("turnout.") or "turnout"


def draw() -> str:
    """The import graph between packages, in Graphviz's DOT, one rank per layer."""
    lines = ["digraph turnout {", "  rankdir=BT;", "  node [shape=box];"]
    for index, prefixes in enumerate(LAYERS):
        names = " ".join(f'"{p.removeprefix("turnout.") or "turnout"}"' for p in prefixes)
        lines.append(f"  {{ rank=same; {names} }}  // layer {index + 1}")
    edges = {
        (_package(module), _package(target))
        for module, targets in GRAPH.items()
        for target in targets
        if _package(module) != _package(target)
    }
    lines += [f'  "{a}" -> "{b}";' for a, b in sorted(edges)]
    lines.append("}")
    return "\n".join(lines)


if __name__ == "__main__":
    # `python tests/test_layers.py | dot -Tsvg > layers.svg` draws the graph the tests check.
    print(draw())
