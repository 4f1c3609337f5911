"""Workspace upkeep: folders added and removed, watched files and saves, configuration changes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.uris import to_fs_path

from ..config import Settings
from ..server import CodeKbServer

log = logging.getLogger(__name__)
SECTION = "codeKb"


def _path(uri: str) -> Path | None:
    p = to_fs_path(uri)
    return Path(p) if p else None


def did_change_workspace_folders(ls: CodeKbServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    if ls.indexes is None:
        return
    for folder in params.event.removed:
        if (p := _path(folder.uri)) is not None:
            ls.indexes.remove_root(p)
    for folder in params.event.added:
        if (p := _path(folder.uri)) is not None:
            ls.indexes.add_root(p)


def did_change_watched_files(ls: CodeKbServer, params: types.DidChangeWatchedFilesParams) -> None:
    if ls.indexes is not None:
        ls.indexes.files_changed(p for c in params.changes if (p := _path(c.uri)) is not None)


def did_save(ls: CodeKbServer, params: types.DidSaveTextDocumentParams) -> None:
    if ls.indexes is not None and (p := _path(params.text_document.uri)) is not None:
        ls.indexes.files_changed([p])


async def register_file_watcher(ls: CodeKbServer) -> None:
    """Ask the client to watch every file (dynamic registration) when it can."""
    caps = ls.client_capabilities.workspace
    watch = caps.did_change_watched_files if caps else None
    if not (watch and watch.dynamic_registration):
        log.info("client cannot watch files for us: the index follows saves only")
        return
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern="**/*")]
    )
    try:
        await ls.client_register_capability_async(
            types.RegistrationParams(
                registrations=[
                    types.Registration(
                        id="code-kb-watch",
                        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                        register_options=options,
                    )
                ]
            )
        )
    except JsonRpcException as exc:
        log.info("client refused to watch files: %s", exc)


async def did_change_configuration(ls: CodeKbServer, params: types.DidChangeConfigurationParams) -> None:
    """New settings: pushed in the notification (under "codeKb" or flat), or pulled when it carries none."""
    pushed = params.settings
    options: dict[str, Any] | None = None
    if isinstance(pushed, dict) and pushed:
        section = pushed.get(SECTION, pushed)
        options = section if isinstance(section, dict) else None
    if options is None:
        caps = ls.client_capabilities.workspace
        if caps and caps.configuration:
            try:
                items = await ls.workspace_configuration_async(
                    types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
                )
            except JsonRpcException as exc:
                log.info("client did not answer workspace/configuration: %s", exc)
                return
            options = items[0] if items and isinstance(items[0], dict) else {}
        else:
            return
    ls.apply_settings(Settings.load({**ls.init_options, **options}, overrides=ls.overrides))


def register(server: CodeKbServer) -> None:
    server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(did_change_workspace_folders)
    server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(did_change_watched_files)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(did_save)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
