"""`$/progress` for long work (indexing): a token per title, reports throttled to whole percents."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from .indexing import Progress

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)


class WorkDoneProgress:
    """The `Reporter.begin`/`end` pair over a client's work-done progress, when it supports one."""

    def __init__(self, server: LanguageServer) -> None:
        self.server = server
        self._tokens: dict[str, str] = {}  # title -> token

    async def begin(self, title: str) -> Progress | None:
        caps = self.server.client_capabilities.window
        if not (caps and caps.work_done_progress):
            return None
        token = f"code-kb-{uuid.uuid4().hex[:8]}"
        progress = self.server.work_done_progress
        try:
            await progress.create_async(token)
        except (JsonRpcException, asyncio.TimeoutError) as exc:  # refused: index without a bar
            log.info("client refused progress token: %s", exc)
            return None
        self._tokens[title] = token
        progress.begin(token, types.WorkDoneProgressBegin(title=title, percentage=0, cancellable=False))
        loop = asyncio.get_running_loop()
        last = [-1]

        def report(done: int, total: int, what: str) -> None:  # called on the index thread
            pct = int(100 * done / total) if total else 100
            if pct != last[0]:
                last[0] = pct
                loop.call_soon_threadsafe(
                    progress.report,
                    token,
                    types.WorkDoneProgressReport(message=f"{done}/{total} {what}", percentage=pct),
                )

        return report

    def end(self, title: str) -> None:
        token = self._tokens.pop(title, None)
        if token is not None:
            self.server.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
