"""Talking to an inference server over HTTP: POST a JSON body, read the server-sent events it
streams back, and turn a stream of text pieces into a completion (what the `/infill` and
`/v1/completions` backends share)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from ..errors import EngineError
from . import Cut, interruption


def headers(api_key: str | None) -> dict[str, str]:
    """Request headers for a streamed JSON request, with the API key as a bearer token if there is one."""
    out = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


def post_stream(
    url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float, endpoint: str
) -> Generator[dict[str, Any], None, None]:
    """Each `data:` event as JSON, until `[DONE]` or the end of the stream. Closing the generator
    closes the connection, which tells the server to stop generating."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            for raw in response:
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return
                yield json.loads(payload)
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode("utf-8", errors="replace")
        raise EngineError(f"the inference server at {endpoint} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise EngineError(f"cannot reach the inference server at {endpoint} ({exc}); is it running?") from exc


@dataclass
class Streamed:
    text: str  # what the stop rule kept
    stop_reason: str  # "eog", "rule", "max_tokens", "cancelled", "timeout"
    n_pieces: int  # text pieces received: the generated tokens, where the server does not say
    events: list[dict[str, Any]]  # every event read, for the counts a server reports in them


def stream_completion(
    events: Generator[dict[str, Any], None, None],
    *,
    piece: Callable[[dict[str, Any]], str],
    end: Callable[[dict[str, Any]], str | None],
    cut: Cut,
    cancel: threading.Event | None,
    deadline: float,
) -> Streamed:
    """Read `events` until the stop rule `cut` ends the text, an event ends the stream (`end` gives
    the reason, None to go on), `cancel` is set or `deadline` (time.perf_counter()) passes; then
    close the stream, which stops the server's generation."""
    text, reason, n_pieces, seen = "", "max_tokens", 0, []
    try:
        for event in events:
            seen.append(event)
            if new := piece(event):
                n_pieces += 1
                text, stop = cut(text + new)
                if stop:
                    reason = "rule"
                    break
            if ended := end(event):
                reason = ended
                break
            if stopped := interruption(cancel, deadline):
                reason = stopped
                break
    finally:
        events.close()
    return Streamed(text, reason, n_pieces, seen)


def get_json(url: str, headers: dict[str, str], timeout_s: float) -> Any:
    """A GET answered with JSON; urllib's exceptions pass through for the caller to judge."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as response:
        return json.load(response)


def post_json(url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float) -> Any:
    """A POST of JSON answered with JSON (not streamed); urllib's exceptions pass through."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={**headers, "Accept": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.load(response)
