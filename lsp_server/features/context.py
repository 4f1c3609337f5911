"""codeKb/context: the prompt code-kb would build at a position, as `code-kb context --json` prints it."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ..server import CodeKbServer

CONTEXT_METHOD = "codeKb/context"
_SHAPE = '{"textDocument": {"uri": "file:///..."}, "position": {"line": 0, "character": 0}}'


def _field(obj: Any, key: str) -> Any:
    """A field of the request's params: pygls hands a custom request's params over as an object."""
    value = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    if value is None:
        raise JsonRpcInvalidParams(f"{CONTEXT_METHOD} params lack {key!r}; expected {_SHAPE}")
    return value


def _position(pos: Any) -> types.Position:
    line, character = _field(pos, "line"), _field(pos, "character")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31 for v in (line, character)):
        raise JsonRpcInvalidParams(
            f"{CONTEXT_METHOD}: position needs line and character as integers "
            f"from 0 to 2^31-1, got {line!r} and {character!r}"
        )
    return types.Position(line=line, character=character)


async def context(ls: CodeKbServer, params: Any) -> dict:
    """params: {"textDocument": {"uri": ...}, "position": {"line": ..., "character": ...}} (LSP units)."""
    uri = _field(_field(params, "textDocument"), "uri")
    if not isinstance(uri, str):
        raise JsonRpcInvalidParams(f"{CONTEXT_METHOD}: textDocument.uri must be a string, got {uri!r}")
    return await ls.prompt_json(uri, _position(_field(params, "position")))


def register(server: CodeKbServer) -> None:
    server.feature(CONTEXT_METHOD)(context)
