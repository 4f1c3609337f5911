"""Freed memory handed back to the system after indexing (lsp_server/memory.py): with glibc, pages
freed between live blocks stay in the process until malloc_trim returns them."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
import threading

import pytest


def test_free_pages_between_live_blocks_go_back_to_the_system():
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc_trim, measured through /proc")
    # A fresh interpreter: this one's heap holds whatever the other tests left in it.
    script = textwrap.dedent(
        """
        from lsp_server.memory import release_free_memory

        def rss_mb():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) // 1024

        blocks = [bytes(2000) + bytes([i % 256]) for i in range(100_000)]  # 200 MB through malloc
        kept = blocks[::10]  # every tenth stays: the freed ones lie between live ones
        del blocks
        before = rss_mb()
        assert release_free_memory()
        print(before, rss_mb(), len(kept))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, after, _ = map(int, out.stdout.split())
    assert before - after >= 100, (before, after)


def test_idle_work_that_ends_undisturbed_gives_memory_back_at_most_every_30_s(monkeypatch):
    from engine import EngineError
    from lsp_server import idle as idle_module

    given: list[int] = []
    monkeypatch.setattr(idle_module, "release_free_memory", lambda: given.append(1) or True)

    class Inline:  # the scheduler's model thread, run at once
        cancel = threading.Event()

        def when_idle(self, work):
            work(self.cancel)

    scheduler = Inline()
    idle = idle_module.Idle(session=None, scheduler=scheduler)  # type: ignore[arg-type]
    idle.run(lambda cancel: None)
    assert given == [1]
    idle.run(lambda cancel: None)
    assert given == [1], "again within 30 s"
    idle._given_back_at -= idle_module.GIVE_BACK_EVERY_S

    def skipped(cancel):
        raise EngineError("no model")

    idle.run(skipped)  # skipped work ended too: the heap is given back
    assert given == [1, 1]
    idle._given_back_at -= idle_module.GIVE_BACK_EVERY_S
    scheduler.cancel.set()  # a keystroke stopped the work: it answers first, nothing else
    idle.run(lambda cancel: None)
    assert given == [1, 1]


@pytest.mark.parametrize("limited", [False, True])
def test_the_server_caps_the_heaps_its_threads_allocate_from(limited: bool):
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's arenas, listed by malloc_stats")
    script = textwrap.dedent(
        f"""
        import ctypes, threading
        from lsp_server.memory import limit_heaps

        if {limited}:
            assert limit_heaps()
        together = threading.Barrier(8)

        def work():
            blocks = [bytearray(1000) for _ in range(1000)]  # each thread allocates at once
            together.wait()
            del blocks

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" section per heap, on stderr
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    heaps = out.stderr.count("Arena ")
    assert heaps <= 2 if limited else heaps > 2, out.stderr


def test_after_a_reindex_the_embedder_compacts_then_the_heap_is_trimmed(monkeypatch, caplog):
    from types import SimpleNamespace

    from lsp_server import indexing

    calls: list[str] = []
    monkeypatch.setattr(indexing, "release_free_memory", lambda: calls.append("trim") or True)

    def compact():
        calls.append("compact")

    indexing.give_back_memory(SimpleNamespace(embedder=SimpleNamespace(compact=compact)))
    assert calls == ["compact", "trim"]

    def broken():
        raise RuntimeError("the runtime could not be reopened")

    calls.clear()
    indexing.give_back_memory(SimpleNamespace(embedder=SimpleNamespace(compact=broken)))
    assert calls == ["trim"] and "could not reopen the embedding runtime" in caplog.text
    calls.clear()
    indexing.give_back_memory(SimpleNamespace(embedder=object()))  # torch, a server: nothing to compact
    assert calls == ["trim"]
