"""The repository symbol graph, one file at a time: what a file defines and what it imports.

Parsed with the same tree-sitter grammars as the chunker, for Python, JavaScript, TypeScript/TSX,
Go, Rust, Java, C and C++. A definition carries its signature (the header, body left out, in the
file's own syntax and indentation, so each line is a line of the file) and its container (a
class's methods and fields, a struct's fields, a trait's or interface's members, a Go or Rust
type's methods). An import is kept as written; `resolve.py` maps it to files of the repository.

Files that do not parse still give what parses; nothing here raises on odd input, and the work is
bounded: at most `MAX_DEFINITIONS` definitions and `MAX_IMPORTS` imports a file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from .chunking import LanguageSpec, language_for, parser_for

log = logging.getLogger(__name__)

# What extraction gives changes with this code: an index built by an older one re-extracts its
# files' graphs once (store meta "graph_version"), without re-chunking or re-embedding anything.
GRAPH_VERSION = "2"  # 2: Rust impl traits and #[path] modules, Go `type` keyword on named types
MAX_DEFINITIONS = 5_000  # a generated file with more exports keeps the first ones
MAX_IMPORTS = 1_000
MAX_SIGNATURE_LINES = 8
MAX_SIGNATURE_CHARS = 400

ImportKind = Literal["module", "name", "star", "include"]
# module: binds a module, namespace or package (`import a.b as c`, `import * as ns`, a Go import,
#         Rust `mod x;`); name: binds one name of a module (`from m import x`, `import {x}`,
#         `use a::X`, Java `import a.X`); star: every public name of a module (`from m import *`,
#         `export * from`, `use a::*`, Java `import a.*`); include: C/C++ `#include "..."`.


@dataclass(frozen=True)
class Definition:
    name: str
    container: str  # the enclosing type's name ("" at the top level); nested: "Outer.Inner"
    kind: str  # function, method, class, type, constant, field, macro, namespace; impl: a Rust type's
    # trait (named after the trait, the type as its container)
    start_line: int  # 0-based, first line of the signature (decorators and export keyword included)
    end_line: int  # last line of the whole definition
    signature: str  # header lines as in the file; a container's ends where its body opens

    @property
    def qualified(self) -> str:
        return f"{self.container}.{self.name}" if self.container else self.name


@dataclass(frozen=True)
class Import:
    kind: ImportKind
    module: str  # as written: ".models", "./util", "crate::a::b", "example.com/x/pkg", "com.x", "a/b.h"
    name: str = ""  # the imported name, for kind "name"
    alias: str = ""  # the local name it is bound to; "" when it is `name` (or the module's last part)
    line: int = 0

    @property
    def binding(self) -> str:
        """The name this import makes visible in the file ("" for star imports and includes)."""
        if self.kind in ("star", "include"):
            return ""
        if self.alias:
            return self.alias
        if self.kind == "name":
            return self.name
        if self.kind == "module" and self.module:
            return re.split(r"[./:\\]+", self.module.rstrip("/"))[-1]
        return ""


@dataclass
class FileGraph:
    language: str
    definitions: list[Definition] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    exports: tuple[str, ...] | None = None  # Python's literal `__all__`, when the file has one
    package: str = ""  # Go's package name, Java's package

    def top_level(self, name: str) -> list[Definition]:
        return [d for d in self.definitions if d.name == name and not d.container]


def extract(path: str, text: str, tree=None) -> FileGraph | None:
    """The definitions and imports of one file; None for a language the graph does not know.
    `tree`: its syntax tree (chunking.parse), when made already."""
    spec = language_for(path)
    if spec is None:
        return None
    data = text.encode("utf-8")
    if tree is None:
        tree = parser_for(spec).parse(data)
    walker = _Walker(spec, data, path)
    try:
        walker.run(tree.root_node)
    except RecursionError:  # absurdly deep nesting: keep what was found
        log.info("%s: nesting too deep; the symbol graph keeps what it found", path)
    return walker.graph


# -- the walk ------------------------------------------------------------------------------------

_BRACE = frozenset({"javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp"})
# Node types that are definitions, per grammar family: kind, and whether members live inside.
_PY = {"function_definition": "function", "class_definition": "class"}
_JS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "abstract_class_declaration": "class",
    "class": "class",
    "method_definition": "method",
    "interface_declaration": "type",
    "type_alias_declaration": "type",
    "enum_declaration": "type",
    "internal_module": "namespace",
    "module": "namespace",
    "public_field_definition": "field",
    "field_definition": "field",
    "property_signature": "field",
    "method_signature": "method",
    "abstract_method_signature": "method",
    "function_signature": "function",
}
_GO = {
    "function_declaration": "function",
    "method_declaration": "method",
    "method_elem": "method",
    "field_declaration": "field",
}
_RUST = {
    "function_item": "function",
    "function_signature_item": "function",
    "struct_item": "type",
    "enum_item": "type",
    "union_item": "type",
    "trait_item": "type",
    "type_item": "type",
    "const_item": "constant",
    "static_item": "constant",
    "macro_definition": "macro",
    "field_declaration": "field",
    "enum_variant": "field",
}
_JAVA = {
    "class_declaration": "class",
    "interface_declaration": "type",
    "enum_declaration": "type",
    "record_declaration": "class",
    "annotation_type_declaration": "type",
    "method_declaration": "method",
    "constructor_declaration": "method",
    "field_declaration": "field",
    "constant_declaration": "field",
    "enum_constant": "field",
}
_C = {
    "function_definition": "function",
    "struct_specifier": "type",
    "union_specifier": "type",
    "enum_specifier": "type",
    "class_specifier": "class",
    "preproc_function_def": "macro",
    "preproc_def": "macro",
    "field_declaration": "field",
    "enumerator": "field",
    "concept_definition": "type",
    "alias_declaration": "type",
}
_KINDS = {
    "python": _PY,
    "javascript": _JS,
    "typescript": _JS,
    "tsx": _JS,
    "go": _GO,
    "rust": _RUST,
    "java": _JAVA,
    "c": _C,
    "cpp": _C,
}
# Containers: their members are definitions with this one as container.
_CONTAINERS = frozenset(
    {
        "class_definition",
        "class_declaration",
        "abstract_class_declaration",
        "class",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "annotation_type_declaration",
        "struct_item",
        "enum_item",
        "union_item",
        "trait_item",
        "struct_specifier",
        "union_specifier",
        "enum_specifier",
        "class_specifier",
        "struct_type",
        "interface_type",
    }
)
# Wrappers and transparent blocks: look inside, same container.
_OPEN = frozenset(
    {
        "decorated_definition",
        "export_statement",
        "ambient_declaration",
        "template_declaration",
        "preproc_ifdef",
        "preproc_if",
        "preproc_else",
        "preproc_elif",
        "linkage_specification",
        "declaration_list",
        "namespace_definition",
        "block",
        "class_body",
        "interface_body",
        "enum_body",
        "enum_body_declarations",
        "field_declaration_list",
        "enum_variant_list",
        "enumerator_list",
        "statement_block",
        "object_type",
        "access_specifier",
    }
)
_NAME_TYPES = frozenset(
    {
        "identifier",
        "type_identifier",
        "field_identifier",
        "property_identifier",
        "namespace_identifier",
        "destructor_name",
        "operator_name",
        "package_identifier",
        "private_property_identifier",
    }
)
_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})


class _Walker:
    def __init__(self, spec: LanguageSpec, data: bytes, path: str = "") -> None:
        self.spec = spec
        self.path = path
        self.rust_paths: dict[str, str] = {}  # Rust `#[path = "x.rs"] mod m;`: m -> the module path of x.rs
        self.lang = spec.name
        self.kinds = _KINDS[self.lang]
        self.data = data
        self.graph = FileGraph(self.lang)

    def run(self, root) -> None:
        for child in _opened(root):
            self._top(child)
        if self.rust_paths:
            self.graph.imports = [_rust_repathed(imp, self.rust_paths) for imp in self.graph.imports]
        self._members(root, "", top=True)

    # -- imports ------------------------------------------------------------------------------
    def _add_import(self, imp: Import) -> None:
        if len(self.graph.imports) < MAX_IMPORTS:
            self.graph.imports.append(imp)

    def _top(self, node) -> None:
        """Imports, packages and `__all__` among the top-level statements (and #if blocks)."""
        t = node.type
        line = node.start_point[0]
        lang = self.lang
        if lang == "python":
            if t == "import_statement":
                for name in node.children_by_field_name("name"):
                    module, alias = _py_aliased(name)
                    self._add_import(Import("module", module, alias=alias, line=line))
            elif t == "import_from_statement":
                module_node = node.child_by_field_name("module_name")
                module = _text(module_node) if module_node is not None else ""
                if any(c.type == "wildcard_import" for c in node.named_children):
                    self._add_import(Import("star", module, line=line))
                for name in node.children_by_field_name("name"):
                    name_text, alias = _py_aliased(name)
                    self._add_import(Import("name", module, name_text, alias, line))
            elif t == "expression_statement" and node.named_child_count == 1:
                self._python_all(node.named_children[0])
            elif t in ("if_statement", "try_statement"):  # guarded imports: try/except ImportError
                for child in node.named_children:
                    for inner in child.named_children if child.type != "block" else [child]:
                        if inner.type == "block":
                            for stmt in inner.named_children:
                                self._top(stmt)
        elif lang in ("javascript", "typescript", "tsx"):
            self._js_top(node, line)
        elif lang == "go":
            if t == "package_clause":
                self.graph.package = _text(node.named_children[0]) if node.named_child_count else ""
            elif t == "import_declaration":
                for spec in _descendants(node, "import_spec"):
                    path = spec.child_by_field_name("path")
                    name = spec.child_by_field_name("name")
                    alias = _text(name) if name is not None else ""
                    module = _string(path)
                    if alias == ".":
                        self._add_import(Import("star", module, line=spec.start_point[0]))
                    elif alias != "_":
                        self._add_import(Import("module", module, alias=alias, line=spec.start_point[0]))
        elif lang == "rust":
            if t == "mod_item" and node.child_by_field_name("body") is None:
                name = node.child_by_field_name("name")
                if name is not None:
                    module = self._rust_path_module(node)
                    if module:  # `#[path = "core.rs"] mod imp;`: `use self::imp::X` means core.rs's X
                        self.rust_paths[_text(name)] = module
                        self._add_import(Import("module", module, alias=_text(name), line=line))
                    else:
                        self._add_import(Import("module", "self::" + _text(name), line=line))
            elif t == "use_declaration":
                argument = node.child_by_field_name("argument")
                if argument is not None:
                    for imp in _rust_uses(argument, "", line):
                        self._add_import(imp)
        elif lang == "java":
            if t == "package_declaration":
                self.graph.package = _text(node.named_children[0]) if node.named_child_count else ""
            elif t == "import_declaration":
                path = next(
                    (c for c in node.named_children if c.type in ("scoped_identifier", "identifier")), None
                )
                if path is not None:
                    dotted = _text(path)
                    if any(c.type == "asterisk" for c in node.named_children):
                        self._add_import(Import("star", dotted, line=line))
                    elif "." in dotted:
                        module, _, name = dotted.rpartition(".")
                        self._add_import(Import("name", module, name, line=line))
        elif lang in ("c", "cpp"):
            if t == "preproc_include":
                path = node.child_by_field_name("path")
                if path is not None:
                    text = _text(path)
                    self._add_import(
                        Import(
                            "include",
                            text.strip('"<>'),
                            alias="<>" if text.startswith("<") else "",
                            line=line,
                        )
                    )
            elif t in (
                "preproc_ifdef",
                "preproc_if",
                "preproc_else",
                "preproc_elif",
                "linkage_specification",
                "declaration_list",
            ):
                for child in node.named_children:
                    self._top(child)

    def _rust_path_module(self, mod_item) -> str:
        """The module path, as `use` would spell it, of the file a `#[path = "..."]` attribute gives a
        `mod` declaration, when that file is a sibling (`x.rs`, `x/mod.rs`); "" otherwise."""
        sibling = mod_item.prev_named_sibling
        while sibling is not None and sibling.type == "attribute_item":
            m = re.fullmatch(rb'#\[\s*path\s*=\s*"([A-Za-z_]\w*)(\.rs|/mod\.rs)"\s*\]', sibling.text or b"")
            if m:
                # Relative to the declaring file's folder: its own children for mod.rs and crate roots.
                own = self.path.rsplit("/", 1)[-1] in ("mod.rs", "lib.rs", "main.rs")
                return ("self::" if own else "super::") + m.group(1).decode()
            sibling = sibling.prev_named_sibling
        return ""

    def _python_all(self, node) -> None:
        """`__all__ = [...]` / `(...)` and `__all__ += [...]`, when literal."""
        if node.type not in ("assignment", "augmented_assignment"):
            return
        left = node.child_by_field_name("left")
        right = node.child_by_field_name("right")
        if left is None or right is None or _text(left) != "__all__" or right.type not in ("list", "tuple"):
            return
        names = tuple(_string(s) for s in right.named_children if s.type == "string")
        base = self.graph.exports or () if node.type == "augmented_assignment" else ()
        self.graph.exports = base + names

    def _add_specifiers(self, clause, module: str, line: int) -> None:
        """`{a, b as c}` of an import or an `export ... from`: each name, with its alias."""
        for spec in clause.named_children:
            name = spec.child_by_field_name("name")
            alias = spec.child_by_field_name("alias")
            if name is not None:
                self._add_import(
                    Import("name", module, _text(name), _text(alias) if alias is not None else "", line)
                )

    def _js_top(self, node, line: int) -> None:
        t = node.type
        if t == "import_statement":
            source = node.child_by_field_name("source")
            if source is None:
                return
            module = _string(source)
            clause = next((c for c in node.named_children if c.type == "import_clause"), None)
            if clause is None:
                return
            for part in clause.named_children:
                if part.type == "identifier":  # default import
                    self._add_import(Import("name", module, "default", _text(part), line))
                elif part.type == "namespace_import":
                    ident = next((c for c in part.named_children if c.type == "identifier"), None)
                    if ident is not None:
                        self._add_import(Import("module", module, alias=_text(ident), line=line))
                elif part.type == "named_imports":
                    self._add_specifiers(part, module, line)
        elif t == "export_statement":
            source = node.child_by_field_name("source")
            if source is None:
                return
            module = _string(source)
            clause = next((c for c in node.named_children if c.type == "export_clause"), None)
            namespace = next((c for c in node.named_children if c.type == "namespace_export"), None)
            if clause is not None:
                self._add_specifiers(clause, module, line)
            elif namespace is not None:
                ident = next(
                    (c for c in namespace.named_children if c.type in _NAME_TYPES | {"string"}), None
                )
                if ident is not None:
                    self._add_import(Import("module", module, alias=_string(ident), line=line))
            else:
                self._add_import(Import("star", module, line=line))
        elif t in ("lexical_declaration", "variable_declaration"):
            for decl in node.named_children:  # const x = require("./x"), const {a, b} = require("./x")
                value = decl.child_by_field_name("value")
                target = decl.child_by_field_name("name")
                if value is None or target is None or value.type != "call_expression":
                    continue
                function = value.child_by_field_name("function")
                arguments = value.child_by_field_name("arguments")
                if function is None or _text(function) != "require" or arguments is None:
                    continue
                strings = [a for a in arguments.named_children if a.type == "string"]
                if not strings:
                    continue
                module = _string(strings[0])
                if target.type == "identifier":
                    self._add_import(Import("module", module, alias=_text(target), line=line))
                elif target.type == "object_pattern":
                    for prop in target.named_children:
                        if prop.type == "shorthand_property_identifier_pattern":
                            self._add_import(Import("name", module, _text(prop), line=line))
                        elif prop.type == "pair_pattern":
                            key = prop.child_by_field_name("key")
                            val = prop.child_by_field_name("value")
                            if key is not None and val is not None:
                                self._add_import(Import("name", module, _text(key), _text(val), line))

    # -- definitions --------------------------------------------------------------------------
    def _add(self, node, outer, name: str, container: str, kind: str, signature: str) -> None:
        if len(self.graph.definitions) >= MAX_DEFINITIONS or not name:
            return
        self.graph.definitions.append(
            Definition(name, container, kind, outer.start_point[0], node.end_point[0], signature)
        )

    def _members(self, node, container: str, top: bool = False) -> None:
        """Definitions among `node`'s children (wrappers and transparent blocks opened up)."""
        for child in _opened(node):
            if len(self.graph.definitions) >= MAX_DEFINITIONS:
                return
            self._visit(child, child, container, top)

    def _visit(self, node, outer, container: str, top: bool) -> None:
        t = node.type
        lang = self.lang
        if t in ("decorated_definition", "export_statement", "ambient_declaration", "template_declaration"):
            inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
            if inner is None:
                inner = next(
                    (
                        c
                        for c in node.named_children
                        if c.type in self.kinds
                        or c.type
                        in (
                            "lexical_declaration",
                            "variable_declaration",
                            "declaration",
                            "function_definition",
                            "class_specifier",
                            "struct_specifier",
                        )
                    ),
                    None,
                )
            if inner is not None:
                self._visit(inner, outer, container, top)
            return
        if lang == "python":
            self._python(node, outer, container, top)
        elif lang in ("javascript", "typescript", "tsx"):
            self._js(node, outer, container, top)
        elif lang == "go":
            self._go(node, outer, container)
        elif lang == "rust":
            self._rust(node, outer, container)
        elif lang == "java":
            self._java(node, outer, container)
        else:
            self._c(node, outer, container)

    def _container(self, node, outer, name: str, container: str, kind: str, body) -> None:
        """A class-like definition: its header, then its members with it as their container."""
        if body is not None and body.type in ("ordered_field_declaration_list", "parameters"):
            body = None  # a tuple struct or record header: the whole definition is its signature
        if not name:
            return  # anonymous (`typedef struct {...} T;`): the typedef names it, whole
        self._add(node, outer, name, container, kind, self._header(outer, body, open_body=True))
        if body is not None:
            self._members(body, f"{container}.{name}" if container else name)

    # Python
    def _python(self, node, outer, container: str, top: bool) -> None:
        t = node.type
        if t == "function_definition":
            kind = "method" if container else "function"
            self._add(
                node,
                outer,
                _name(node),
                container,
                kind,
                self._header(outer, node.child_by_field_name("body")),
            )
            if container and _name(node) == "__init__":
                self._python_self_fields(node, container)
        elif t == "class_definition":
            self._container(node, outer, _name(node), container, "class", node.child_by_field_name("body"))
        elif t == "expression_statement" and (top or container) and node.named_child_count:
            assignment = node.named_children[0]
            if assignment.type != "assignment":
                return
            left = assignment.child_by_field_name("left")
            if left is not None and left.type == "identifier" and _text(left) != "__all__":
                kind = "field" if container else "constant"
                self._add(node, outer, _text(left), container, kind, self._line_of(outer))
        elif t in ("if_statement", "try_statement") and top:  # definitions under a guard
            for child in node.named_children:
                if child.type == "block":
                    self._members(child, container, top)
                elif child.type in ("else_clause", "elif_clause", "except_clause", "finally_clause"):
                    body = child.child_by_field_name("body") or next(
                        (c for c in child.named_children if c.type == "block"), None
                    )
                    if body is not None:
                        self._members(body, container, top)

    def _python_self_fields(self, init, container: str) -> None:
        """`self.x = ...` in `__init__`: the instance's fields, for the class outline."""
        body = init.child_by_field_name("body")
        seen: set[str] = set()
        for stmt in body.named_children if body is not None else []:
            if stmt.type != "expression_statement" or not stmt.named_child_count:
                continue
            assignment = stmt.named_children[0]
            if assignment.type != "assignment":
                continue
            left = assignment.child_by_field_name("left")
            if left is None or left.type != "attribute":
                continue
            obj = left.child_by_field_name("object")
            attr = left.child_by_field_name("attribute")
            if obj is None or attr is None or _text(obj) != "self" or _text(attr) in seen:
                continue
            seen.add(_text(attr))
            self._add(stmt, stmt, _text(attr), container, "field", self._line_of(stmt))

    # JavaScript / TypeScript
    def _js(self, node, outer, container: str, top: bool) -> None:
        t = node.type
        if t in ("class_declaration", "abstract_class_declaration", "interface_declaration", "class"):
            kind = self.kinds[t]
            self._container(node, outer, _name(node), container, kind, node.child_by_field_name("body"))
        elif t == "enum_declaration":
            self._add(node, outer, _name(node), container, "type", self._line_of(outer, node.end_byte))
        elif t in ("internal_module", "module"):
            body = node.child_by_field_name("body")
            if body is not None:
                self._members(body, container, top)
        elif t in ("lexical_declaration", "variable_declaration") and (top or container):
            for decl in node.named_children:
                if decl.type != "variable_declarator":
                    continue
                name = decl.child_by_field_name("name")
                value = decl.child_by_field_name("value")
                if name is None or name.type != "identifier":
                    continue
                if value is not None and value.type in _FUNCTION_VALUES:
                    self._add(
                        decl,
                        outer,
                        _text(name),
                        container,
                        "function",
                        self._header(outer, value.child_by_field_name("body")),
                    )
                elif value is not None and value.type in ("class", "class_expression"):
                    self._container(
                        value, outer, _text(name), container, "class", value.child_by_field_name("body")
                    )
                elif (
                    value is not None
                    and value.type == "call_expression"
                    and _text(value.child_by_field_name("function") or value).startswith("require")
                ):
                    continue  # an import, not a definition
                else:
                    self._add(decl, outer, _text(name), container, "constant", self._line_of(outer))
        elif t in self.kinds:
            kind = self.kinds[t]
            body = node.child_by_field_name("body")
            if kind == "field":
                self._add(node, outer, _name(node), container, "field", self._line_of(outer))
            elif kind == "type":
                self._add(node, outer, _name(node), container, "type", self._line_of(outer, node.end_byte))
            else:
                if kind == "function" and container:
                    kind = "method"
                self._add(node, outer, _name(node), container, kind, self._header(outer, body))

    # Go
    def _go(self, node, outer, container: str) -> None:
        t = node.type
        if t == "function_declaration":
            self._add(
                node,
                outer,
                _name(node),
                "",
                "function",
                self._header(outer, node.child_by_field_name("body")),
            )
        elif t == "method_declaration":
            receiver = node.child_by_field_name("receiver")
            owner = (
                next((_text(n) for n in _walk(receiver) if n.type == "type_identifier"), "")
                if receiver is not None
                else ""
            )
            self._add(
                node,
                outer,
                _name(node),
                owner,
                "method",
                self._header(outer, node.child_by_field_name("body")),
            )
        elif t == "type_declaration":
            for spec in node.named_children:
                if spec.type not in ("type_spec", "type_alias"):
                    continue
                name = _name(spec)
                body = spec.child_by_field_name("type")
                if body is not None and body.type in ("struct_type", "interface_type"):
                    inner = (
                        body
                        if body.type == "interface_type"
                        else next(
                            (c for c in body.named_children if c.type == "field_declaration_list"), None
                        )
                    )
                    start = outer if node.named_child_count == 1 else spec
                    brace = self.data.find(b"{", spec.start_byte, spec.end_byte)
                    header = self._clip(start.start_byte, brace + 1) if brace != -1 else self._line_of(spec)
                    self._add(spec, start, name, container, "type", header)
                    if inner is not None:
                        for member in inner.named_children:
                            if member.type in ("field_declaration", "method_elem"):
                                for member_name in _go_names(member):
                                    self._add(
                                        member,
                                        member,
                                        member_name,
                                        name,
                                        "field" if member.type == "field_declaration" else "method",
                                        self._line_of(member),
                                    )
                else:  # `type FieldMap map[K]V`, with its keyword when it stands alone
                    start = outer if node.named_child_count == 1 else spec
                    self._add(spec, start, name, container, "type", self._line_of(start))
        elif t in ("const_declaration", "var_declaration"):
            for spec in _descendants(node, ("const_spec", "var_spec")):
                for name in spec.children_by_field_name("name"):
                    self._add(spec, spec, _text(name), "", "constant", self._line_of(spec))

    # Rust
    def _rust(self, node, outer, container: str) -> None:
        t = node.type
        if t in ("struct_item", "enum_item", "union_item", "trait_item"):
            self._container(node, outer, _name(node), "", "type", node.child_by_field_name("body"))
        elif t == "impl_item":
            target = node.child_by_field_name("type")
            owner = _base_type(target) if target is not None else ""
            body = node.child_by_field_name("body")
            trait = node.child_by_field_name("trait")
            implementor = owner or (
                _text(target) if target is not None and target.type == "primitive_type" else ""
            )
            if trait is not None and implementor and _base_type(trait):
                # `impl Math for Bigint`, `impl FloatErrors for u64`: the type's traits, whose provided
                # methods it has too.
                self._add(
                    node,
                    outer,
                    _base_type(trait),
                    implementor,
                    "impl",
                    self._header(outer, body, open_body=True),
                )
            if body is not None and owner:
                self._members(body, owner)
        elif t == "mod_item":
            body = node.child_by_field_name("body")
            if body is not None:  # an inline module: its items, with it as their container
                self._container(node, outer, _name(node), container, "namespace", body)
        elif t in ("function_item", "function_signature_item"):
            kind = "method" if container else "function"
            self._add(
                node,
                outer,
                _name(node),
                container,
                kind,
                self._header(outer, node.child_by_field_name("body")),
            )
        elif t in ("field_declaration", "enum_variant"):
            self._add(node, outer, _name(node), container, "field", self._line_of(outer))
        elif t in ("const_item", "static_item", "type_item", "macro_definition"):
            self._add(node, outer, _name(node), container, self.kinds[t], self._line_of(outer))

    # Java
    def _java(self, node, outer, container: str) -> None:
        t = node.type
        if t in (
            "class_declaration",
            "interface_declaration",
            "enum_declaration",
            "record_declaration",
            "annotation_type_declaration",
        ):
            self._container(
                node, outer, _name(node), container, self.kinds[t], node.child_by_field_name("body")
            )
        elif t in ("method_declaration", "constructor_declaration"):
            self._add(
                node,
                outer,
                _name(node),
                container,
                "method",
                self._header(outer, node.child_by_field_name("body")),
            )
        elif t in ("field_declaration", "constant_declaration"):
            for decl in node.children_by_field_name("declarator"):
                self._add(node, outer, _name(decl), container, "field", self._line_of(outer))
        elif t == "enum_constant":
            self._add(node, outer, _name(node), container, "field", self._line_of(outer))
        elif t == "enum_body_declarations":
            self._members(node, container)

    # C and C++
    def _c(self, node, outer, container: str) -> None:
        t = node.type
        if t in ("struct_specifier", "union_specifier", "enum_specifier", "class_specifier"):
            body = node.child_by_field_name("body")
            if body is None:
                return  # a use of the type, not its definition
            self._container(
                node, outer, _name(node), container, "class" if t == "class_specifier" else "type", body
            )
        elif t == "type_definition":
            inner = node.child_by_field_name("type")
            if (
                inner is not None
                and inner.type in ("struct_specifier", "union_specifier", "enum_specifier")
                and inner.child_by_field_name("body") is not None
            ):
                self._c(inner, outer, container)
            for decl in node.children_by_field_name("declarator"):
                name = _declarator_name(decl)
                if name and (
                    inner is None or _name(inner) != name or inner.child_by_field_name("body") is None
                ):
                    self._add(node, outer, name, container, "type", self._line_of(outer, node.end_byte))
        elif t == "function_definition":
            declarator = node.child_by_field_name("declarator")
            full = _declarator_name(declarator, qualified=True) if declarator is not None else ""
            owner, _, name = full.rpartition("::")
            self._add(
                node,
                outer,
                name,
                owner.rpartition("::")[2] or container,
                "method" if owner or container else "function",
                self._header(outer, node.child_by_field_name("body")),
            )
        elif t in ("declaration", "field_declaration"):
            for decl in node.children_by_field_name("declarator"):
                name = _declarator_name(decl)
                if not name:
                    continue
                function = any(n.type == "function_declarator" for n in _walk(decl))
                if t == "declaration" and not function and container:
                    continue
                kind = (
                    ("method" if container else "function")
                    if function
                    else ("field" if container else "constant")
                )
                self._add(node, outer, name, container, kind, self._line_of(outer, until=node.end_byte))
            type_node = node.child_by_field_name("type")
            if type_node is not None and type_node.type in (
                "struct_specifier",
                "union_specifier",
                "enum_specifier",
                "class_specifier",
            ):
                self._c(type_node, type_node, container)
        elif t in ("preproc_def", "preproc_function_def"):
            self._add(node, outer, _name(node), container, "macro", self._line_of(outer))
        elif t == "enumerator":
            self._add(node, outer, _name(node), container, "field", self._line_of(outer))
        elif t == "namespace_definition":
            body = node.child_by_field_name("body")
            if body is not None:
                self._members(body, container)
        elif t in (
            "preproc_ifdef",
            "preproc_if",
            "preproc_else",
            "preproc_elif",
            "linkage_specification",
            "declaration_list",
            "access_specifier",
        ):
            self._members(node, container)
        elif t in ("concept_definition", "alias_declaration"):
            self._add(node, outer, _name(node), container, "type", self._line_of(outer))

    # -- signature text -------------------------------------------------------------------------
    def _line_start(self, byte: int) -> int:
        """Where the line holding `byte` starts, when only indentation comes before it; else `byte`
        (a definition after other code on its line starts where it starts)."""
        start = self.data.rfind(b"\n", 0, byte) + 1
        return start if not self.data[start:byte].strip() else byte

    def _clip(self, start: int, end: int) -> str:
        """Bytes start..end as whole lines from the line start (so lines keep their indentation)."""
        text = self.data[self._line_start(start) : end].decode("utf-8", errors="replace").rstrip()
        lines = text.split("\n")
        if len(lines) > MAX_SIGNATURE_LINES:
            lines = lines[:MAX_SIGNATURE_LINES]
        text = "\n".join(line.rstrip() for line in lines)
        return text[:MAX_SIGNATURE_CHARS]

    def _header(self, outer, body, open_body: bool = False) -> str:
        """The definition up to where its body opens: `def f(a, b) -> int:` or `func F(a int) error {`."""
        if body is None:
            return self._clip(outer.start_byte, outer.end_byte)
        end = body.start_byte
        if self.lang != "python" and open_body:
            end += 1  # keep the opening brace of a container
        header = self._clip(outer.start_byte, end)
        if open_body:
            return header
        # The body left out, said in the language's own way.
        if self.lang == "python":
            return header + " ..."
        if body.type in (
            "block",
            "statement_block",
            "compound_statement",
            "constructor_body",
            "function_body",
        ):
            return header + " { ... }"
        return header + " ..."

    def _line_of(self, outer, until: int | None = None) -> str:
        """A one-statement definition (field, constant, a small type whose fields are its signature):
        its lines, cut at the signature limits."""
        return self._clip(outer.start_byte, until if until is not None else outer.end_byte)


# -- helpers ---------------------------------------------------------------------------------------


def _opened(node) -> Iterator:
    """Named children, with the statements inside ERROR nodes (where a syntax error swallowed them)
    counted as children too."""
    for child in node.named_children:
        if child.type == "ERROR":
            yield from _opened(child)
        else:
            yield child


def _text(node) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None else ""


def _string(node) -> str:
    """A string literal's content, quotes removed."""
    text = _text(node)
    return text[1:-1] if len(text) >= 2 and text[0] in "\"'`" and text[-1] == text[0] else text


def _walk(node) -> Iterator:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.named_children))


