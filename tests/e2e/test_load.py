"""Load on the real server: a burst of 2,000 completion requests with cancellations and edits, and an
edit/complete soak, measuring the server process's RSS and open file handles (from /proc).

Bounded in count and time, over stdio only. The long soak is behind `-m soak`; a short one always runs.
The bounds are loose on purpose: they catch a backlog (thousands of queued model calls) or a leak
(RSS or handles growing with the number of requests), not speed, which benchmarks/ measures.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from .lsp_helpers import (
    CAPABILITIES,
    SERVER,
    get,
    inline_params,
    open_file,
    status,
    track_registrations,
    wait_for_log,
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pid_of(client: LanguageClient) -> int:
    return client._server.pid  # type: ignore[attr-defined]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, tiny_repo: Path, tiny_gguf: Path):
    track_registrations(lsp_client)
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=CAPABILITIES,
            root_uri=tiny_repo.as_uri(),
            initialization_options={"modelPath": str(tiny_gguf), "maxTokens": 8, "debounceMs": 5},
        )
    )
    await wait_for_log(lsp_client, "index ready")
    yield
    await lsp_client.shutdown_session()


async def idle(client: LanguageClient) -> dict:
    """Wait until the model thread is idle and nothing is queued."""
    for _ in range(600):
        report = await status(client)
        if get(report, "generating") is None:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError("the server never went idle")


class Typist:
    """One document, edited at its end like a user typing, with requests at the cursor."""

    def __init__(self, client: LanguageClient, uri: str, text: str) -> None:
        self.client, self.uri, self.lines, self.version = client, uri, text.split("\n"), 1

    @property
    def cursor(self) -> types.Position:
        return types.Position(line=len(self.lines) - 1, character=len(self.lines[-1]))

    def type(self, text: str) -> None:
        at = self.cursor
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)
                ],
            )
        )
        parts = text.split("\n")
        self.lines[-1] += parts[0]
        self.lines += parts[1:]

    def request(self, rng: random.Random) -> asyncio.Future:
        if rng.random() < 0.8:
            return self.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(self.uri, self.cursor)
            )
        return self.client.protocol.send_request(
            types.TEXT_DOCUMENT_COMPLETION,
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri), position=self.cursor
            ),
        )


async def burst(client: LanguageClient, typist: Typist, n: int, rng: random.Random) -> dict:
    """n requests as fast as the client can send them; a quarter cancelled, an edit every few."""
    futures, cancelled = [], 0
    for i in range(n):
        if i % 4 == 0:
            typist.type(rng.choice(["x", " ", "(", "a", "\n    ", "1", ".", "total"]))
        msg_id = f"burst-{i}-{rng.random()}"
        kind = types.TEXT_DOCUMENT_INLINE_COMPLETION if rng.random() < 0.8 else types.TEXT_DOCUMENT_COMPLETION
        params = (
            inline_params(typist.uri, typist.cursor)
            if kind == types.TEXT_DOCUMENT_INLINE_COMPLETION
            else types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=typist.uri), position=typist.cursor
            )
        )
        futures.append(asyncio.wrap_future(client.protocol.send_request(kind, params, msg_id=msg_id)))
        if rng.random() < 0.25:
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
            cancelled += 1
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the writer flush, as an editor's event loop would
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 600)
    answered = sum(1 for r in results if not isinstance(r, BaseException))
    cancel_errors = sum(1 for r in results if isinstance(r, JsonRpcException) and "cancel" in str(r).lower())
    other = [
        r
        for r in results
        if isinstance(r, BaseException)
        and not (isinstance(r, JsonRpcException) and "cancel" in str(r).lower())
    ]
    return {
        "sent": n,
        "cancel_sent": cancelled,
        "answered": answered,
        "cancelled": cancel_errors,
        "errors": [repr(e)[:200] for e in other[:5]],
        "error_count": len(other),
    }


async def latencies(client: LanguageClient, typist: Typist, n: int, rng: random.Random) -> list[float]:
    """Keystroke, then a request awaited to its answer: what the user waits for after the burst."""
    out = []
    for _ in range(n):
        typist.type(rng.choice(["x", " ", "a", "1"]))
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.wrap_future(typist.request(rng)), 120)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def test_a_burst_of_2000_requests_with_cancels_and_edits(client: LanguageClient, tiny_repo: Path):
    rng = random.Random(2000)
    path = tiny_repo / "shop" / "checkout.py"
    text = path.read_text() + "\n\ndef refund_all(orders):\n    "
    typist = Typist(client, open_file(client, path, text=text), text)
    pid = pid_of(client)
    await burst(client, typist, 200, rng)  # warm-up: the model, the index and the allocator settle
    await idle(client)
    rss_before, fds_before = rss_mb(pid), open_fds(pid)
    ran_before = get(get(await status(client), "scheduler"), "ran")

    figures = await burst(client, typist, 2000, rng)
    report = await idle(client)
    ran = get(get(report, "scheduler"), "ran") - ran_before
    last = await latencies(client, typist, 50, rng)
    await idle(client)
    rss_after, fds_after = rss_mb(pid), open_fds(pid)
    in_flight = get(await status(client), "requests_in_flight")  # this status request itself
    figures.update(
        model_runs=ran,
        requests_in_flight=in_flight,
        rss_before_mb=round(rss_before, 1),
        rss_after_mb=round(rss_after, 1),
        fds_before=fds_before,
        fds_after=fds_after,
        p99_last_ms=round(p99(last), 1),
        max_last_ms=round(max(last), 1),
    )
    print(f"\nburst: {figures}")
    # Every request answered or cancelled; nothing else.
    assert figures["error_count"] == 0, figures["errors"]
    assert figures["answered"] + figures["cancelled"] == 2000
    # No backlog: superseded requests never reached the model, and the ones after the burst wait for
    # one generation, not for a queue (a backlog of 2,000 tiny-model runs would take minutes).
    assert ran < 1000
    assert p99(last) < 10_000
    # Flat: no growth with the number of requests.
    assert rss_after - rss_before < 80, (rss_before, rss_after)
    assert fds_after <= fds_before + 2
    # Nothing kept per request or notification (pygls kept a future per didChange: 500 here).
    assert in_flight <= 2


async def soak(client: LanguageClient, tiny_repo: Path, seconds: float) -> dict:
    rng = random.Random(int(seconds))
    path = tiny_repo / "shop" / "cart.py"
    text = path.read_text() + "\n\n"
    pid = pid_of(client)
    samples: list[tuple[float, float, int]] = []
    cycles = 0
    t_end = None
    while True:
        typist = Typist(client, open_file(client, path, text=text), text)  # reopened: a fresh edit session
        for _ in range(20):
            typist.type(rng.choice(["def ", "x", "(", "self", "):\n        ", "return ", "1", "\n    "]))
            await asyncio.wait_for(asyncio.wrap_future(typist.request(rng)), 120)
            cycles += 1
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=typist.uri))
        )
        await idle(client)
        samples.append((time.monotonic(), rss_mb(pid), open_fds(pid)))
        if t_end is None:
            t_end = time.monotonic() + seconds  # the clock starts after the first, warming, round
        elif time.monotonic() > t_end:
            break
    first, last = samples[0], samples[-1]
    mid = samples[len(samples) // 2]
    in_flight = get(await status(client), "requests_in_flight")
    return {
        "cycles": cycles,
        "requests_in_flight": in_flight,
        "seconds": round(last[0] - first[0], 1),
        "rss_first_mb": round(first[1], 1),
        "rss_mid_mb": round(mid[1], 1),
        "rss_last_mb": round(last[1], 1),
        "fds_first": first[2],
        "fds_last": last[2],
        "rss_max_mb": round(max(s[1] for s in samples), 1),
    }


async def test_edit_complete_soak_short(client: LanguageClient, tiny_repo: Path):
    figures = await soak(client, tiny_repo, seconds=10)
    print(f"\nsoak (short): {figures}")
    assert figures["fds_last"] <= figures["fds_first"] + 2
    assert figures["requests_in_flight"] <= 2
    assert figures["rss_last_mb"] - figures["rss_first_mb"] < 60


@pytest.mark.soak
async def test_edit_complete_soak(client: LanguageClient, tiny_repo: Path):
    figures = await soak(client, tiny_repo, seconds=300)
    print(f"\nsoak (5 minutes): {figures}")
    assert figures["fds_last"] <= figures["fds_first"] + 2
    assert figures["requests_in_flight"] <= 2
    # Flat over the second half: whatever the first minutes allocate for good, the rest does not grow.
    assert figures["rss_last_mb"] - figures["rss_mid_mb"] < 30
