"""A first index takes the editor's open files, and the files they import, before the rest."""

from __future__ import annotations

from pathlib import Path

from retrieval import CodeIndex, IndexConfig
from tests.fixtures.hash_embedder import HashEmbedder


def test_open_files_and_their_imports_are_indexed_and_searchable_first(
    tiny_repo: Path, tmp_path: Path
) -> None:
    index = CodeIndex(tiny_repo, IndexConfig(index_dir=tmp_path / "idx"), HashEmbedder())
    order: list[str] = []
    searchable_early: list[str] = []

    def progress(done: int, total: int, what: str) -> None:
        if done == 0:
            return
        order.append(what)
        if done == 2:  # the open file and its import are committed before the third file is read
            searchable_early.extend(
                s.path for s in index.symbol_search(["Cart", "checkout", "Inventory", "TaxTable"], 5)
            )

    stats = index.reindex(progress, first=lambda: [tiny_repo / "shop" / "checkout.py"])
    assert order[:2] == ["shop/checkout.py", "shop/cart.py"]  # `from .cart import Cart`
    assert len(set(order)) == len(order) == stats.files_seen
    assert set(searchable_early) == {"shop/checkout.py", "shop/cart.py"}
    index.close()


def test_without_open_files_the_walk_order_stays(tiny_repo: Path, tmp_path: Path) -> None:
    orders = []
    for n, first in enumerate((None, lambda: [], lambda: [tiny_repo / "not-there.py"])):
        index = CodeIndex(tiny_repo, IndexConfig(index_dir=tmp_path / f"idx{n}"), HashEmbedder())
        order: list[str] = []
        index.reindex(
            lambda done, total, what, order=order: order.append(what) if done else None, first=first
        )
        orders.append(order)
        index.close()
    assert orders[0] == orders[1] == orders[2] and len(orders[0]) > 3