def _descendants(node, types) -> Iterator:
    types = (types,) if isinstance(types, str) else types
    for n in _walk(node):
        if n.type in types:
            yield n


def _name(node) -> str:
    named = node.child_by_field_name("name")
    if named is not None:
        return _text(named)
    declarator = node.child_by_field_name("declarator")
    if declarator is not None:
        return _declarator_name(declarator)
    for child in node.named_children:
        if child.type in _NAME_TYPES:
            return _text(child)
    return ""


def _declarator_name(node, qualified: bool = False) -> str:
    """The name a C/C++ declarator declares: `*(*f)(int)` -> f; `K::m` -> m (or K::m, qualified)."""
    seen = 0
    while node is not None and seen < 64:
        seen += 1
        if node.type in _NAME_TYPES:
            return _text(node)
        if node.type == "qualified_identifier":
            if qualified:
                return _text(node).replace(" ", "")
            node = node.child_by_field_name("name")
            continue
        inner = node.child_by_field_name("declarator")
        if inner is None:
            inner = next(
                (
                    c
                    for c in node.named_children
                    if c.type in _NAME_TYPES
                    or c.type.endswith("declarator")
                    or c.type == "qualified_identifier"
                ),
                None,
            )
        node = inner
    return ""


def _base_type(node) -> str:
    """`Foo<T>` -> Foo, `crate::a::Foo` -> Foo, `&mut Foo` -> Foo."""
    names = [n for n in _walk(node) if n.type == "type_identifier"]
    return _text(names[0]) if names else ""


