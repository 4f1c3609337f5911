"""Freed memory handed back to the system after indexing (lsp_server/memory.py): with glibc, pages
freed between live blocks stay in the process until malloc_trim returns them."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

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
