"""The "needs" probe: definitions the code at the cursor can reach and is likely to use next.

Similar code is what the dense and lexical probes find; what a completion most often lacks is the
signature of the function, class or constant it is about to call, defined in another file, before
its name is even typed. This probe answers from the repository symbol graph (graph.py) and the
buffer as it is now:

- the names the file imports (resolved to files of the repository, re-exports followed), the
  members of modules it imports whole, the names of its own Go or Java package, and what star
  imports and `#include`s bring;
- at a receiver (`mod.`, `Cls.`, `self.`, `this.`, `x.` where `x` was annotated or constructed
  with a known class or iterates a typed collection, `pkg::`, `crate::a::`, `f(x).` through the
  declared return type of `f`), that receiver's members first, with its bases (and a Rust type's
  implemented traits), and for `self.`/`this.` the enclosing class's;
- each ranked by how near the cursor and how recently it is mentioned; a receiver's members that
  nothing near mentions by how much the repository uses them.

Functions and constants are rendered as signatures, classes, structs, traits and interfaces as
outlines (header, fields, constructor and method signatures), so that many fit a small budget.
Work is bounded: re-export chains are followed `MAX_DEPTH` deep and `MAX_FANOUT` wide, outlines
and the number of results are capped.
"""

from __future__ import annotations

import logging
import math
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .graph import Definition, FileGraph, Import, extract
from .resolve import ModuleResolver, Target

log = logging.getLogger(__name__)

MAX_DEPTH = 6  # re-export hops followed to find where a name is defined
MAX_FANOUT = 24  # star imports followed from one file
MAX_UNITS = 160  # signatures and outlines offered for one cursor (the budget takes what fits)
MAX_OUTLINE_MEMBERS = 40
MENTION_WINDOW_LINES = 240  # mentions this far from the cursor (a quarter of it below) are not counted
MAX_SIBLINGS = 64  # constants declared together that one mention of them lifts
OUTLINE_PART_MEMBERS = 12  # a larger class's outline continues in further parts, ranked lower

USAGE_WEIGHT = 0.3  # times log(1 + chunks using the name): among a receiver's members, the much-used first
HINT_WEIGHT = 1.5  # a definition whose name's words all appear just before the cursor gains this
RECEIVER_BASE = 100.0  # the score of the members of the receiver at the cursor: above any other

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Where a local's type shows: `x: Foo`, `x = Foo(`, `x := &pkg.Foo{`, `let x = Foo::new(`, `Foo x =`.
_ANNOTATED = re.compile(r"\b([A-Za-z_]\w*)\s*:\s*(?:&\s*(?:mut\s+)?)?((?:[A-Za-z_]\w*(?:\.|::))*[A-Z]\w*)")
_CONSTRUCTED = re.compile(
    r"\b([A-Za-z_]\w*)\s*(?::=|=)\s*(?:new\s+|&)?((?:[A-Za-z_]\w*(?:\.|::))*[A-Z]\w*)\s*(?:\(|\{|::|<)"
)
_DECLARED = re.compile(
    r"\b((?:[A-Za-z_]\w*(?:\.|::))*[A-Z]\w*)(?:<[^<>;()]*>)?\s*[*&]?\s+([a-z_]\w*)\s*[=;,)]"
)
_GO_PARAM = re.compile(r"\b([a-z_]\w*)\s+\*?((?:[A-Za-z_]\w*\.)?[A-Z]\w*)\s*[,)]")
_INSTANCE = re.compile(
    r"^[^=\n]*?(?::\s*((?:\w+(?:\.|::))*[A-Z]\w*)[^=]*)?=\s*(?:new\s+)?((?:\w+(?:\.|::))*[A-Z]\w*)\s*[(<{]|:\s*((?:\w+(?:\.|::))*[A-Z]\w*)"
)
_TYPED_FIELD = re.compile(
    r"^\s*\w+\s+(?:\[\])?[*&]?((?:\w+\.)?[A-Z]\w*)\s*(?:`|//|$)"
    r"|^\s*(?:(?:private|public|protected|static|final|const|mutable)\s+)*"
    r"((?:\w+(?:\.|::))*[A-Z]\w*)(?:<[^;=]*>)?\s*[*&]?\s+\w+\s*[;=]"
)
_SELF = frozenset({"self", "this", "Self", "cls"})
_NOT_BASES = frozenset(
    {
        "class",
        "struct",
        "interface",
        "extends",
        "implements",
        "public",
        "private",
        "protected",
        "abstract",
        "final",
        "export",
        "default",
        "object",
        "metaclass",
        "virtual",
        "static",
        "sealed",
        "type",
        "pub",
        "trait",
        "impl",
        "for",
        "where",
        "enum",
        "record",
        "Generic",
        "Protocol",
        "ABC",
        "Exception",
        "BaseException",
        "Enum",
        "NamedTuple",
        "TypedDict",
    }
)


class GraphSource(Protocol):
    """The index's side of the probe: file graphs as indexed, and the file set for resolution."""

    def graph_of(self, path: str) -> FileGraph | None: ...

    def resolver(self) -> ModuleResolver: ...

    def containers_with(self, names: Iterable[str]) -> dict[tuple[str, str], int]: ...

    def usage_counts(self, names: Iterable[str]) -> dict[str, int]: ...


@dataclass(frozen=True)
class NeedSnippet:
    """A signature or an outline, offered to the prompt ahead of retrieved chunks. Lines 0-based."""

    path: str
    text: str
    start_line: int
    end_line: int
    score: float
    kind: str  # the definition's kind: function, class, type, constant...
    name: str
    chunk_id: int = -1
    reason: str = "needs"
    prompt_kind: str = "signature"  # "outline" for a class-like definition with its members
    # A member of the receiver just before the cursor (`x.`), wanted by this very keystroke; the
    # other definitions follow the ranking, which moves as the user types.
    at_cursor: bool = False


@dataclass
class _Unit:
    path: str
    top: Definition  # the top-level definition (a class for an outline)
    score: float = 0.0
    members: dict[str, float] = field(default_factory=dict)  # member name -> score
    full: bool = False  # every member (in ranked parts), not only the constructor and those asked for


