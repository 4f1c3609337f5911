"""Which tokens of a new prompt the KV cache already holds, and where they must move.

A keystroke changes a prompt in one place: everything before it is the same (the common
prefix, kept where it is), and everything after it is the same tokens one or two positions
further on (the suffix, the FIM markers) or earlier (lines that slid out of the prefix window).
llama.cpp can shift cached entries to new positions (RoPE is relative), so a run of tokens
that merely moved is reused instead of evaluated again, as llama.cpp server's cache_reuse does.

A moved run keeps the attention values it computed over its old context. That is the
approximation llama.cpp server makes too; we bound it: every cached token counts how many
tokens before it changed since it was evaluated (its staleness), and a run that would exceed
`max_stale` is evaluated afresh.

Pure Python: the model applies the plan (llama_cpp.py); tests check plans directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

ABSENT = -1  # a position whose KV entry was removed (e.g. an aborted batch)


@dataclass(frozen=True)
class Move:
    """`length` cached tokens at `src`.. reused at `dst`.."""

    src: int
    dst: int
    length: int

    @property
    def delta(self) -> int:
        return self.dst - self.src


@dataclass
class Plan:
    keep: int  # leading tokens already in place
    moves: list[Move] = field(default_factory=list)
    evaluate: list[tuple[int, int]] = field(default_factory=list)  # [start, end) ranges of the new prompt
    n_tokens: int = 0

    @property
    def n_moved(self) -> int:
        return sum(m.length for m in self.moves)

    @property
    def n_reused(self) -> int:
        return self.keep + self.n_moved

    @property
    def n_evaluated(self) -> int:
        return sum(end - start for start, end in self.evaluate)

    def removed(self, n_held: int) -> list[tuple[int, int]]:
        """[start, end) ranges of cached positions that neither stay nor move."""
        spans = [(self.keep, self.keep)] + sorted((m.src, m.src + m.length) for m in self.moves)
        gaps, cursor = [], self.keep
        for start, end in spans[1:]:
            if start > cursor:
                gaps.append((cursor, start))
            cursor = max(cursor, end)
        if cursor < n_held:
            gaps.append((cursor, n_held))
        return gaps

    def shift_order(self) -> list[Move]:
        """Moves in an order in which no shift lands on or selects cells of a move not yet made.

        Runs are disjoint and in the same order in both sequences, so moving the rightward ones
        from the last and then the leftward ones from the first never collides.
        """
        right = [m for m in self.moves if m.delta > 0]
        left = [m for m in self.moves if m.delta < 0]
        return right[::-1] + left


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y or x == ABSENT:
            break
        n += 1
    return n


def _common_tail(a: Sequence[int], b: Sequence[int], floor_a: int, floor_b: int) -> int:
    n, i, j = 0, len(a) - 1, len(b) - 1
    while i >= floor_a and j >= floor_b and a[i] == b[j] and a[i] != ABSENT:
        n, i, j = n + 1, i - 1, j - 1
    return n


def plan(
    held: Sequence[int],
    tokens: Sequence[int],
    *,
    staleness: Sequence[int] | None = None,
    can_shift: bool = True,
    min_run: int = 32,
    max_stale: int = 2048,
) -> Plan:
    """The cheapest way from the cached `held` sequence to `tokens`.

    The last token of `tokens` is always evaluated: generation needs its logits.
    """
    n = len(tokens)
    keep = min(_common_prefix(held, tokens), max(n - 1, 0))
    staleness = staleness if staleness is not None else [0] * len(held)
    # Tokens that stayed in place but went stale earlier (a run moved behind changes) are
    # evaluated again from the first one past the bound, like a stale run.
    keep = next((i for i in range(keep) if staleness[i] > max_stale), keep)
    result = Plan(keep, n_tokens=n)
    if can_shift and n - 1 > keep:
        # Candidate runs: the common tail, and runs of the middle matched by k-grams.
        tail = _common_tail(held, tokens, keep, keep)
        mid_held_end, mid_end = len(held) - tail, n - tail
        candidates = _middle_runs(held, tokens, keep, mid_held_end, keep, mid_end, min_run)
        if tail:
            candidates.append(Move(mid_held_end, mid_end, tail))
        # Drop the prompt's last token from whichever run holds it.
        candidates = [Move(m.src, m.dst, min(m.length, n - 1 - m.dst)) for m in candidates]
        changed, held_at, new_at = 0, keep, keep
        for m in candidates:
            if m.length < min_run:
                continue
            # Tokens inserted and removed before this run since the previous one.
            would_change = changed + (m.dst - new_at) + (m.src - held_at)
            if max(staleness[m.src : m.src + m.length]) + would_change > max_stale:
                continue
            changed = would_change
            result.moves.append(m)
            held_at, new_at = m.src + m.length, m.dst + m.length
    cursor = keep
    for m in result.moves:
        if m.dst > cursor:
            result.evaluate.append((cursor, m.dst))
        cursor = m.dst + m.length
    if cursor < n:
        result.evaluate.append((cursor, n))
    return result


def _middle_runs(
    held: Sequence[int],
    tokens: Sequence[int],
    h0: int,
    h1: int,
    t0: int,
    t1: int,
    min_run: int,
    per_anchor: int = 8,
) -> list[Move]:
    """Runs of at least `min_run` equal tokens, in the same order in both, reusing as many tokens as
    possible: every maximal run found through k-gram anchors, then the heaviest chain of runs that
    increase in both sequences. (Taking the first run found is not enough: a snippet that repeats
    code of the current file would match first and hide the whole prefix that follows.)"""
    k = min(min_run, 16)
    if h1 - h0 < min_run or t1 - t0 < min_run:
        return []
    where: dict[tuple[int, ...], list[int]] = {}
    for i in range(h0, h1 - k + 1):
        spots = where.setdefault(tuple(held[i : i + k]), [])
        if len(spots) < per_anchor:
            spots.append(i)
    runs: list[Move] = []
    for p in range(t0, t1 - k + 1):
        for c in where.get(tuple(tokens[p : p + k]), ()):
            if p > t0 and c > h0 and tokens[p - 1] == held[c - 1]:
                continue  # inside a run found from an earlier position
            length = k
            while p + length < t1 and c + length < h1 and tokens[p + length] == held[c + length]:
                length += 1
            if length >= min_run:
                runs.append(Move(c, p, length))
    # Heaviest chain: each run after the previous one in both sequences. Maximal runs may overlap
    # (a run's tail can match by chance the start of the next one: a file header, a common line),
    # so a run may join a chain with its front cut off where it overlaps the run before it.
    runs.sort(key=lambda m: (m.dst, m.src))
    best: list[int] = []
    back: list[tuple[int, int]] = []  # (previous run in the chain, tokens cut from this one's front)
    for i, m in enumerate(runs):
        best.append(m.length)
        back.append((-1, 0))
        for j in range(i):
            prev = runs[j]
            if prev.dst >= m.dst or prev.src >= m.src:
                continue
            cut = max(prev.dst + prev.length - m.dst, prev.src + prev.length - m.src, 0)
            if m.length - cut < min_run:
                continue
            if best[j] + m.length - cut > best[i]:
                best[i], back[i] = best[j] + m.length - cut, (j, cut)
    if not runs:
        return []
    i = max(range(len(runs)), key=best.__getitem__)
    chain: list[Move] = []
    while i != -1:
        j, cut = back[i]
        m = runs[i]
        chain.append(Move(m.src + cut, m.dst + cut, m.length - cut))
        i = j
    return chain[::-1]


def after(
    plan_: Plan, held: Sequence[int], staleness: Sequence[int], tokens: Sequence[int]
) -> tuple[list[int], list[int]]:
    """The cache contents and staleness once `plan_` has been applied and `tokens` evaluated."""
    new_stale = [0] * len(tokens)
    new_stale[: plan_.keep] = staleness[: plan_.keep]
    changed, held_at, new_at = 0, plan_.keep, plan_.keep
    for m in plan_.moves:
        changed += (m.dst - new_at) + (m.src - held_at)
        new_stale[m.dst : m.dst + m.length] = [s + changed for s in staleness[m.src : m.src + m.length]]
        held_at, new_at = m.src + m.length, m.dst + m.length
    return list(tokens), new_stale
