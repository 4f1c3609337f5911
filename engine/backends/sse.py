"""POST a JSON body and read the server-sent events an inference server streams back."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterator

from ..errors import EngineError


def post_stream(url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float,
                endpoint: str) -> Iterator[dict[str, Any]]:
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


def get_json(url: str, headers: dict[str, str], timeout_s: float) -> Any:
    """A GET answered with JSON; urllib's exceptions pass through for the caller to judge."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as response:
        return json.load(response)