def _go_names(member) -> list[str]:
    names = [_text(n) for n in member.children_by_field_name("name")]
    if names:
        return names
    # An embedded field or interface: its type's name.
    return [_text(n) for n in _walk(member) if n.type == "type_identifier"][:1]


def _py_aliased(node) -> tuple[str, str]:
    if node.type == "aliased_import":
        name = node.child_by_field_name("name")
        alias = node.child_by_field_name("alias")
        return _text(name), _text(alias)
    return _text(node), ""


def _rust_uses(node, prefix: str, line: int) -> Iterator[Import]:
    """`use a::{b, c::D as E, self, f::*}` flattened to imports; the module is the path before the name."""
    t = node.type

    def join(a: str, b: str) -> str:
        return f"{a}::{b}" if a and b else a or b

    if t == "scoped_use_list":
        path = node.child_by_field_name("path")
        base = join(prefix, _text(path).replace(" ", "") if path is not None else "")
        listing = node.child_by_field_name("list")
        if listing is not None:
            yield from _rust_uses(listing, base, line)
    elif t == "use_list":
        for child in node.named_children:
            yield from _rust_uses(child, prefix, line)
    elif t == "use_as_clause":
        path = node.child_by_field_name("path")
        alias = node.child_by_field_name("alias")
        full = join(prefix, _text(path).replace(" ", "") if path is not None else "")
        module, _, name = full.rpartition("::")
        yield _rust_item(module, name, _text(alias), line)
    elif t == "use_wildcard":
        inner = next(iter(node.named_children), None)
        yield Import(
            "star", join(prefix, _text(inner).replace(" ", "") if inner is not None else ""), line=line
        )
    elif t == "self":
        yield Import("module", prefix, line=line)
    elif t in ("scoped_identifier", "identifier", "crate", "super"):
        full = join(prefix, _text(node).replace(" ", ""))
        module, _, name = full.rpartition("::")
        yield _rust_item(module, name, "", line)


def _rust_repathed(imp: Import, paths: dict[str, str]) -> Import:
    """A `use` through a `#[path]` module (`self::imp::X`, `imp::X`), spelled through its file's module."""
    head, _, rest = imp.module.removeprefix("self::").partition("::")
    if head not in paths or imp.kind == "module" and imp.module == paths[head]:
        return imp
    return Import(imp.kind, f"{paths[head]}::{rest}" if rest else paths[head], imp.name, imp.alias, imp.line)


def _rust_item(module: str, name: str, alias: str, line: int) -> Import:
    """`use a::b::X`: X may be an item of module a::b or the module a::b::X itself; resolution decides
    (kind "name", module "a::b")."""
    return Import("name", module, name, alias, line)
