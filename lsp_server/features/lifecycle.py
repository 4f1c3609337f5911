"""initialize / initialized / shutdown: settings first, then the model and indexes in the background."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types
from pygls.uris import to_fs_path

from ..config import Settings
from ..server import CodeKbServer
from .workspace import register_file_watcher


def initialize(ls: CodeKbServer, params: types.InitializeParams) -> None:
    # Nothing slow here: the reply goes out at once; the model and the index load after `initialized`.
    ls.init_options = params.initialization_options if isinstance(params.initialization_options, dict) else {}


async def initialized(ls: CodeKbServer, params: types.InitializedParams) -> None:
    ls.start(Settings.load(ls.init_options, overrides=ls.overrides), workspace_roots(ls))
    await register_file_watcher(ls)


def workspace_roots(ls: CodeKbServer) -> list[Path]:
    uris = [f.uri for f in ls.workspace.folders.values()] or (
        [ls.workspace.root_uri] if ls.workspace.root_uri else []
    )
    return [Path(p).resolve() for p in (to_fs_path(u) for u in uris) if p]


def shutdown(ls: CodeKbServer, params: None) -> None:
    ls.close()


def register(server: CodeKbServer) -> None:
    server.feature(types.INITIALIZE)(initialize)
    server.feature(types.INITIALIZED)(initialized)
    server.feature(types.SHUTDOWN)(shutdown)
