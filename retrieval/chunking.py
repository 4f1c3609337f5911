"""Splitting a file into retrievable chunks: tree-sitter definitions for Python, line windows otherwise.

A chunk never overlaps another chunk of the same file, and keeps its exact line range
(0-based, end inclusive) and byte range, so a caller can drop the chunks that cover the
cursor's neighbourhood and a prompt can cite where each snippet lives.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    path: str
    start_line: int
    end_line: int
    start_byte: int
    end_byte: int
    kind: str  # "function", "class", "method", "module" (top-level code), "window"
    name: str
    text: str

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


@lru_cache(maxsize=None)
def _python_parser():  # -> tree_sitter.Parser
    import tree_sitter
    import tree_sitter_python

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))


def chunk_file(path: str, text: str, config: ChunkingConfig = ChunkingConfig()) -> list[Chunk]:
    """Chunks of one file, in source order."""
    if not text.strip():
        return []
    if path.endswith((".py", ".pyi")):
        return _PythonChunker(path, text, config).chunks()
    return _windows(path, text, 0, text.count("\n") + (0 if text.endswith("\n") else 1) - 1,
                    "window", "", config, _line_starts(text))


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


def _windows(path: str, text: str, first: int, last: int, kind: str, name: str,
             config: ChunkingConfig, starts: list[int]) -> list[Chunk]:
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


class _PythonChunker:
    _DEFS = {"function_definition", "class_definition", "decorated_definition"}

    def __init__(self, path: str, text: str, config: ChunkingConfig) -> None:
        self.path, self.text, self.config = path, text, config
        self.data = text.encode("utf-8")
        self.starts = _line_starts(text)
        self.n_lines = len(self.starts) - 1

    def chunks(self) -> list[Chunk]:
        tree = _python_parser().parse(self.data)
        if tree.root_node.has_error:
            log.debug("%s: syntax errors; chunking what parses", self.path)
        return self._block(tree.root_node.children, 0, self.n_lines - 1, "", "module", "", False)

    def _block(self, children, first: int, last: int, prefix: str, gap_kind: str,
               gap_name: str, parent_is_class: bool) -> list[Chunk]:
        """Lines first..last: definitions among `children` become chunks, the code between them gap chunks."""
        out: list[Chunk] = []
        line = first
        for child in children:
            definition = self._definition(child)
            if definition is None:
                continue
            if child.start_point[0] > line:
                out += self._gap(line, child.start_point[0] - 1, gap_kind, gap_name)
            out += self._definition_chunks(child, definition, prefix, parent_is_class)
            line = child.end_point[0] + 1
        if line <= last:
            out += self._gap(line, last, gap_kind, gap_name)
        return out

    def _definition(self, node):
        if node.type == "decorated_definition":
            inner = node.child_by_field_name("definition")
            return inner if inner is not None and inner.type in self._DEFS else None
        return node if node.type in ("function_definition", "class_definition") else None

    def _gap(self, first: int, last: int, kind: str, name: str) -> list[Chunk]:
        return _windows(self.path, self.text, first, last, kind, name, self.config, self.starts)

    def _span(self, first: int, last: int, kind: str, name: str) -> Chunk:
        b0, b1 = self.starts[first], self.starts[min(last + 1, self.n_lines)]
        return Chunk(self.path, first, last, b0, b1, kind, name,
                     self.data[b0:b1].decode("utf-8", errors="replace"))

    def _definition_chunks(self, outer, definition, prefix: str, parent_is_class: bool) -> list[Chunk]:
        name_node = definition.child_by_field_name("name")
        name = prefix + (name_node.text.decode("utf-8", errors="replace") if name_node else "?")
        first, last = outer.start_point[0], outer.end_point[0]
        is_class = definition.type == "class_definition"
        kind = "class" if is_class else ("method" if parent_is_class else "function")
        if last - first + 1 <= self.config.max_chunk_lines:
            return [self._span(first, last, kind, name)]
        if is_class:
            body = definition.child_by_field_name("body")
            methods = [c for c in (body.children if body else []) if self._definition(c) is not None]
            if methods:
                # The class header (decorators, signature, docstring, attributes) and
                # the code between methods are "class" chunks; each method its own chunk.
                return self._block(body.children, first, last, name + ".", "class", name, True)
        # A long function, or a class without methods: consecutive windows, same name.
        return _windows(self.path, self.text, first, last, kind, name, self.config, self.starts)
