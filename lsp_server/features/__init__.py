"""One module per LSP feature; register_all wires them onto a server."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server import CodeKbServer


def register_all(server: CodeKbServer) -> None:
    from . import commands, completion, context, inline_completion, lifecycle, next_edit, sync, workspace

    for module in (lifecycle, sync, workspace, commands, completion, inline_completion, context, next_edit):
        module.register(server)
