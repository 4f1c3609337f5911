"""initialize / initialized / didSave / shutdown: settings, background start-up, index upkeep."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types
from pygls.uris import to_fs_path

from ..config import Settings
from ..server import CodeKbServer


def initialize(ls: CodeKbServer, params: types.InitializeParams) -> None:
    # Replies at once: the model and the index load after `initialized`, in the background.
    options = params.initialization_options if isinstance(params.initialization_options, dict) else {}
    ls.settings = Settings.load(options)


def initialized(ls: CodeKbServer, params: types.InitializedParams) -> None:
    if ls.settings.problems:
        ls.show_once("; ".join(ls.settings.problems), types.MessageType.Warning)
    ls.start_background(workspace_root(ls))


def workspace_root(ls: CodeKbServer) -> Path | None:
    folders = ls.workspace.folders
    uri = next(iter(folders.values())).uri if folders else ls.workspace.root_uri
    path = to_fs_path(uri) if uri else None
    return Path(path).resolve() if path else None


def did_save(ls: CodeKbServer, params: types.DidSaveTextDocumentParams) -> None:
    if ls.index_ready:
        asyncio.ensure_future(ls.reindex())


def shutdown(ls: CodeKbServer, params: None) -> None:
    ls.close()


def register(server: CodeKbServer) -> None:
    server.feature(types.INITIALIZE)(initialize)
    server.feature(types.INITIALIZED)(initialized)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(did_save)
    server.feature(types.SHUTDOWN)(shutdown)
