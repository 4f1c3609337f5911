"""Retrieval with the real packaged all-MiniLM-L6-v2 and FAISS."""

from pathlib import Path

from retrieval import CodeIndex, IndexConfig


def test_search_finds_the_definition_a_completion_needs(tiny_repo: Path, minilm):
    index = CodeIndex(tiny_repo, IndexConfig(), embedder=minilm)
    stats = index.reindex()
    assert stats.chunks_embedded > 0
    hits = index.search("reduce the price by a percentage discount", k=3)
    assert hits[0].path == "shop/pricing.py" and hits[0].name == "apply_discount"
    assert hits[0].score > hits[-1].score or len(hits) == 1


def test_snippets_come_from_other_files(tiny_repo: Path, minilm):
    index = CodeIndex(tiny_repo, IndexConfig(), embedder=minilm)
    index.reindex()
    source = (tiny_repo / "shop" / "checkout.py").read_text()
    offset = source.index("    return \n") + len("    return ")
    snippets = index.snippets("shop/checkout.py", source, offset)
    assert snippets, "nothing retrieved"
    assert all(s.path != "shop/checkout.py" for s in snippets)
    assert "shop/pricing.py" in {s.path for s in snippets[:3]}
