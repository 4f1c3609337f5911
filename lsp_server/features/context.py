"""codeKb/context: the prompt code-kb would build at a position, as `code-kb context --json` prints it."""

from __future__ import annotations

from typing import Any

from ..server import CodeKbServer
from . import params as read

CONTEXT_METHOD = "codeKb/context"
_SHAPE = '{"textDocument": {"uri": "file:///..."}, "position": {"line": 0, "character": 0}}'


async def context(ls: CodeKbServer, params: Any) -> dict:
    """params: {"textDocument": {"uri": ...}, "position": {"line": ..., "character": ...}} (LSP units)."""
    uri = read.uri(params, CONTEXT_METHOD, _SHAPE)
    return await ls.prompt_json(
        uri, read.position(read.field(params, "position", CONTEXT_METHOD, _SHAPE), CONTEXT_METHOD, _SHAPE)
    )


def register(server: CodeKbServer) -> None:
    server.feature(CONTEXT_METHOD)(context)
