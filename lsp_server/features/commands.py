"""workspace/executeCommand: codeKb.reindex and codeKb.status."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from ..server import CodeKbServer

REINDEX = "codeKb.reindex"
STATUS = "codeKb.status"


def _folder(arg: Any) -> Path:
    """A command argument naming a folder: a file URI or an absolute path."""
    if not isinstance(arg, str) or not arg or "\0" in arg:
        raise JsonRpcInvalidParams(f"{REINDEX} takes a folder (a file URI or an absolute path), got {arg!r}")
    path = to_fs_path(arg) if urlsplit(arg).scheme == "file" else arg
    if not path or not Path(path).is_absolute():
        raise JsonRpcInvalidParams(f"{REINDEX} takes a folder (a file URI or an absolute path), got {arg!r}")
    return Path(path)


async def reindex(ls: CodeKbServer, *args: Any) -> dict[str, str]:
    """Reindex every workspace folder, or the one holding the first argument (a file URI or an absolute
    path). A folder outside them, including one refused when it was opened (a system or home folder),
    is indexed from then on because the user named it."""
    if ls.indexes is None:
        return {}
    if not args:
        return await ls.indexes.reindex()
    folder = _folder(args[0])
    root = ls.indexes.root_for(folder)
    if root is not None:  # a workspace folder, or a file or folder inside one
        return await ls.indexes.reindex(root)
    if not folder.is_dir():
        raise JsonRpcInvalidParams(f"{REINDEX}: {folder} is neither in a workspace folder nor a folder")
    if not ls.indexes.add_root(folder, explicit=True):
        raise JsonRpcInvalidParams(f"{REINDEX}: {folder} cannot be indexed (the server's messages say why)")
    return {str(folder.resolve()): "indexing started"}


def status(ls: CodeKbServer, *args: Any) -> dict:
    return ls.status()


def register(server: CodeKbServer) -> None:
    server.command(REINDEX)(reindex)
    server.command(STATUS)(status)