class NeedsProbe:
    """One probe per index; call `snippets` per cursor (cheap: one parse of the buffer)."""

    def __init__(self, source: GraphSource) -> None:
        self.source = source
        self._parsed: OrderedDict[tuple[str, int], FileGraph | None] = OrderedDict()

    def snippets(self, path: str, buffer: str, offset: int, limit: int = MAX_UNITS) -> list[NeedSnippet]:
        graph = self._buffer_graph(path, buffer, offset)
        if graph is None:
            return []
        return _Query(self.source, path, buffer, offset, graph).run(limit)

    def _buffer_graph(self, path: str, buffer: str, offset: int) -> FileGraph | None:
        """The buffer's graph, parsed with the cursor's line left blank: the line being typed is
        unfinished (an open bracket there would swallow the rest of the file into one syntax
        error), and every keystroke on it then reuses one parse. The last few are kept."""
        line_start = buffer.rfind("\n", 0, offset) + 1
        line_end = buffer.find("\n", offset)
        text = buffer[:line_start] + (buffer[line_end:] if line_end != -1 else "")
        key = (path, hash(text))
        if key in self._parsed:
            self._parsed.move_to_end(key)
            return self._parsed[key]
        graph = extract(path, text)
        self._parsed[key] = graph
        while len(self._parsed) > 8:
            self._parsed.popitem(last=False)
        return graph


