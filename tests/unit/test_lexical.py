"""Lexical retrieval (BM25 over identifier tokens in SQLite FTS5) and its fusion with the dense probe."""

from pathlib import Path

from retrieval import CodeIndex, IndexConfig
from retrieval.lexical import identifier_tokens, match_query
from tests.fixtures.hash_embedder import HashEmbedder


def test_identifiers_split_at_case_and_underscores():
    assert identifier_tokens("total = computeShippingCost(cart)") == [
        "total",
        "computeshippingcost",
        "compute",
        "shipping",
        "cost",
        "cart",
    ]
    assert identifier_tokens("def compute_shipping_cost(self, HTTPServer):") == [
        "compute_shipping_cost",
        "compute",
        "shipping",
        "cost",
        "httpserver",
        "http",
        "server",
    ]
    assert match_query("return x") is None  # keywords and one-letter names carry no signal


def test_lexical_search_finds_a_definition_by_the_parts_of_its_name(tiny_repo: Path):
    (tiny_repo / "shop" / "shipping.py").write_text(
        "def compute_shipping_cost(weight_kg: float, zone: str) -> float:\n    return 4.5 + weight_kg * 1.2\n"
    )
    index = CodeIndex(tiny_repo, IndexConfig(), embedder=HashEmbedder())
    index.reindex()
    hits = index.lexical_search("total = computeShippingCost(", 3)
    assert hits[0].path == "shop/shipping.py" and hits[0].name == "compute_shipping_cost"
    assert hits[0].reason == "lexical"
    assert all(h.path != "shop/shipping.py" for h in index.lexical_search("shipping", 5, "shop/shipping.py"))


def test_snippets_fuse_both_probes_and_keep_the_lexical_only_hit(tiny_repo: Path, minilm):
    (tiny_repo / "shop" / "shipping.py").write_text(
        "def compute_shipping_cost(weight_kg: float, zone: str) -> float:\n    return 4.5 + weight_kg * 1.2\n"
    )
    index = CodeIndex(tiny_repo, IndexConfig(), embedder=minilm)
    index.reindex()
    source = "from shop.cart import Cart\n\n\ndef quote(cart: Cart, zone: str) -> float:\n    fee = computeShippingCost("
    found = index.snippets("shop/quote.py", source, len(source), limit=4)
    # The needs probe's signatures and outlines come first (Cart, which the file imports), then chunks.
    assert [s.name for s in found if s.prompt_kind == "outline"] == ["Cart"]
    snippets = [s for s in found if s.prompt_kind == "snippet"]
    assert len(snippets) == 4
    shipping = next(s for s in snippets if s.path == "shop/shipping.py")
    assert "lexical" in shipping.reason
    assert all(set(s.reason.split("+")) <= {"dense", "lexical", "symbol"} for s in snippets)
    assert [s.score for s in snippets] == sorted((s.score for s in snippets), reverse=True)
    # The lexical rows follow the chunks: an edited file is found by its new names only.
    (tiny_repo / "shop" / "shipping.py").write_text("def freight_fee(weight_kg):\n    return weight_kg * 2\n")
    index.update_files(["shop/shipping.py"])
    assert index.lexical_search("computeCost", 3) == []  # "shipping" alone would still match its path
    assert index.lexical_search("freightFee", 3)[0].path == "shop/shipping.py"


def test_symbol_table_finds_definitions_of_names_before_the_cursor_and_imports(tiny_repo: Path):
    from retrieval.symbols import wanted_names

    index = CodeIndex(tiny_repo, IndexConfig(), embedder=HashEmbedder())
    index.reindex()
    source = (
        "from shop.inventory import Inventory\n\n\n"
        "def price_with_tax(table, amount: float) -> float:\n    return table.with_tax("
    )
    names = wanted_names(source, len(source))
    assert names[:3] == ["with_tax", "table", "amount"] and "Inventory" in names
    hits = index.symbol_search(names, 5, exclude_path="shop/quote.py")
    # with_tax is a method inside the small TaxTable chunk; the import names the Inventory class.
    assert [h.name for h in hits[:2]] == ["TaxTable", "Inventory"]
    assert all(h.reason == "symbol" for h in hits)
    fused = index.snippets("shop/quote.py", source, len(source), limit=5)
    assert {"TaxTable", "Inventory"} <= {s.name for s in fused}
    # Deleting the defining file drops its symbols.
    (tiny_repo / "shop" / "pricing.py").unlink()
    index.reindex()
    assert all(h.name != "TaxTable" for h in index.symbol_search(["with_tax"], 5))


def test_current_file_chunks_far_from_the_cursor_can_be_retrieved(tiny_repo: Path):
    long_file = tiny_repo / "shop" / "report.py"
    filler = "".join(f"LINE_{i} = {i}\n" for i in range(80))
    long_file.write_text(
        "def format_receipt_total(total):\n    return f'{total:.2f}'\n\n\n"
        + filler
        + "\n\ndef summary(total):\n    return \n"
    )
    index = CodeIndex(tiny_repo, IndexConfig(cursor_margin_lines=30), embedder=HashEmbedder())
    index.reindex()
    source = long_file.read_text()
    offset = source.rindex("return ") + len("return ")
    hits = index.snippets("shop/report.py", source + "format_receipt_total(", offset, limit=8)
    near = [h for h in hits if h.path == "shop/report.py"]
    assert any(h.name == "format_receipt_total" for h in near)
    assert all(h.end_line < source.count("\n", 0, offset) - 30 for h in near)
