"""workspace/executeCommand: codeKb.reindex and codeKb.status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..server import CodeKbServer

REINDEX = "codeKb.reindex"
STATUS = "codeKb.status"


async def reindex(ls: CodeKbServer, *args: Any) -> dict[str, str]:
    """Reindex every root, or the one given as the first argument (a path or file URI)."""
    if ls.indexes is None:
        return {}
    root = None
    if args and isinstance(args[0], str):
        root = ls.indexes.root_for(Path(args[0].removeprefix("file://")))
    return await ls.indexes.reindex(root)


def status(ls: CodeKbServer, *args: Any) -> dict:
    return ls.status()


def register(server: CodeKbServer) -> None:
    server.command(REINDEX)(reindex)
    server.command(STATUS)(status)