class _Query:
    def __init__(self, source: GraphSource, path: str, buffer: str, offset: int, graph: FileGraph) -> None:
        self.source = source
        self.path = path
        self.buffer = buffer
        self.offset = max(0, min(offset, len(buffer)))
        self.graph = graph
        self.lang = graph.language
        self.resolver = source.resolver()
        self.cursor_line = buffer.count("\n", 0, self.offset)
        self.line_start = buffer.rfind("\n", 0, self.offset) + 1  # of the cursor's line
        self.units: dict[tuple[str, str], _Unit] = {}
        self._mentions, self._attributes = self._count_mentions()
        previous_start = buffer.rfind("\n", 0, max(self.line_start - 1, 0)) + 1
        self._near_words = {
            w for ident in _IDENT.findall(buffer[previous_start : self.offset]) for w in _words(ident)
        }
        self._bindings: dict[str, list[Target]] | None = None
        self._usage: dict[str, float] = {}

    # -- the buffer ---------------------------------------------------------------------------------
    def _count_mentions(self) -> tuple[dict[str, float], dict[str, float]]:
        """How much each identifier (and each `.name` attribute) is mentioned, nearer the cursor and
        before it weighing more; import lines do not count."""
        import_lines = {i.line for i in self.graph.imports}
        mentions: dict[str, float] = {}
        attributes: dict[str, float] = {}
        lines = self.buffer.split("\n")
        first = max(0, self.cursor_line - MENTION_WINDOW_LINES)
        last = min(len(lines), self.cursor_line + MENTION_WINDOW_LINES // 4)
        for n in range(first, last):
            if n in import_lines:
                continue
            line = self._up_to_cursor(lines, n)
            weight = self._weight(n)
            for m in _IDENT.finditer(line):
                name = m.group(0)
                mentions[name] = mentions.get(name, 0.0) + weight
                start = m.start()
                if start and line[start - 1] == "." or line[max(0, start - 2) : start] in ("::", "->"):
                    attributes[name] = attributes.get(name, 0.0) + weight
        return mentions, attributes

    def _weight(self, n: int) -> float:
        """A mention on line `n`: nearer the cursor weighs more, and before it more than after."""
        return (1.0 if n <= self.cursor_line else 0.5) / (1.0 + abs(self.cursor_line - n) / 8.0)

    def _up_to_cursor(self, lines: list[str], n: int) -> str:
        """Line `n` of the buffer, cut at the cursor on the cursor's line."""
        return lines[n][: self.offset - self.line_start] if n == self.cursor_line else lines[n]

    def mention(self, name: str) -> float:
        return self._mentions.get(name, 0.0)

    def usage(self, names: Iterable[str]) -> dict[str, float]:
        """A prior for members nothing near the cursor mentions: how much the repository uses each
        name (`c.Name()` is called all over cobra, `c.MarkZshCompPositionalArgumentFile` once),
        looked up once per name and cursor."""
        missing = [n for n in dict.fromkeys(names) if n not in self._usage]
        if missing:
            counts_of = getattr(self.source, "usage_counts", None)
            counts = counts_of(missing) if counts_of is not None else {}
            for name in missing:
                self._usage[name] = USAGE_WEIGHT * math.log1p(counts.get(name, 0))
        return self._usage

    def hint(self, name: str) -> float:
        """How much a name's words echo the words just before the cursor (`url = ` before
        `urldefragauth(`, `auth = ` before `get_netrc_auth(`): the share of its words found there."""
        words = _words(name)
        if not words:
            return 0.0
        return sum(1 for w in words if w in self._near_words) / len(words)

    # -- resolution ---------------------------------------------------------------------------------
    @property
    def bindings(self) -> dict[str, list[Target]]:
        """Each name the file's imports bind -> what it refers to."""
        if self._bindings is None:
            self._bindings = {}
            for imp in self.graph.imports:
                targets = self.resolver.resolve(self.path, self.lang, imp)
                if not targets:
                    continue
                names = [imp.binding]
                if self.lang == "go" and imp.kind == "module" and not imp.alias:
                    # A Go package is used by its declared name, which may differ from its folder's.
                    graphs = [self.source.graph_of(t.path) for t in targets[:1]]
                    packages = {g.package for g in graphs if g is not None}
                    names = [p for p in packages if p] or names
                for name in names:
                    if name:
                        self._bindings.setdefault(name, []).extend(targets)
        return self._bindings

    def definitions_named(
        self, path: str, name: str, depth: int = 0, seen: set[tuple[str, str]] | None = None
    ) -> list[tuple[str, Definition]]:
        """Where `name`, as seen from file `path`, is defined: in the file, or through its imports."""
        seen = seen if seen is not None else set()
        if depth > MAX_DEPTH or (path, name) in seen:
            return []
        seen.add((path, name))
        graph = self.source.graph_of(path)
        if graph is None:
            return []
        if name == "default":  # `export default class K`
            found = [
                d for d in graph.definitions if not d.container and d.signature.startswith("export default")
            ]
        else:
            found = graph.top_level(name)
        if found:
            return [(path, d) for d in found[:2]]
        out: list[tuple[str, Definition]] = []
        fanout = 0
        for imp in graph.imports:
            if imp.kind == "star" or imp.kind == "include" or imp.binding == name:
                if fanout >= MAX_FANOUT:
                    break
                fanout += 1
                for target in self.resolver.resolve(path, graph.language, imp):
                    if target.name == "*":
                        exports = self.exports_of(target.path)
                        if exports is not None and name not in exports:
                            continue
                        out += self.definitions_named(target.path, name, depth + 1, seen)
                    elif target.name:
                        out += self.definitions_named(target.path, target.name, depth + 1, seen)
                if out:
                    return out
        if not out and graph.language in ("go", "java"):  # the rest of the package needs no import
            for sibling in self.resolver.package_files(path, graph.language)[: MAX_FANOUT * 4]:
                sibling_graph = self.source.graph_of(sibling)
                found = sibling_graph.top_level(name) if sibling_graph is not None else []
                if found:
                    return [(sibling, d) for d in found[:2]]
        return out

    def exports_of(self, path: str) -> tuple[str, ...] | None:
        graph = self.source.graph_of(path)
        return graph.exports if graph is not None else None

    def module_members(self, targets: Iterable[Target]) -> list[tuple[str, Definition]]:
        """The public top-level definitions of module targets (and what their star imports bring, one hop)."""
        out: list[tuple[str, Definition]] = []
        for target in list(targets)[:MAX_FANOUT]:
            graph = self.source.graph_of(target.path)
            if graph is None:
                continue
            exports = graph.exports
            for d in graph.definitions:
                if not d.container and _public(d, graph.language) and (exports is None or d.name in exports):
                    out.append((target.path, d))
            if exports is not None:  # an `__init__.py` re-exporting by `__all__`: follow the names
                defined = {d.name for _, d in out}
                for name in exports:
                    if name not in defined:
                        out += self.definitions_named(target.path, name)
            else:
                for imp in graph.imports[:MAX_FANOUT]:
                    if imp.kind == "name" and target.path.rsplit("/", 1)[-1] in (
                        "__init__.py",
                        "index.ts",
                        "index.js",
                        "mod.rs",
                        "lib.rs",
                    ):
                        out += self.definitions_named(target.path, imp.binding)
        return out

    def resolve_type(self, dotted: str) -> list[tuple[str, Definition]]:
        """A type written as `Foo`, `mod.Foo` or `crate::a::Foo`, as seen from the buffer."""
        parts = [p for p in re.split(r"\.|::", dotted) if p]
        if not parts:
            return []
        head, last = parts[0], parts[-1]
        if self.lang == "rust" and head in ("crate", "super", "self") and len(parts) > 1:
            return [(p, d) for p, d in self._rust_path(parts) if d is not _ModuleMarker]
        targets = self.bindings.get(head)
        if targets is not None:
            if len(parts) == 1:
                return self._named_targets(targets)
            for path, d in self.module_members(targets):
                if d.name == last:
                    return [(path, d)]
            return [(p, d) for t in targets for p, d in self.definitions_named(t.path, last)][:2]
        own = [d for d in self.graph.top_level(last) if _is_container(d)]
        if own:  # a class of this file: its members are shown by `add` only where they live elsewhere
            return [(self.path, own[0])]
        for path in self.resolver.package_files(self.path, self.lang) + self._star_files():
            graph = self.source.graph_of(path)
            if graph is not None and graph.top_level(last):
                return [(path, d) for d in graph.top_level(last)[:1]]
        return []

    def _graph(self, path: str) -> FileGraph | None:
        """A file's graph: the buffer's own for the current file, the index's for the others."""
        return self.graph if path == self.path else self.source.graph_of(path)

    def _own_members(self, path: str, d: Definition) -> list[Definition]:
        """The members of container `d`, defined in file `path`, in source order."""
        graph = self._graph(path)
        return [
            m for m in (graph.definitions if graph else []) if m.container == d.qualified and m.kind != "impl"
        ]

    def _bases_of(self, path: str, d: Definition) -> list[str]:
        """What a type's header names as its bases, and the Rust traits file `path` implements for it."""
        graph = self._graph(path)
        traits = [
            m.name
            for m in (graph.definitions if graph else [])
            if m.kind == "impl" and m.container == d.qualified
        ]
        return list(dict.fromkeys(_bases(d) + traits))

    def _implemented_for(self, type_name: str) -> list[tuple[str, Definition]]:
        """Rust: the traits that this file, or a file it imports everything from, implements for a type
        defined nowhere in the repository (`impl FloatErrors for u64`)."""
        out: list[tuple[str, Definition]] = []
        for path in [self.path, *self._star_files()]:
            graph = self._graph(path)
            for m in graph.definitions if graph else []:
                if m.kind == "impl" and m.container == type_name:
                    out += self._resolve_from(path, m.name)
        return out[:4]

    def _package_members(self, path: str, d: Definition) -> list[tuple[str, Definition]]:
        """Go: the methods of type `d` (of file `path`) declared in the other files of its package."""
        if d.container or d.kind != "type" or not path.endswith(".go"):
            return []
        out = []
        for sibling in self.resolver.package_files(path, "go")[: MAX_FANOUT * 4]:
            graph = self._graph(sibling)
            out += [(sibling, m) for m in (graph.definitions if graph else []) if m.container == d.name]
        return out

    def _named_targets(self, targets: list[Target]) -> list[tuple[str, Definition]]:
        out: list[tuple[str, Definition]] = []
        for t in targets:
            if t.name and t.name != "*":
                out += self.definitions_named(t.path, t.name)
        return out

    def _star_files(self) -> list[str]:
        out: list[str] = []
        for imp in self.graph.imports:
            if imp.kind in ("star", "include"):
                out += [t.path for t in self.resolver.resolve(self.path, self.lang, imp)]
        return out[:MAX_FANOUT]

    # -- candidates ---------------------------------------------------------------------------------
    def add(
        self, path: str, d: Definition, score: float, member_score: float | None = None, full: bool = False
    ) -> None:
        """Count `d` (a top-level definition, or a member: then its container's outline) as needed."""
        if path == self.path:
            return  # the buffer itself: the prompt shows the code around the cursor
        top_name = d.container.split(".")[0] if d.container else d.name
        score += HINT_WEIGHT * self.hint(top_name if not d.container else d.name)
        if member_score is not None:
            member_score += HINT_WEIGHT * self.hint(d.name)
        key = (path, top_name)
        unit = self.units.get(key)
        if unit is None or d.container and not _is_container(unit.top):
            top = d
            if d.container:
                graph = self.source.graph_of(path)
                found = next(
                    (t for t in (graph.top_level(top_name) if graph else []) if _is_container(t)), None
                )
                if found is None:
                    # A method of a Go or Rust type declared elsewhere, or of a C++ class: the member alone.
                    key = (path, d.qualified)
                    unit = self.units.setdefault(key, _Unit(path, d))
                    unit.score = max(unit.score, score)
                    return
                top = found
            unit = self.units.setdefault(key, _Unit(path, top))
        unit.score = max(unit.score, score)
        unit.full = unit.full or full or (_is_container(unit.top) and self.mention(unit.top.name) >= 0.25)
        if d.container:
            unit.members[d.name] = max(
                unit.members.get(d.name, 0.0), member_score if member_score is not None else score
            )

    def run(self, limit: int) -> list[NeedSnippet]:
        self._receiver()
        self._imports()
        self._package()
        self._siblings()
        ranked = sorted(self.units.values(), key=lambda u: (-u.score, u.path, u.top.start_line))[:limit]
        out = [snippet for unit in ranked for snippet in self._render(unit)]
        out.sort(key=lambda s: -s.score)  # an outline's continuations rank below its first part
        return out[:limit]

    def _siblings(self) -> None:
        """Go constants declared in one `const (...)` block (an enumeration) are used together: one
        mentioned lifts its unmentioned neighbours (`case PanicLevel:` before `case DebugLevel:`),
        most of the way to its own rank. (Python's or TypeScript's consecutive module constants are
        no such group: `current_app` does not call for `session`.)"""
        paths = {
            path
            for (path, _), unit in self.units.items()
            if path.endswith(".go")
            and unit.top.kind == "constant"
            and not unit.top.container
            and self.mention(unit.top.name)
        }
        for path in paths:
            graph = self.source.graph_of(path)
            run: list[Definition] = []
            for d in [*(graph.definitions if graph else []), None]:
                if d is not None and d.container:
                    continue
                if d is not None and d.kind == "constant" and d.signature[:1].isspace():  # inside `(...)`
                    if not run or d.start_line - run[-1].end_line <= 4:
                        run.append(d)
                        continue
                    self._lift(path, run)
                    run = [d]
                    continue
                self._lift(path, run)
                run = []

    def _lift(self, path: str, run: list[Definition]) -> None:
        if not 2 <= len(run) <= MAX_SIBLINGS:
            return
        units = [self.units.get((path, d.name)) for d in run]
        mentioned = [u.score for d, u in zip(run, units) if u is not None and self.mention(d.name)]
        if not mentioned:
            return
        top = max(mentioned)
        for unit in units:
            if unit is not None and unit.score < top:
                unit.score += 0.75 * (top - unit.score)

    def _receiver(self) -> None:
        """The members of what stands just before the cursor (`x.`, `a.b(c).`), first of all."""
        typed = self.buffer[self.line_start : self.offset]
        start = self.line_start
        for _ in range(4):  # a chain continued on new lines: `client\n  .getMutationCache()\n  .`
            if not typed.lstrip().startswith((".", "?.")) or not start:
                break
            start = self.buffer.rfind("\n", 0, start - 1) + 1
            typed = self.buffer[start : self.buffer.find("\n", start)].rstrip() + typed.lstrip()
        parsed = _parse_chain(typed)
        if parsed is None:
            return
        segments, separators, partial = parsed
        targets = self._chain_targets(segments, separators)
        modules = [Target(path, "") for path, d in targets if d is _ModuleMarker]
        if modules:  # a package's files, all of them (a Go package has many)
            self._add_module_members(modules, partial, base=RECEIVER_BASE)
        for path, d in [(p, d) for p, d in targets if d is not _ModuleMarker][:8]:
            self._add_members(path, d, partial, base=RECEIVER_BASE)

    def _chain_targets(
        self, segments: list[tuple[str, bool]], separators: list[str], depth: int = 0
    ) -> list[tuple[str, Definition]]:
        """What a receiver chain stands for: `a.b.c` through fields and modules, and through a call
        (`t(x).`, `self.cache.build(q).`, `Foo::new().`) what the called function is declared to return."""
        names = [name for name, _ in segments]
        calls = [i for i, (_, called) in enumerate(segments) if called]
        if not calls:
            if self.lang == "rust" and separators[:1] == ["::"] and names[0] in _RUST_PATH_HEADS:
                return self._rust_path(names)  # `crate::`, `super::ser::`, `self::value::Value::`
            return self._receiver_targets(names)
        k = calls[-1]
        name = names[k]
        if k == 0:  # a function of this file (or of an inline module in it: Rust's `mod tests`), or imported
            namespaces = {d.qualified for d in self.graph.definitions if d.kind == "namespace"}
            functions = [
                (self.path, d)
                for d in self.graph.definitions
                if d.name == name and (not d.container or d.container in namespaces)
            ] or self.definitions_named(self.path, name)
        elif depth < 3:
            functions = []
            for path, owner in self._chain_targets(segments[:k], separators[:k], depth + 1)[:4]:
                members = (
                    self.module_members([Target(path, "")])
                    if owner is _ModuleMarker
                    else self._members_of(path, owner)
                )
                functions += [(p, m) for p, m in members if m.name == name]
        else:
            return []
        returned: list[tuple[str, Definition]] = []
        for path, function in functions[:2]:
            returned += self._returned(path, function)
        return self._follow(returned[:2], names[k + 1 :])

    def _returned(self, path: str, function: Definition) -> list[tuple[str, Definition]]:
        """The type a function is declared to return, found from the function's file (a class called
        is its own instance; `Self` is the method's type)."""
        if _has_members(function):
            return [(path, function)]
        graph = self._graph(path)
        written = _return_type(function, graph.language if graph is not None else self.lang)
        if not written:
            return []
        if written in ("Self", "self", "this") and function.container:
            graph = self._graph(path)
            top = function.container.split(".")[0]
            return [(path, d) for d in (graph.top_level(top) if graph else []) if _has_members(d)][:1]
        last = re.split(r"\.|::", written)[-1]
        if path == self.path:
            return [(p, d) for p, d in self.resolve_type(written) if _has_members(d)][:1]
        return [(p, d) for p, d in self.definitions_named(path, last) if _has_members(d)][:1]

    def _receiver_targets(self, chain: list[str], depth: int = 0) -> list[tuple[str, Definition]]:
        head = chain[0]
        if head in _SELF:
            found: list[tuple[str, Definition]] = []
            enclosing = self._enclosing_type()
            if enclosing is not None:
                for base in self._bases_of(self.path, enclosing):
                    found += self.resolve_type(base)
                if len(chain) > 1:  # `self.app.`: through the class's own fields first
                    return self._follow([(self.path, enclosing), *found], chain[1:])
            return found
        if head in self.bindings:
            targets = self.bindings[head]
            if len(chain) == 1:
                named = self._named_targets(targets)
                if named:
                    # An imported instance (`export const focusManager = new FocusManager()`): its class.
                    return [found for path, d in named for found in self._instance_type(path, d)] or named
                return [(t.path, _ModuleMarker) for t in targets if not t.name or t.name == "*"]
            return self._follow_module(targets, chain[1:])
        local = self._local_type(head)
        typed = self.resolve_type(local) if local is not None else []
        if typed:
            return self._follow(typed, chain[1:])
        aliased = self._local_chain(head)
        if aliased is not None and depth < 3:  # `si = self.app.session_interface`, then `si.`
            followed = self._follow(self._receiver_targets(aliased, depth + 1), chain[1:])
            if followed:
                return followed
        iterated = _parse_chain(self._iterated(head) + ".") if depth < 3 else None
        if iterated is not None:  # `for (const o of this.observers)`, `.forEach((o) =>`, `range c.Commands()`
            followed = self._follow(self._chain_targets(iterated[0], iterated[1], depth + 1), chain[1:])
            if followed:
                return followed
        typed = self.resolve_type(head)
        if typed:
            return self._follow(typed, chain[1:])
        if self.lang == "rust":  # `u64::error_halfscale()`: a type of no file, with traits implemented here
            traits = self._implemented_for(head)
            if traits:
                return self._follow(traits, chain[1:])
        # Typed by nothing the code says here (`x := entry.Dup()`): by what the code does with it.
        return self._follow(self._by_attributes(head), chain[1:])

    def _rust_path(self, parts: list[str]) -> list[tuple[str, Definition]]:
        """A Rust path from the crate root or the current module: a module (its items), or an item."""
        targets = self.resolver.resolve(self.path, self.lang, Import("module", "::".join(parts)))
        found: list[tuple[str, Definition]] = []
        for t in targets[:1]:
            if not t.name:
                found.append((t.path, _ModuleMarker))
            elif t.name != "*":  # an item (`crate::Value::`) and the path's rest, if any, through it
                rest = parts[parts.index(t.name) + 1 :] if t.name in parts else []
                found += self._follow(
                    [(p, d) for p, d in self.definitions_named(t.path, t.name) if _is_container(d)][:1], rest
                )
        return found

    def _instance_type(self, path: str, d: Definition) -> list[tuple[str, Definition]]:
        """For a constant, the class it is an instance of, when its definition says (`x = Foo(...)`,
        `x: Foo = ...`, `const x = new Foo()`), found from the constant's own file."""
        if _is_container(d) or d.kind not in ("constant", "field"):
            return [(path, d)]
        m = _INSTANCE.search(d.signature)
        typed_field = _TYPED_FIELD.search(d.signature) if d.kind == "field" else None
        if m is not None:
            written = m.group(1) or m.group(2) or m.group(3)
        elif typed_field is not None:  # Go's `mu MutexWrap`, Java's and C++'s `Type name;`
            written = typed_field.group(1) or typed_field.group(2)
        else:  # `self.app = app`: the constructor's parameter says
            assigned = re.search(r"=\s*([a-z_]\w*)\s*$", d.signature)
            graph = self._graph(path)
            constructor = next(
                (
                    c
                    for c in (graph.definitions if graph and d.container else [])
                    if c.container == d.container and _is_constructor(c)
                ),
                None,
            )
            typed = (
                re.search(rf"\b{assigned.group(1)}\s*:\s*((?:\w+\.)*[A-Z]\w*)", constructor.signature)
                if assigned and constructor
                else None
            )
            if typed is None:
                return [(path, d)]
            written = typed.group(1)
        name = re.split(r"\.|::", written)[-1]
        if name in _COLLECTIONS:  # `observers: Array<QueryObserver>`: what iterating it gives
            inner = re.search(rf"\b{name}\s*[<\[]\s*(?:[*&]\s*)?((?:\w+(?:\.|::))*[A-Z]\w*)", d.signature)
            name = re.split(r"\.|::", inner.group(1))[-1] if inner else name
        found = [(p, t) for p, t in self.definitions_named(path, name) if _has_members(t)]
        return [(path, d), *found[:1]]

    def _follow_module(self, targets: list[Target], rest: list[str]) -> list[tuple[str, Definition]]:
        """`mod.sub.Cls.` -> Cls; `mod.sub.` -> the submodule's members."""
        name = rest[0]
        for t in targets:
            sub = self.resolver.resolve(
                t.path, self.lang, Import("name", _module_of(t.path, self.lang), name)
            )
            subs = [s for s in sub if not s.name]
            if subs:
                return (
                    [(s.path, _ModuleMarker) for s in subs]
                    if len(rest) == 1
                    else self._follow_module(subs, rest[1:])
                )
        members = [(p, d) for p, d in self.module_members(targets) if d.name == name]
        return self._follow(members, rest[1:])

    def _follow(self, found: list[tuple[str, Definition]], rest: list[str]) -> list[tuple[str, Definition]]:
        """Attribute chains: `Cls.Inner.`, and `x.field.` where the field's declaration names its
        class (`app: App`, `self.app = app` with `app: App` in the constructor, `= Foo()`), members
        of bases included. Return types of methods are not followed."""
        for name in rest:
            nxt: list[tuple[str, Definition]] = []
            for path, d in found[:4]:
                for mpath, member in self._members_of(path, d):
                    if member.name != name:
                        continue
                    if _is_container(member):
                        nxt.append((mpath, member))
                    else:
                        nxt += [(p, t) for p, t in self._instance_type(mpath, member) if _has_members(t)]
            found = nxt
        return found

    def _members_of(self, path: str, d: Definition) -> list[tuple[str, Definition]]:
        """A class's members, then its bases' (one level)."""
        out = [(path, m) for m in self._own_members(path, d)] + self._package_members(path, d)
        for base in self._bases_of(path, d)[:4]:
            for bpath, bdef in (
                self._resolve_from(path, base) if path != self.path else self.resolve_type(base)
            ):
                out += [(bpath, m) for m in self._own_members(bpath, bdef)]
        return out

    def _add_module_members(self, modules: list[Target], partial: str, base: float) -> None:
        members = self.module_members(modules)
        usage = self.usage(m.name for _, m in members)
        for mpath, member in members:
            bonus = 10.0 if partial and member.name.startswith(partial) else 0.0
            self.add(mpath, member, base + bonus + 2 * self.mention(member.name) + usage[member.name])

    def _add_members(self, path: str, d: Definition, partial: str, base: float) -> None:
        self.add(path, d, base, full=True)
        own = self._own_members(path, d)
        elsewhere = self._package_members(path, d)  # Go methods in the package's other files
        usage = self.usage([m.name for m in own] + [m.name for _, m in elsewhere])
        for member in own:
            bonus = 10.0 if partial and member.name.startswith(partial) else 0.0
            self.add(
                path,
                member,
                base,
                base + bonus + self._attributes.get(member.name, 0.0) + usage[member.name],
                full=True,
            )
        for mpath, member in elsewhere:
            bonus = 10.0 if partial and member.name.startswith(partial) else 0.0
            self.add(
                mpath, member, base / 10 + bonus + self._attributes.get(member.name, 0.0) + usage[member.name]
            )
        # A class's own members first, then its bases' (one level: bounded).
        if _is_container(d):
            for name in self._bases_of(path, d)[:4]:
                for bpath, bdef in self._resolve_from(path, name):
                    self._add_base(bpath, bdef, base / 2)

    def _add_base(self, path: str, d: Definition, score: float) -> None:
        """A base class of a receiver: all its members, ranked by how the file uses them."""
        self.add(path, d, score, full=True)
        members = self._own_members(path, d)
        usage = self.usage(m.name for m in members)
        for member in members:
            self.add(
                path,
                member,
                score,
                score / 10 + self._attributes.get(member.name, 0.0) + usage[member.name],
                full=True,
            )

    def _resolve_from(self, path: str, name: str) -> list[tuple[str, Definition]]:
        """A base class written in file `path`, found through that file's own imports."""
        last = re.split(r"\.|::", name)[-1]
        return [(p, d) for p, d in self.definitions_named(path, last) if _is_container(d)][:1]

    def _enclosing_type(self) -> Definition | None:
        """The class (or the receiver type of the method) around the cursor, in the buffer."""
        best = None
        for d in self.graph.definitions:
            if d.start_line <= self.cursor_line <= d.end_line:
                if _is_container(d) and (best is None or d.start_line >= best.start_line):
                    best = d
                elif d.kind == "method" and d.container and best is None:
                    owner = next((t for t in self.graph.definitions if t.qualified == d.container), None)
                    if owner is not None and not (owner.start_line <= self.cursor_line <= owner.end_line):
                        best = owner  # Go/Rust: a method outside its type's body
        return best

    def _local_type(self, name: str) -> str | None:
        """The type a local variable or parameter was last given before the cursor, if the code says."""
        window = self.buffer[max(0, self.offset - 6000) : self.offset]
        best: tuple[int, str] | None = None
        for pattern, var_group, type_group in (
            (_ANNOTATED, 1, 2),
            (_CONSTRUCTED, 1, 2),
            (_DECLARED, 2, 1),
            (_GO_PARAM, 1, 2),
        ):
            for m in pattern.finditer(window):
                if m.group(var_group) == name and (best is None or m.start() > best[0]):
                    best = (m.start(), m.group(type_group))
        return best[1] if best else None

    def _iterated(self, name: str) -> str:
        """The collection a loop variable or a callback's parameter last took its items from, as
        written (`this.observers`, `cmd.Commands()`), or ""."""
        window = self.buffer[max(0, self.offset - 6000) : self.offset]
        n = re.escape(name)
        collection = r"((?:[#\w$]+(?:\(\))?\s*(?:\?\.|\.|::)\s*)*[#\w$]+(?:\(\))?)"
        best: tuple[int, str] | None = None
        for pattern in (
            collection + r"\s*\.\s*(?:forEach|map|filter|find|some|every|flatMap|iter\(\)\.\w+)\(\s*"
            rf"(?:async\s*)?[(|]?\s*{n}\b",
            rf"\bfor\s*\(?\s*(?:const|let|var|auto&?|final)?\s*{n}\s+(?:of|in|:)\s+&?(?:mut\s+)?"
            + collection,
            rf"\bfor\s+(?:\w+\s*,\s*)?{n}\s*:?=\s*range\s+" + collection,
        ):
            for m in re.finditer(pattern, window):
                if best is None or m.start() > best[0]:
                    best = (m.start(), m.group(1))
        return best[1] if best else ""

    def _local_chain(self, name: str) -> list[str] | None:
        """The attribute chain a local was last assigned from before the cursor (`x = self.a.b`)."""
        window = self.buffer[max(0, self.offset - 6000) : self.offset]
        found = None
        for m in re.finditer(
            rf"\b{re.escape(name)}\s*(?::=|=)\s*([A-Za-z_]\w*(?:\s*(?:\.|::|->)\s*[A-Za-z_]\w*)+)\s*$",
            window,
            re.M,
        ):
            found = m.group(1)
        return [p for p in re.split(r"\s*(?:\.|::|->)\s*", found) if p] if found else None

    def _by_attributes(self, receiver: str) -> list[tuple[str, Definition]]:
        """An untyped receiver: the type in the repository that has most of the attributes the file
        uses on it (at least two), nearest the current file among equals."""
        used = set(re.findall(rf"\b{re.escape(receiver)}\s*(?:\.|->)\s*([A-Za-z_]\w*)", self.buffer))
        if len(used) < 2:
            return []
        counts = self.source.containers_with(used)
        if not counts:
            return []
        here = self.path.split("/")

        def key(item: tuple[tuple[str, str], int]) -> tuple[int, int]:
            (path, _), n = item
            shared = sum(1 for _ in zip(here, path.split("/")) if _[0] == _[1])
            return n, shared

        (path, container), n = max(counts.items(), key=key)
        if n < 2:
            return []
        graph = self.source.graph_of(path)
        top = next((t for t in (graph.definitions if graph else []) if t.qualified == container), None)
        return [(path, top)] if top is not None else []

    def _imports(self) -> None:
        """What the file imports: named imports by mention, modules' members by `mod.member` mentions."""
        for binding, targets in self.bindings.items():
            weight = self.mention(binding)
            named = self._named_targets(targets)
            for path, d in named:
                self.add(path, d, 1.0 + 2.0 * weight)
            if named:
                continue
            module_targets = [t for t in targets if not t.name or t.name == "*"]
            if not module_targets:
                continue
            used = self._module_attributes(binding)
            for path, d in self.module_members(module_targets)[:400]:
                mentioned = used.get(d.name, 0.0)
                self.add(path, d, (1.0 + 2.0 * mentioned) if mentioned else 0.2 + 0.1 * min(weight, 5.0))
        for path in self._star_files():
            self._names_in(path, 0.9, 0.05)

    def _module_attributes(self, binding: str) -> dict[str, float]:
        """`binding.member` mentions, weighted like other mentions."""
        out: dict[str, float] = {}
        pattern = re.compile(rf"\b{re.escape(binding)}\s*(?:\.|::)\s*([A-Za-z_]\w*)")
        lines = self.buffer.split("\n")
        for n, line in enumerate(lines):
            if binding not in line:
                continue
            weight = self._weight(n)
            for m in pattern.finditer(self._up_to_cursor(lines, n)):
                out[m.group(1)] = out.get(m.group(1), 0.0) + weight
        return out

    def _package(self) -> None:
        """Go and Java: the other files of the package, whose names need no import."""
        for path in self.resolver.package_files(self.path, self.lang)[: MAX_FANOUT * 4]:
            self._names_in(path, 1.0, 0.05, same_package=True)

    def _names_in(
        self, path: str, mentioned_base: float, unmentioned: float, same_package: bool = False
    ) -> None:
        """Names a file brings without naming them (a star import, an include, the package: there
        unexported names count too)."""
        graph = self.source.graph_of(path)
        if graph is None:
            return
        exports = graph.exports
        for d in graph.definitions:
            hidden = not same_package and not _public(d, graph.language)
            if d.container or hidden or (exports is not None and d.name not in exports):
                if d.container and self.mention(d.container.split(".")[0]) and self._attributes.get(d.name):
                    self.add(
                        path,
                        d,
                        mentioned_base + self.mention(d.container.split(".")[0]),
                        mentioned_base + 2.0 * self._attributes[d.name],
                    )
                continue
            weight = self.mention(d.name)
            self.add(path, d, mentioned_base + 2.0 * weight if weight else unmentioned)

    # -- rendering ----------------------------------------------------------------------------------
    def _render(self, unit: _Unit) -> list[NeedSnippet]:
        """A signature, or an outline in one or more parts: the first holds the members that rank
        highest (the constructor and fields come first among equals), the rest follow in parts of
        OUTLINE_PART_MEMBERS, each under the class's header again, ranked lower."""
        top = unit.top
        if not _is_container(top):
            text = top.signature
            return [
                NeedSnippet(
                    unit.path,
                    text.rstrip() + "\n",
                    top.start_line,
                    top.start_line + text.count("\n"),
                    unit.score,
                    top.kind,
                    top.qualified,
                    at_cursor=unit.score >= RECEIVER_BASE,
                )
            ]
        graph = self._graph(unit.path)
        members = self._own_members(unit.path, top)
        ranked = sorted(
            members,
            key=lambda m: (
                -unit.members.get(m.name, 0.0),
                not _is_constructor(m),
                m.kind != "field",
                m.start_line,
            ),
        )
        if unit.full:
            parts = [
                ranked[i : i + OUTLINE_PART_MEMBERS] for i in range(0, len(ranked), OUTLINE_PART_MEMBERS)
            ]
        else:  # reached only as a name: how to make one, and what was asked of it
            has_constructor = any(_is_constructor(m) for m in members)
            parts = [
                [
                    m
                    for m in ranked
                    if _is_constructor(m)
                    or unit.members.get(m.name, 0.0) > 0
                    or (m.kind == "field" and not has_constructor)
                ][:OUTLINE_PART_MEMBERS]
            ]
        closing = ""
        if graph is not None and graph.language != "python" and top.signature.rstrip().endswith("{"):
            closing = top.signature[: len(top.signature) - len(top.signature.lstrip())] + "}"
        out = []
        for n, part in enumerate(parts or [[]]):
            lines = [top.signature]
            last_line = -1
            for m in sorted(part, key=lambda m: m.start_line):
                if m.start_line <= last_line and m.signature in lines[-1]:
                    continue  # on a line already shown
                lines.append(m.signature)
                last_line = m.start_line + m.signature.count("\n")
            if closing:
                lines.append(closing)
            score = unit.score if n == 0 else unit.score / (2 * n)
            # The lines it covers: the type's, and its members' where they live outside it (Go and Rust
            # methods, C++ methods defined out of line).
            first = min([top.start_line] + [m.start_line for m in part])
            last = max([top.end_line] + [m.end_line for m in part])
            out.append(
                NeedSnippet(
                    unit.path,
                    "\n".join(lines).rstrip() + "\n",
                    first,
                    last,
                    score,
                    top.kind,
                    top.qualified if n == 0 else f"{top.qualified} ({n + 1})",
                    prompt_kind="outline",
                    at_cursor=score >= RECEIVER_BASE,
                )
            )
        return out


_RUST_PATH_HEADS = frozenset({"crate", "super", "self"})
_SEPARATOR = re.compile(r"(\?\.|\.|::|->)\s*$")
_CHAIN_NAME = re.compile(r"#?[A-Za-z_]\w*$")
# After a function's parameters: `-> Hir`, `: Query<T>`, ` *Command`, ` (*Command, error)`, `-> Result<Hir>`.
_RETURNS = re.compile(
    r"\s*(?:->|:)?\s*\(?\s*(?:[*&]\s*|\[\]\s*|mut\s+|'\w+\s+|readonly\s+|impl\s+)*[\"']?"
    r"((?:[A-Za-z_]\w*(?:\.|::))*[A-Za-z_]\w*)(?:\s*[<\[]\s*(?:[*&]\s*|mut\s+|'\w+\s*,\s*)*"
    r"((?:[A-Za-z_]\w*(?:\.|::))*[A-Za-z_]\w*))?"
)
_COLLECTIONS = frozenset(
    {
        "Array",
        "ReadonlyArray",
        "Set",
        "ReadonlySet",
        "List",
        "Sequence",
        "Iterable",
        "Vec",
        "VecDeque",
        "HashSet",
        "BTreeSet",
        "Slice",
    }
)
_WRAPPERS = frozenset(
    {
        "Result",
        "Option",
        "Promise",
        "Box",
        "Rc",
        "Arc",
        "Ref",
        "RefMut",
        "Optional",
        "Awaitable",
        "Iterator",
        "Generator",
        "AsyncIterator",
        "Cow",
        "Mutex",
        "RwLock",
        "LockResult",
    }
)


def _parse_chain(text: str) -> tuple[list[tuple[str, bool]], list[str], str] | None:
    """The receiver chain before the cursor, read backwards: `a.b(x, y).c::d` -> [(a, False),
    (b, True), (c, False), (d, False)], the separators after each, and the member partly typed."""
    m = re.search(r"\w*$", text)
    assert m is not None  # `\w*$` matches every text
    partial = m.group(0)
    rest = text[: m.start()]
    sep = _SEPARATOR.search(rest)
    if sep is None:
        return None
    separators = [sep.group(1)]
    rest = rest[: sep.start()].rstrip()
    segments: list[tuple[str, bool]] = []
    while len(segments) < 8:
        called = rest.endswith(")")
        opening = _opening(rest) if called else len(rest)
        name = _CHAIN_NAME.search(rest[:opening].rstrip()) if opening >= 0 else None
        if called and name is None and opening >= 0:  # a generic call: `build<T>(`, `parse::<T>(`
            name = _CHAIN_NAME.search(re.sub(r"(?:::)?<[^<>()]*>$", "", rest[:opening].rstrip()).rstrip())
        if name is None or (
            name.start() and (rest[name.start() - 1].isalnum() or rest[name.start() - 1] in "_$")
        ):
            if not segments:
                return None
            separators.pop()  # `) -> ft.`: what stands before the chain is no part of it
            break
        segments.append((name.group(0), called))
        rest = rest[: name.start()].rstrip()
        sep = _SEPARATOR.search(rest)
        if sep is None:
            break
        separators.append(sep.group(1))
        rest = rest[: sep.start()].rstrip()
    else:
        return None
    segments.reverse()
    separators.reverse()
    return segments, separators, partial


def _opening(text: str) -> int:
    """Where the bracket that closes `text` opens (string literals skipped), or -1."""
    depth = 0
    i = len(text) - 1
    stop = max(-1, len(text) - 2000)
    while i > stop:
        c = text[i]
        if c in '"`':
            i = text.rfind(c, 0, i)
            if i < 0:
                return -1
        elif c in ")]}":
            depth += 1
        elif c in "([{":
            depth -= 1
            if depth == 0:
                return i
        i -= 1
    return -1


def _return_type(function: Definition, language: str) -> str:
    """The type a function's signature says it returns, as written (wrappers such as `Result<T>`,
    `Promise<T>`, `Option<T>` opened); "" when it says none."""
    signature = function.signature
    if language in ("java", "c", "cpp"):  # the type before the name
        m = re.search(
            rf"((?:\w+(?:\.|::))*[A-Za-z_]\w*)(?:<[^()]*>)?\s*[*&]?\s+{re.escape(function.name)}\s*\(",
            signature,
        )
        return m.group(1) if m else ""
    m = re.search(rf"(?<![\w$#]){re.escape(function.name)}\s*(?:<[^()]*>)?\s*\(", signature)
    if m is None:
        return ""
    depth, i = 0, m.end() - 1
    while i < len(signature):
        if signature[i] == "(":
            depth += 1
        elif signature[i] == ")":
            depth -= 1
            if depth == 0:
                break
        i += 1
    rest = re.sub(r"\s*(?:\{ \.\.\. \}|\.\.\.|\{|;)\s*$", "", signature[i + 1 :])
    if not rest.strip() or rest.lstrip()[:1] not in ("-", ":", "*", "(", "&") and language != "go":
        return ""
    t = _RETURNS.match(rest)
    if t is None:
        return ""
    written, inner = t.group(1), t.group(2)
    if re.split(r"\.|::", written)[-1] in _WRAPPERS and inner:
        written = inner
    return written


# A stand-in definition for "the module itself" in receiver chains.
_ModuleMarker = Definition("<module>", "", "module", 0, 0, "")


def _words(identifier: str) -> list[str]:
    """`get_netrc_auth` -> get, netrc, auth; `HTTPAdapter` -> http, adapter (words of 3+ letters)."""
    return [w.lower() for w in _WORD.findall(identifier) if len(w) >= 3]


def _is_container(d: Definition) -> bool:
    return d.kind in ("class", "type", "namespace") and d.signature.rstrip().endswith(("{", ":"))


def _has_members(d: Definition) -> bool:
    """A class-like definition, or a named type that may have methods (Go `type M map[K]V`)."""
    return _is_container(d) or d.kind == "type"


def _is_constructor(d: Definition) -> bool:
    return d.name in ("__init__", "constructor", "new") or d.name == d.container.rsplit(".", 1)[-1]


def _public(d: Definition, language: str) -> bool:
    if language == "python":
        return not d.name.startswith("_") or d.name.startswith("__") and d.name.endswith("__")
    if language == "go":
        return d.name[:1].isupper()
    return True


def _bases(d: Definition) -> list[str]:
    """The names a class header lists after its own name: bases, interfaces, traits."""
    # From the name to where the body opens, over the header's lines: `class K<\n  T,\n> extends B {`.
    signature = d.signature
    at = re.search(rf"\b{re.escape(d.name)}\b", signature)
    rest = signature[at.end() :] if at else signature
    while True:  # type parameters are no bases: <T extends X, U = Y>
        stripped = re.sub(r"<[^<>]*>", "", rest)
        if stripped == rest:
            break
        rest = stripped
    rest = rest.split("{")[0]
    names = re.findall(r"[A-Za-z_][\w.]*(?:::[A-Za-z_]\w*)*", rest)
    return [n for n in names if n not in _NOT_BASES and (n[:1].isupper() or "." in n or "::" in n)][:6]


def _module_of(path: str, language: str) -> str:
    """A module spelled so that resolving a name in it finds its submodules (Python: relative)."""
    if language == "python":
        return "." if path.endswith("__init__.py") else "." + path.rsplit("/", 1)[-1].removesuffix(".py")
    return "./" + path.rsplit("/", 1)[-1]
