"""codeKb/context: the prompt code-kb would build at a position, as `code-kb context --json` prints it."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from ..server import CodeKbServer

CONTEXT_METHOD = "codeKb/context"


def _get(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


async def context(ls: CodeKbServer, params: Any) -> dict:
    """params: {"textDocument": {"uri": ...}, "position": {"line": ..., "character": ...}} (LSP units)."""
    uri = _get(_get(params, "textDocument"), "uri")
    pos = _get(params, "position")
    position = types.Position(line=int(_get(pos, "line")), character=int(_get(pos, "character")))
    return await ls.prompt_json(uri, position)


def register(server: CodeKbServer) -> None:
    server.feature(CONTEXT_METHOD)(context)
