"""Reading the params of our custom requests and notifications, which pygls hands over untyped (as
attribute objects): a missing or ill-typed field is InvalidParams that names the method and shape."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams


def field(obj: Any, key: str, method: str, shape: str) -> Any:
    """A field of a request's params (a dict, or pygls's attribute object); InvalidParams if missing."""
    value = optional(obj, key)
    if value is None:
        raise JsonRpcInvalidParams(f"{method} params lack {key!r}; expected {shape}")
    return value


def optional(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def position(pos: Any, method: str, shape: str) -> types.Position:
    line, character = field(pos, "line", method, shape), field(pos, "character", method, shape)
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31 for v in (line, character)):
        raise JsonRpcInvalidParams(
            f"{method}: position needs line and character as integers "
            f"from 0 to 2^31-1, got {line!r} and {character!r}"
        )
    return types.Position(line=line, character=character)


def uri(params: Any, method: str, shape: str) -> str:
    value = field(field(params, "textDocument", method, shape), "uri", method, shape)
    if not isinstance(value, str):
        raise JsonRpcInvalidParams(f"{method}: textDocument.uri must be a string, got {value!r}")
    return value
