"""Splitting a file into retrievable chunks: tree-sitter definitions, line windows for other text.

Python, JavaScript, TypeScript/TSX, Go, Rust, Java, C and C++ are parsed with tree-sitter: each
definition (function, method, class, type, constant block) is a chunk named for where it lives
(`Class.method`, `impl Type.fn`); a large class or namespace is split into its header and its
members, a large function at statement boundaries; runs of tiny neighbours are merged; the code
between definitions becomes "module" chunks. Other text files become line windows. Broken
syntax still yields chunks: tree-sitter parses what it can and the rest is gap code.

A chunk never overlaps another chunk of the same file, and keeps its exact line range
(0-based, end inclusive) and byte range, so a caller can drop the chunks that cover the
cursor's neighbourhood and a prompt can cite where each snippet lives.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    path: str
    start_line: int
    end_line: int
    start_byte: int
    end_byte: int
    kind: (
        str  # function, method, class, type, constant, impl, namespace, macro, module (code between), window
    )
    name: str
    text: str
    defines: tuple[str, ...] = ()  # qualified names defined in this chunk, members of a whole class included

    @property
    def text_hash(self) -> str:
        return hashlib.sha1(self.text.encode("utf-8")).hexdigest()

    def embedding_text(self) -> str:
        """What the embedder sees: where the chunk lives, then its code."""
        label = f"{self.path} {self.kind} {self.name}".rstrip()
        return f"{label}\n{self.text}"


@dataclass(frozen=True)
class ChunkingConfig:
    window_lines: int = 40
    max_chunk_lines: int = 80
    tiny_lines: int = 3  # neighbours this short are merged into one chunk


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    module: str  # the grammar's Python package
    function: str  # its function returning the language
    kinds: dict[str, str]  # definition node type -> chunk kind
    containers: frozenset[str] = frozenset()  # definitions whose members become chunks when large
    wrappers: frozenset[str] = frozenset()  # decorators, export, template: the definition is inside
    transparent: frozenset[str] = frozenset()  # #ifdef blocks, extern "C": look inside, no name


_JS_KINDS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "method_definition": "method",
    "lexical_declaration": "constant",
    "variable_declaration": "constant",
}
_TS_KINDS = {
    **_JS_KINDS,
    "abstract_class_declaration": "class",
    "interface_declaration": "type",
    "type_alias_declaration": "type",
    "enum_declaration": "type",
    "internal_module": "namespace",
}
_C_KINDS = {
    "function_definition": "function",
    "struct_specifier": "type",
    "union_specifier": "type",
    "enum_specifier": "type",
    "type_definition": "type",
    "preproc_function_def": "macro",
}
_C_TRANSPARENT = frozenset(
    {
        "preproc_ifdef",
        "preproc_if",
        "preproc_else",
        "preproc_elif",
        "linkage_specification",
        "declaration_list",
    }
)

LANGUAGES: dict[str, LanguageSpec] = {}
for _exts, _spec in [
    (
        (".py", ".pyi"),
        LanguageSpec(
            "python",
            "tree_sitter_python",
            "language",
            {"function_definition": "function", "class_definition": "class"},
            frozenset({"class_definition"}),
            frozenset({"decorated_definition"}),
        ),
    ),
    (
        (".js", ".jsx", ".mjs", ".cjs"),
        LanguageSpec(
            "javascript",
            "tree_sitter_javascript",
            "language",
            _JS_KINDS,
            frozenset({"class_declaration"}),
            frozenset({"export_statement"}),
        ),
    ),
    (
        (".ts", ".mts", ".cts"),
        LanguageSpec(
            "typescript",
            "tree_sitter_typescript",
            "language_typescript",
            _TS_KINDS,
            frozenset({"class_declaration", "abstract_class_declaration", "internal_module"}),
            frozenset({"export_statement", "ambient_declaration"}),
        ),
    ),
    (
        (".tsx",),
        LanguageSpec(
            "tsx",
            "tree_sitter_typescript",
            "language_tsx",
            _TS_KINDS,
            frozenset({"class_declaration", "abstract_class_declaration", "internal_module"}),
            frozenset({"export_statement", "ambient_declaration"}),
        ),
    ),
    (
        (".go",),
        LanguageSpec(
            "go",
            "tree_sitter_go",
            "language",
            {
                "function_declaration": "function",
                "method_declaration": "method",
                "type_declaration": "type",
                "const_declaration": "constant",
                "var_declaration": "constant",
            },
        ),
    ),
    (
        (".rs",),
        LanguageSpec(
            "rust",
            "tree_sitter_rust",
            "language",
            {
                "function_item": "function",
                "struct_item": "type",
                "enum_item": "type",
                "union_item": "type",
                "trait_item": "type",
                "impl_item": "impl",
                "mod_item": "namespace",
                "const_item": "constant",
                "static_item": "constant",
                "type_item": "type",
                "macro_definition": "macro",
            },
            frozenset({"impl_item", "trait_item", "mod_item"}),
        ),
    ),
    (
        (".java",),
        LanguageSpec(
            "java",
            "tree_sitter_java",
            "language",
            {
                "class_declaration": "class",
                "interface_declaration": "type",
                "enum_declaration": "type",
                "record_declaration": "class",
                "annotation_type_declaration": "type",
                "method_declaration": "method",
                "constructor_declaration": "method",
            },
            frozenset(
                {"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"}
            ),
        ),
    ),
    ((".c", ".h"), LanguageSpec("c", "tree_sitter_c", "language", _C_KINDS, transparent=_C_TRANSPARENT)),
    (
        (".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp"),
        LanguageSpec(
            "cpp",
            "tree_sitter_cpp",
            "language",
            {
                **_C_KINDS,
                "class_specifier": "class",
                "namespace_definition": "namespace",
                "concept_definition": "type",
                "alias_declaration": "type",
            },
            frozenset({"class_specifier", "struct_specifier", "namespace_definition"}),
            frozenset({"template_declaration"}),
            _C_TRANSPARENT,
        ),
    ),
]:
    for _ext in _exts:
        LANGUAGES[_ext] = _spec


def language_for(path: str) -> LanguageSpec | None:
    dot = path.rfind(".")
    return LANGUAGES.get(path[dot:].lower()) if dot != -1 else None


@cache
def _parser(module: str, function: str):  # -> tree_sitter.Parser
    import importlib

    import tree_sitter

    return tree_sitter.Parser(tree_sitter.Language(getattr(importlib.import_module(module), function)()))


def parser_for(spec: LanguageSpec):  # -> tree_sitter.Parser
    """The tree-sitter parser of a language (one per grammar, made on first use)."""
    return _parser(spec.module, spec.function)


def check_grammars(specs: Iterable[LanguageSpec] | None = None) -> list[str]:
    """Each grammar that does not load or parse, with why ("rust (No module named ...)"); [] when all do.

    `specs` defaults to every language indexed. A grammar fails in many ways (a missing package, a
    native library that does not load, a language ABI this tree-sitter does not read), so any
    exception is reported here rather than raised."""
    broken = []
    for spec in sorted(
        {s.name: s for s in (LANGUAGES.values() if specs is None else specs)}.values(), key=lambda s: s.name
    ):
        try:
            _parser(spec.module, spec.function).parse(b"x")
        except Exception as exc:  # noqa: BLE001 - reported to the user, who reinstalls the grammar
            broken.append(f"{spec.name} ({exc})")
    return broken


def parse(path: str, text: str):  # -> tree_sitter.Tree | None
    """The syntax tree of a file in a language indexed by its structure, else None: made once for
    both the chunker and the symbol graph."""
    spec = language_for(path)
    return parser_for(spec).parse(text.encode("utf-8")) if spec is not None else None


def chunk_file(path: str, text: str, config: ChunkingConfig = ChunkingConfig(), tree=None) -> list[Chunk]:
    """Chunks of one file, in source order; `tree`: its syntax tree (`parse`), when made already."""
    if not text.strip():
        return []
    spec = language_for(path)
    if spec is not None:
        return _TreeChunker(spec, path, text, config).chunks(tree)
    return _windows(
        path,
        text,
        0,
        text.count("\n") + (0 if text.endswith("\n") else 1) - 1,
        "window",
        "",
        config,
        _line_starts(text),
    )


def _line_starts(text: str) -> list[int]:
    """Byte offset of each line's start, plus one past the end."""
    data = text.encode("utf-8")
    starts = [0]
    pos = data.find(b"\n")
    while pos != -1:
        starts.append(pos + 1)
        pos = data.find(b"\n", pos + 1)
    if starts[-1] != len(data):
        starts.append(len(data))
    return starts


