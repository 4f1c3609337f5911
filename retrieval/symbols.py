"""The definition table: which chunk defines which name, and the identifiers a cursor needs defined.

Definitions come from the chunker (`Cart.total` is found as `total`; a whole small class defines
its methods too; a merged chunk `one, two` defines both). The names a cursor needs are the identifiers just before it,
nearest first, then the names its file imports.
"""

from __future__ import annotations

import re

from .chunking import Chunk
from .lexical import STOPWORDS

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMPORT_LINE = re.compile(
    r"^\s*(?:from\s+\S+\s+import|import|use|using|#\s*include|require|export\s+.*\s+from)\b.*$", re.M
)


def definitions(chunk: Chunk) -> list[tuple[str, str, str, str, int, str]]:
    """(name, qualified name, kind, path, line, signature) for each name the chunk defines."""
    if not chunk.defines:
        return []
    lines = chunk.text.split("\n")
    out = []
    for qualified in chunk.defines:
        short = re.split(r"\.|::| for ", qualified)[-1].strip()
        short = short.removeprefix("impl ")
        if not _IDENTIFIER.fullmatch(short or ""):
            continue
        # The signature is the first line that names it: `def total(self, region)`, `class Cart:`.
        offset, signature = next(
            ((i, ln.strip()) for i, ln in enumerate(lines) if short in ln), (0, lines[0].strip())
        )
        kind = chunk.kind if qualified == chunk.defines[0] else "member"
        out.append((short, qualified, kind, chunk.path, chunk.start_line + offset, signature[:200]))
    return out


def wanted_names(source: str, offset: int, near_lines: int = 3, limit: int = 24) -> list[str]:
    """Identifiers a completion at `offset` may need defined: nearest to the cursor first, then imports."""
    start = offset
    for _ in range(near_lines + 1):
        start = source.rfind("\n", 0, start)
        if start == -1:
            break
    near = source[start + 1 if start != -1 else 0 : offset]
    names = list(reversed(_IDENTIFIER.findall(near)))
    for line in _IMPORT_LINE.findall(source[:offset]):
        names += _IDENTIFIER.findall(line)
    seen: dict[str, None] = {}
    for name in names:
        if (
            len(name) > 1
            and name.lower() not in STOPWORDS
            and name not in ("from", "import", "use", "include")
        ):
            seen.setdefault(name, None)
    return list(seen)[:limit]