def _windows(
    path: str,
    text: str,
    first: int,
    last: int,
    kind: str,
    name: str,
    config: ChunkingConfig,
    starts: list[int],
) -> list[Chunk]:
    """Non-overlapping windows of `window_lines` over lines first..last; blank windows dropped."""
    data = text.encode("utf-8")
    out = []
    line = first
    while line <= last:
        end = min(line + config.window_lines - 1, last)
        b0, b1 = starts[line], starts[min(end + 1, len(starts) - 1)]
        chunk_text = data[b0:b1].decode("utf-8", errors="replace")
        if chunk_text.strip():
            out.append(Chunk(path, line, end, b0, b1, kind, name, chunk_text))
        line = end + 1
    return out


_HEADERS = frozenset({"class", "impl", "namespace", "type"})  # a container's header absorbs tiny members
_NAME_TYPES = frozenset(
    {
        "identifier",
        "type_identifier",
        "field_identifier",
        "property_identifier",
        "namespace_identifier",
        "qualified_identifier",
        "destructor_name",
        "operator_name",
        "scoped_identifier",
        "scoped_type_identifier",
        "generic_type",
    }
)


class _TreeChunker:
    def __init__(self, spec: LanguageSpec, path: str, text: str, config: ChunkingConfig) -> None:
        self.spec, self.path, self.text, self.config = spec, path, text, config
        self.data = text.encode("utf-8")
        self.starts = _line_starts(text)
        self.n_lines = len(self.starts) - 1

    def chunks(self, tree=None) -> list[Chunk]:
        if tree is None:
            tree = _parser(self.spec.module, self.spec.function).parse(self.data)
        if tree.root_node.has_error:
            log.debug("%s: syntax errors; chunking what parses", self.path)
        return self._block(tree.root_node.children, 0, self.n_lines - 1, "", "module", "", False)

    # -- structure -------------------------------------------------------------------
    def _definition(self, node):
        """The definition a top-level or member node stands for, or None."""
        if node.type in self.spec.wrappers:
            inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
            if inner is None:
                inner = next((c for c in node.named_children if c.type in self.spec.kinds), None)
            return inner if inner is not None and inner.type in self.spec.kinds else None
        if node.type in self.spec.kinds:
            if (
                node.type in ("struct_specifier", "union_specifier", "enum_specifier", "class_specifier")
                and node.child_by_field_name("body") is None
            ):
                return None  # a use of the type, not its definition
            return node
        return None

    def _members(self, children):
        """Children with transparent wrappers (#ifdef, extern "C") opened up."""
        for child in children:
            if child.type in self.spec.transparent:
                yield from self._members(child.children)
            else:
                yield child

    def _block(
        self, children, first: int, last: int, prefix: str, gap_kind: str, gap_name: str, in_container: bool
    ) -> list[Chunk]:
        """Lines first..last: definitions among `children` become chunks, the code between them gap chunks."""
        out: list[Chunk] = []
        line = first
        for child in self._members(children):
            definition = self._definition(child)
            if definition is None or child.start_point[0] < line:
                continue
            if child.start_point[0] > line:
                out += self._gap(line, child.start_point[0] - 1, gap_kind, gap_name)
            out += self._definition_chunks(
                child, definition, prefix, in_container and gap_kind in _HEADERS - {"namespace"}
            )
            line = child.end_point[0] + 1
        if line <= last:
            out += self._gap(line, last, gap_kind, gap_name)
        return self._merge_tiny(out)

    def _definition_chunks(self, outer, definition, prefix: str, in_container: bool) -> list[Chunk]:
        name = prefix + self._name(definition)
        first, last = outer.start_point[0], outer.end_point[0]
        kind = self.spec.kinds[definition.type]
        if in_container and kind == "function":
            kind = "method"
        body = definition.child_by_field_name("body")
        if last - first + 1 <= self.config.max_chunk_lines:
            names: tuple[str, ...] = ()
            if body is not None and definition.type in self.spec.containers:
                names = tuple(
                    f"{name}.{self._name(d)}"
                    for c in self._members(body.children)
                    if (d := self._definition(c)) is not None
                )
            return [self._span(first, last, kind, name, (name, *names))]
        if definition.type in self.spec.containers and body is not None:
            if any(self._definition(c) is not None for c in self._members(body.children)):
                # The header (signature, docs, fields) and the code between members are chunks
                # of the container's kind; each member is a chunk of its own.
                return self._block(body.children, first, last, name + ".", kind, name, True)
        return self._statements(first, last, body, kind, name)

    def _statements(self, first: int, last: int, body, kind: str, name: str) -> list[Chunk]:
        """A long definition cut between statements into pieces of about `window_lines`."""
        cuts = [first]
        for stmt in body.named_children if body is not None else []:
            start, end = stmt.start_point[0], stmt.end_point[0]
            if start > cuts[-1] and end - cuts[-1] + 1 > self.config.window_lines:
                cuts.append(start)
        out: list[Chunk] = []
        for a, b in zip(cuts, cuts[1:] + [last + 1]):
            if b - a > self.config.max_chunk_lines:  # one statement longer than a chunk: windows
                out += _windows(self.path, self.text, a, b - 1, kind, name, self.config, self.starts)
            else:
                out.append(self._span(a, b - 1, kind, name, (name,) if a == first else ()))
        return [c for c in out if c.text.strip()]

    def _merge_tiny(self, chunks: list[Chunk]) -> list[Chunk]:
        """Runs of tiny neighbours (one-line constants, stubs) become one chunk."""
        out: list[Chunk] = []
        in_run = False
        for c in chunks:
            tiny = c.end_line - c.start_line + 1 <= self.config.tiny_lines
            if tiny and in_run and c.end_line - out[-1].start_line + 1 <= self.config.window_lines:
                prev = out[-1]
                kind = prev.kind if prev.kind == c.kind or prev.kind in _HEADERS else "module"
                names = ", ".join(n for n in (prev.name, c.name) if n)
                out[-1] = self._span(prev.start_line, c.end_line, kind, names[:120], prev.defines + c.defines)
            else:
                out.append(c)
                in_run = tiny
        return out

    # -- naming and spans ----------------------------------------------------------------
    def _name(self, node) -> str:
        if node.type == "impl_item":  # Rust: impl Trait for Type
            target = node.child_by_field_name("type")
            trait = node.child_by_field_name("trait")
            label = _text(target) if target is not None else "?"
            return f"impl {_text(trait)} for {label}" if trait is not None else f"impl {label}"
        named = node.child_by_field_name("name")
        receiver = node.child_by_field_name("receiver") if node.type == "method_declaration" else None
        if named is not None and receiver is not None:  # Go: func (c *Circle) Area() -> Circle.Area
            owner = next((_text(n) for n in _walk(receiver) if n.type == "type_identifier"), None)
            return f"{owner}.{_text(named)}" if owner else _text(named)
        if named is not None:
            return _text(named)
        declarator = node.child_by_field_name("declarator")
        while declarator is not None:  # C/C++: int *(*f)(int) -> f
            if declarator.type in _NAME_TYPES:
                return _text(declarator)
            declarator = declarator.child_by_field_name("declarator") or next(
                (c for c in declarator.named_children if c.type in _NAME_TYPES), None
            )
        # Declarations (const x = ..., type T struct, const ( ... )): the first name inside.
        queue = list(node.named_children)
        while queue:
            child = queue.pop(0)
            if child.type in _NAME_TYPES:
                return _text(child)
            if child.child_by_field_name("body") is None:
                queue.extend(child.named_children)
        return "?"

    def _gap(self, first: int, last: int, kind: str, name: str) -> list[Chunk]:
        return _windows(self.path, self.text, first, last, kind, name, self.config, self.starts)

    def _span(self, first: int, last: int, kind: str, name: str, defines: tuple[str, ...] = ()) -> Chunk:
        b0, b1 = self.starts[first], self.starts[min(last + 1, self.n_lines)]
        return Chunk(
            self.path,
            first,
            last,
            b0,
            b1,
            kind,
            name,
            self.data[b0:b1].decode("utf-8", errors="replace"),
            defines,
        )


def _walk(node):
    yield node
    for child in node.named_children:
        yield from _walk(child)


def _text(node) -> str:
    return node.text.decode("utf-8", errors="replace")
