"""The repository symbol graph and the needs probe, on small real multi-file repositories, one per
language, with the real tree-sitter grammars (and the 16-dim hash embedder: not about embeddings)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from retrieval import CodeIndex, IndexConfig
from retrieval.graph import GRAPH_VERSION, MAX_DEFINITIONS, extract
from tests.fixtures.hash_embedder import HashEmbedder

CURSOR = "<|>"

REPOS: dict[str, dict[str, str]] = {
    "python": {
        "shop/__init__.py": 'from .models import Order\n__all__ = ["Order"]\n',
        "shop/models.py": (
            "class Base:\n"
            "    def save(self, force: bool = False) -> None:\n"
            "        pass\n"
            "\n"
            "\n"
            "class Order(Base):\n"
            "    status: str = 'new'\n"
            "\n"
            "    def __init__(self, sku: str, quantity: int) -> None:\n"
            "        self.sku = sku\n"
            "        self.quantity = quantity\n"
            "\n"
            "    def ship(self, carrier: str) -> bool:\n"
            "        return True\n"
        ),
        "shop/pricing.py": (
            '__all__ = ["apply_discount"]\n'
            "TAX_RATE = 0.2\n"
            "\n"
            "def apply_discount(amount: float, percent: float) -> float:\n"
            "    return amount * (1 - percent / 100)\n"
            "\n"
            "def _internal(x):\n"
            "    return x\n"
        ),
        "app.py": (
            "from shop import Order\n"
            "from shop.pricing import *\n"
            "import shop.pricing as pricing\n"
            "\n"
            "def main():\n"
            "    order = Order('x', 2)\n"
            "    total = <|>\n"
        ),
    },
    "javascript": {
        "lib/index.js": "export * from './math.js';\nexport { default as Stack } from './stack.js';\n",
        "lib/math.js": "export function addAll(values, start = 0) {\n  return values.reduce((a, b) => a + b, start);\n}\n",
        "lib/stack.js": "export default class Stack {\n  constructor(limit) { this.items = []; }\n  push(item) { this.items.push(item); }\n}\n",
        "app.js": "import { addAll, Stack } from './lib/index.js';\nconst s = new Stack(3);\nconst n = <|>\n",
    },
    "typescript": {
        "src/shapes/index.ts": "export * from './circle';\n",
        "src/shapes/circle.ts": (
            "export class Circle {\n"
            "  constructor(public radius: number) {}\n"
            "  area(): number { return Math.PI * this.radius ** 2; }\n"
            "}\n"
            "export interface Shape { name: string; perimeter(): number }\n"
        ),
        "src/main.ts": "import { Circle } from './shapes';\nconst c = new Circle(2);\nconsole.log(c.<|>);\n",
    },
    "tsx": {
        "src/theme.ts": "export const PRIMARY_COLOR = '#336699';\nexport function spacing(n: number): string { return `${n * 4}px`; }\n",
        "src/Button.tsx": (
            "import { PRIMARY_COLOR, spacing } from './theme';\n"
            "export function Button() {\n"
            "  return <button style={{ padding: <|> }} />;\n"
            "}\n"
        ),
    },
    "go": {
        "go.mod": "module example.com/shop\n\ngo 1.21\n",
        "cart/cart.go": (
            "package cart\n\n"
            "type Cart struct {\n\tItems []Item\n\tOwner string\n}\n\n"
            "func (c *Cart) Total() float64 {\n\treturn 0\n}\n\n"
            "func New(owner string) *Cart {\n\treturn &Cart{Owner: owner}\n}\n"
        ),
        "cart/item.go": "package cart\n\n// Item is one line of a cart.\ntype Item struct {\n\tSKU   string\n\tPrice float64\n}\n\nfunc Sum(items []Item) float64 {\n\treturn 0\n}\n",
        "main.go": 'package main\n\nimport "example.com/shop/cart"\n\nfunc main() {\n\tc := cart.New("me")\n\t_ = cart.<|>\n}\n',
    },
    "rust": {
        "Cargo.toml": '[package]\nname = "geo"\nversion = "0.1.0"\n',
        "src/lib.rs": "pub mod geometry;\nuse crate::geometry::{Point, distance as dist};\n\npub fn run() {\n    let p = Point::<|>\n}\n",
        "src/geometry/mod.rs": "pub mod point;\npub use self::point::Point;\n\npub fn distance(a: &Point, b: &Point) -> f64 {\n    0.0\n}\n",
        "src/geometry/point.rs": (
            "pub struct Point {\n    pub x: f64,\n    pub y: f64,\n}\n\n"
            "impl Point {\n    pub fn new(x: f64, y: f64) -> Self {\n        Point { x, y }\n    }\n"
            "    pub fn norm(&self) -> f64 {\n        0.0\n    }\n}\n"
        ),
    },
    "java": {
        "src/main/java/com/acme/model/User.java": (
            "package com.acme.model;\n\n"
            "public class User {\n"
            "    private final String name;\n"
            "    public User(String name) { this.name = name; }\n"
            "    public String getName() { return name; }\n"
            "}\n"
        ),
        "src/main/java/com/acme/App.java": (
            "package com.acme;\n\nimport com.acme.model.User;\n\n"
            "public class App {\n    public static void main(String[] args) {\n"
            '        User u = new User("x");\n        System.out.println(u.<|>);\n    }\n}\n'
        ),
    },
    "c": {
        "include/geo.h": (
            "#ifndef GEO_H\n#define GEO_H\n"
            "struct point { double x; double y; };\n"
            "double point_distance(const struct point *a, const struct point *b);\n"
            "#endif\n"
        ),
        "src/geo.c": '#include "geo.h"\ndouble point_distance(const struct point *a, const struct point *b) { return 0; }\n',
        "src/main.c": (
            '#include <stdio.h>\n#include "../include/geo.h"\n\n'
            "int main(void) {\n    struct point a = {0, 0}, b = {3, 4};\n    double d = <|>\n    return 0;\n}\n"
        ),
    },
    "cpp": {
        "include/shapes/circle.hpp": (
            "#pragma once\nnamespace shapes {\n"
            "class Circle {\n public:\n  explicit Circle(double radius);\n  double area() const;\n"
            " private:\n  double radius_;\n};\n}  // namespace shapes\n"
        ),
        "src/circle.cpp": '#include "shapes/circle.hpp"\nnamespace shapes {\ndouble Circle::area() const { return 3.14 * radius_ * radius_; }\n}\n',
        "src/main.cpp": '#include "shapes/circle.hpp"\n\nint main() {\n  shapes::Circle c(2.0);\n  return c.<|>;\n}\n',
    },
}

# What the probe must offer at the cursor of each repository: (file, a line the prompt must show).
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "python": [
        ("shop/pricing.py", "def apply_discount(amount: float, percent: float) -> float: ..."),
        ("shop/models.py", "    def ship(self, carrier: str) -> bool: ..."),
    ],
    "javascript": [
        ("lib/math.js", "export function addAll(values, start = 0) { ... }"),
        ("lib/stack.js", "  push(item) { ... }"),
    ],
    "typescript": [("src/shapes/circle.ts", "  area(): number { ... }")],
    "tsx": [
        ("src/theme.ts", "export function spacing(n: number): string { ... }"),
        ("src/theme.ts", "export const PRIMARY_COLOR = '#336699';"),
    ],
    "go": [
        ("cart/cart.go", "func New(owner string) *Cart { ... }"),
        ("cart/item.go", "func Sum(items []Item) float64 { ... }"),
    ],
    "rust": [("src/geometry/point.rs", "    pub fn new(x: f64, y: f64) -> Self { ... }")],
    "java": [("src/main/java/com/acme/model/User.java", "    public String getName() { ... }")],
    "c": [("include/geo.h", "double point_distance(const struct point *a, const struct point *b);")],
    "cpp": [("include/shapes/circle.hpp", "  double area() const;")],
}
CURRENT = {
    "python": "app.py",
    "javascript": "app.js",
    "typescript": "src/main.ts",
    "tsx": "src/Button.tsx",
    "go": "main.go",
    "rust": "src/lib.rs",
    "java": "src/main/java/com/acme/App.java",
    "c": "src/main.c",
    "cpp": "src/main.cpp",
}


def _repo(tmp_path: Path, files: dict[str, str]) -> tuple[CodeIndex, dict[str, str]]:
    root = tmp_path / "repo"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text.replace(CURSOR, ""), encoding="utf-8")
    index = CodeIndex(root, IndexConfig(index_dir=tmp_path / "index"), embedder=HashEmbedder())
    index.reindex()
    return index, files


@pytest.mark.parametrize("language", sorted(REPOS))
def test_needs_probe_offers_the_definition_before_its_name_is_typed(tmp_path: Path, language: str):
    index, files = _repo(tmp_path, REPOS[language])
    current = CURRENT[language]
    text = files[current]
    offset = text.index(CURSOR)
    buffer = text.replace(CURSOR, "")
    found = index.needs_snippets(current, buffer, offset)
    shown = {(s.path, line) for s in found for line in s.text.split("\n")}
    for want in EXPECTED[language]:
        assert want in shown, (want, [(s.path, s.text) for s in found])
    assert all(s.reason == "needs" and s.prompt_kind in ("signature", "outline") for s in found)
    assert all(s.path != current for s in found)  # the prompt shows the current file itself
    index.close()


def test_receiver_members_come_first_and_outlines_show_fields_and_constructor(tmp_path: Path):
    index, files = _repo(tmp_path, REPOS["python"])
    buffer = "from shop import Order\n\ndef main(order: Order):\n    order."
    found = index.needs_snippets("app.py", buffer, len(buffer))
    first = found[0]
    assert (first.path, first.prompt_kind, first.name) == ("shop/models.py", "outline", "Order")
    assert first.text.split("\n")[:2] == ["class Order(Base):", "    status: str = 'new'"]
    assert "    def __init__(self, sku: str, quantity: int) -> None: ..." in first.text
    assert "        self.sku = sku" in first.text  # a field the constructor sets
    # The base class's members follow: `order.save()` is a call of Base.save.
    assert any(s.name == "Base" and "def save(self, force: bool = False)" in s.text for s in found)
    # The receiver's outline is what this keystroke needs (a steady prompt never holds it back);
    # a line without a receiver asks for nothing at the cursor, only for what the file mentions.
    assert first.at_cursor
    plain = buffer.removesuffix("order.")
    elsewhere = index.needs_snippets("app.py", plain, len(plain))
    assert any(s.name == "Order" for s in elsewhere) and not any(s.at_cursor for s in elsewhere)
    index.close()


def test_self_reaches_the_bases_of_the_enclosing_class(tmp_path: Path):
    files = dict(REPOS["python"])
    files["shop/express.py"] = (
        "from .models import Order\n\nclass Express(Order):\n    def go(self):\n        self.<|>\n"
    )
    index, _ = _repo(tmp_path, files)
    text = files["shop/express.py"]
    found = index.needs_snippets("shop/express.py", text.replace(CURSOR, ""), text.index(CURSOR))
    assert found[0].name == "Order" and "def ship(self, carrier: str)" in found[0].text
    index.close()


def test_star_imports_honour_all(tmp_path: Path):
    index, files = _repo(tmp_path, REPOS["python"])
    buffer = "from shop.pricing import *\n\nx = "
    names = {s.name for s in index.needs_snippets("app.py", buffer, len(buffer))}
    assert "apply_discount" in names and "_internal" not in names and "TAX_RATE" not in names
    index.close()


def test_saving_a_file_updates_its_part_of_the_graph(tmp_path: Path):
    index, files = _repo(tmp_path, REPOS["python"])
    path = index.root / "shop/pricing.py"
    path.write_text(path.read_text().replace("percent: float", "percent: float, cap: float = 50.0"))
    index.update_files([path])
    buffer = "from shop.pricing import apply_discount\n\nx = "
    text = "".join(s.text for s in index.needs_snippets("app.py", buffer, len(buffer)))
    assert "def apply_discount(amount: float, percent: float, cap: float = 50.0) -> float: ..." in text
    path.unlink()
    index.update_files([path])
    assert index.needs_snippets("app.py", buffer, len(buffer)) == []
    index.close()


def test_go_files_of_one_package_see_each_other_without_imports(tmp_path: Path):
    index, files = _repo(tmp_path, REPOS["go"])
    buffer = files["cart/cart.go"] + "\nfunc Check() {\n\tvar i "
    found = index.needs_snippets("cart/cart.go", buffer, len(buffer))
    assert any(s.path == "cart/item.go" and s.name == "Item" for s in found)
    index.close()


def test_extraction_per_language_names_containers_and_signatures():
    go = extract("a.go", REPOS["go"]["cart/cart.go"])
    assert go.package == "cart"
    assert [(d.qualified, d.kind) for d in go.definitions] == [
        ("Cart", "type"),
        ("Cart.Items", "field"),
        ("Cart.Owner", "field"),
        ("Cart.Total", "method"),
        ("New", "function"),
    ]
    rust = extract("lib.rs", REPOS["rust"]["src/lib.rs"].replace(CURSOR, ""))
    assert [(i.kind, i.module, i.name, i.alias) for i in rust.imports] == [
        ("module", "self::geometry", "", ""),
        ("name", "crate::geometry", "Point", ""),
        ("name", "crate::geometry", "distance", "dist"),
    ]
    java = extract("User.java", REPOS["java"]["src/main/java/com/acme/model/User.java"])
    assert java.package == "com.acme.model"
    assert [d.qualified for d in java.definitions] == ["User", "User.name", "User.User", "User.getName"]
    cpp = extract("c.hpp", REPOS["cpp"]["include/shapes/circle.hpp"])
    assert [(d.qualified, d.kind) for d in cpp.definitions] == [
        ("Circle", "class"),
        ("Circle.Circle", "method"),
        ("Circle.area", "method"),
        ("Circle.radius_", "field"),
    ]
    ts = extract(
        "a.ts", "import def, {a as b} from './x';\nexport * as ns from './y';\nconst r = require('./z');\n"
    )
    assert [(i.kind, i.module, i.binding) for i in ts.imports] == [
        ("name", "./x", "def"),
        ("name", "./x", "b"),
        ("module", "./y", "ns"),
        ("module", "./z", "r"),
    ]
    assert extract("notes.txt", "anything") is None


def test_bad_input_gives_a_partial_graph_and_no_hang(tmp_path: Path):
    files = {
        # An import cycle through star imports, an import of a module that does not exist, a file
        # that does not parse, a re-export chain 300 deep and a generated file with 6,000 exports.
        "a.py": "from b import *\nfrom nowhere.at.all import thing\n",
        "b.py": "from a import *\n",
        "broken.py": "def ok(x):\n    return x\n\ndef broken(:\n  class\n",
        **{f"chain{i}.py": f"from chain{i + 1} import deep\n" for i in range(300)},
        "chain300.py": "def deep(): ...\n",
        "generated.py": "".join(f"CONST_{i} = {i}\n" for i in range(6_000)),
        "use.py": "from a import *\nfrom chain0 import deep\nimport generated\nfrom broken import ok\n\nx = ",
    }
    index, _ = _repo(tmp_path, files)
    assert [d.name for d in extract("broken.py", files["broken.py"]).definitions][:1] == ["ok"]
    assert len(extract("generated.py", files["generated.py"]).definitions) == MAX_DEFINITIONS
    buffer = files["use.py"]
    t0 = time.perf_counter()
    found = index.needs_snippets("use.py", buffer, len(buffer))
    assert time.perf_counter() - t0 < 10  # bounded: not a timing goal, a guard against a hang
    names = {s.name for s in found}
    assert "ok" in names and "deep" not in names  # the chain is longer than the depth followed
    assert len(found) <= 160
    index.close()


def test_prompt_puts_needed_definitions_first_within_their_share(tmp_path: Path):
    from engine import Completer, EngineConfig
    from engine.prompt import BudgetShares

    files = dict(REPOS["python"])
    # Definitions whose bodies are too long for the room (their signatures are not), plenty of
    # similar code competing for it, and a buffer that calls into the package.
    body = "".join(f"    step_{i} = amount * {i}\n" for i in range(80))
    files["shop/pricing.py"] = files["shop/pricing.py"].replace(
        "    return amount * (1 - percent / 100)\n", body + "    return amount * (1 - percent / 100)\n"
    )
    files["shop/models.py"] += "".join(f"        note_{i} = carrier * {i}\n" for i in range(80))
    files.update(
        {
            f"shop/similar{i}.py": "".join(
                f"def total_{i}_{j}(order, quantity):\n    return order * quantity\n\n" for j in range(12)
            )
            for i in range(6)
        }
    )
    index, _ = _repo(tmp_path, files)
    buffer = "from shop.pricing import apply_discount\nfrom shop import Order\n\n\ndef total(order: Order):\n    return "
    completer = Completer(EngineConfig(budget_tokens=1024))
    prompt, _ = completer.prompt("app.py", buffer, len(buffer), index, "repo")
    context = [p for p in prompt.parts if p.kind not in ("prefix", "suffix")]
    needs = [p for p in context if p.reason == "needs"]
    assert ("outline", "shop/models.py") in {(p.kind, p.path) for p in needs}
    assert "    def ship(self, carrier: str) -> bool: ..." in "".join(p.text for p in needs)
    # apply_discount's signature, or the first piece of its chunk (then the signature says nothing more).
    assert "def apply_discount(amount: float, percent: float) -> float:" in "".join(p.text for p in context)
    assert any(p.kind == "snippet" for p in context)  # similar code still fills what is left
    share = BudgetShares().needs * 1024
    assert sum(len(p.tokens) for p in needs) <= share
    assert prompt.n_tokens <= 1024
    as_json = prompt.to_dict("app.py", 6, 12)["parts"]
    assert {p["reason"] for p in as_json} >= {"needs", "cursor"}
    index.close()


def test_attribute_chains_follow_fields_whose_declaration_names_their_class(tmp_path: Path):
    files = dict(REPOS["python"])
    files["shop/desk.py"] = (
        "from .models import Order\n\n"
        "class Desk:\n"
        "    def __init__(self, order: Order) -> None:\n"
        "        self.order = order\n\n"
        "def serve(desk: Desk):\n"
        "    current = desk.order\n"
        "    desk.order.<|>\n"
    )
    index, _ = _repo(tmp_path, files)
    text = files["shop/desk.py"]
    buffer, offset = text.replace(CURSOR, ""), text.index(CURSOR)
    found = index.needs_snippets("shop/desk.py", buffer, offset)
    assert found[0].name == "Order" and "def ship(self, carrier: str)" in found[0].text
    # A local assigned from the chain reaches the same class.
    buffer = buffer[: offset - len("desk.order.")] + "current." + buffer[offset:]
    found = index.needs_snippets("shop/desk.py", buffer, offset - len("desk.order.") + len("current."))
    assert found[0].name == "Order"
    index.close()


def test_go_chains_through_typed_fields_to_types_of_the_same_package(tmp_path: Path):
    files = dict(REPOS["go"])
    files["cart/lock.go"] = "package cart\n\ntype Guard struct {\n\tn int\n}\n\nfunc (g *Guard) Hold() {}\n"
    files["cart/cart.go"] = files["cart/cart.go"].replace(
        "\tOwner string\n", "\tOwner string\n\tguard Guard\n"
    )
    files["cart/use.go"] = "package cart\n\nfunc Use(c *Cart) {\n\tc.guard.<|>\n}\n"
    index, _ = _repo(tmp_path, files)
    text = files["cart/use.go"]
    found = index.needs_snippets("cart/use.go", text.replace(CURSOR, ""), text.index(CURSOR))
    assert (found[0].path, found[0].name) == ("cart/lock.go", "Guard")
    assert "func (g *Guard) Hold() { ... }" in found[0].text
    index.close()


def _needs(index: CodeIndex, files: dict[str, str], current: str):
    text = files[current]
    return index.needs_snippets(current, text.replace(CURSOR, ""), text.index(CURSOR))


def test_this_reaches_a_base_named_after_a_multi_line_class_header(tmp_path: Path):
    files = {
        "src/removable.ts": "export abstract class Removable {\n  gcTime!: number\n"
        "  protected scheduleGc(): void {}\n}\n",
        "src/mutation.ts": (
            "import { Removable } from './removable'\n\n"
            "export class Mutation<\n  TData = unknown,\n  TError = Error,\n> extends Removable {\n"
            "  remove(): void {\n    this.<|>\n  }\n}\n"
        ),
    }
    index, _ = _repo(tmp_path, files)
    found = _needs(index, files, "src/mutation.ts")
    assert any(
        s.path == "src/removable.ts" and "  protected scheduleGc(): void { ... }" in s.text for s in found
    )
    index.close()


RUST_IO = {
    "src/lib.rs": "pub mod io;\npub mod ser;\npub mod value;\n",
    "src/io/mod.rs": (
        "pub use self::imp::{Error, Write};\n\n"
        '#[cfg(not(feature = "std"))]\n#[path = "core.rs"]\nmod imp;\n\n'
        '#[cfg(feature = "std")]\nuse std::io as imp;\n'
    ),
    "src/io/core.rs": (
        "pub struct Error;\n\n"
        "pub trait Write {\n    fn write(&mut self, buf: &[u8]) -> Result<usize, Error>;\n}\n"
    ),
    "src/ser.rs": (
        "use crate::io;\n\n"
        "pub fn to_writer_pretty<W: io::Write>(writer: W) {}\n\n"
        "pub struct Serializer<W> {\n    writer: W,\n}\n\n"
        "impl<W> Serializer<W>\nwhere\n    W: io::<|>\n{\n}\n"
    ),
    "src/value/mod.rs": "pub enum Value {\n    Null,\n}\n\nfn show(v: &Value) {\n    super::ser::<|>\n}\n",
}


def test_rust_path_attribute_modules_resolve_their_reexports(tmp_path: Path):
    index, files = _repo(tmp_path, RUST_IO)
    io = extract("src/io/mod.rs", RUST_IO["src/io/mod.rs"])
    assert ("self::core", "Write") in {(i.module, i.name) for i in io.imports}
    found = _needs(index, files, "src/ser.rs")
    assert found[0].path == "src/io/core.rs" and found[0].text.startswith("pub trait Write {")
    index.close()


def test_rust_receivers_spelled_as_module_paths(tmp_path: Path):
    index, files = _repo(tmp_path, RUST_IO)
    found = _needs(index, files, "src/value/mod.rs")
    assert any(
        s.path == "src/ser.rs" and s.text.startswith("pub fn to_writer_pretty<W: io::Write>") for s in found
    )
    # `crate::` reaches the crate root's modules' items through their paths, too.
    files = dict(RUST_IO)
    files["src/value/mod.rs"] = (
        "fn show() {\n    let s: crate::ser::Serializer<Vec<u8>> = make();\n    s.<|>\n}\n"
    )
    found = _needs(index, files, "src/value/mod.rs")
    assert found[0].path == "src/ser.rs" and found[0].name == "Serializer"
    index.close()


def test_go_methods_of_named_non_struct_types_and_in_other_files(tmp_path: Path):
    files = {
        "go.mod": "module example.com/logx\n",
        "fields.go": (
            "package logx\n\ntype fieldKey string\n\ntype FieldMap map[fieldKey]string\n\n"
            "func (f FieldMap) resolve(key fieldKey) string {\n\treturn f[key]\n}\n"
        ),
        "text.go": (
            "package logx\n\ntype TextFormatter struct {\n\tFieldMap FieldMap\n\tQuote bool\n}\n\n"
            "func (f *TextFormatter) Format(k string) string {\n\treturn f.FieldMap.<|>\n}\n"
        ),
        "check.go": "package logx\n\nfunc (f *TextFormatter) validate() error {\n\treturn nil\n}\n",
        "use.go": "package logx\n\nfunc use(t *TextFormatter) {\n\tt.<|>\n}\n",
    }
    index, _ = _repo(tmp_path, files)
    found = _needs(index, files, "text.go")
    assert [(s.path, s.text) for s in found[:2]] == [
        ("fields.go", "type FieldMap map[fieldKey]string\n"),
        ("fields.go", "func (f FieldMap) resolve(key fieldKey) string { ... }\n"),
    ]
    found = _needs(index, files, "use.go")
    assert any(
        s.path == "check.go" and "func (f *TextFormatter) validate() error { ... }" in s.text for s in found
    )
    index.close()


def test_constants_declared_together_rank_together(tmp_path: Path):
    files = {
        "go.mod": "module example.com/logx\n",
        "level.go": (
            "package logx\n\ntype Level uint32\n\nconst (\n\t// PanicLevel panics.\n\tPanicLevel Level = iota\n"
            "\t// FatalLevel exits.\n\tFatalLevel\n\t// DebugLevel is verbose.\n\tDebugLevel\n)\n"
        ),
        "alpha.go": "package logx\n\n" + "".join(f"func Helper{i}() {{}}\n" for i in range(30)),
        "writer.go": (
            "package logx\n\nfunc pick(level Level) string {\n\tswitch level {\n\tcase PanicLevel:\n"
            '\t\treturn "p"\n\tcase FatalLevel:\n\t\treturn "f"\n\tcase <|>\n\t}\n\treturn ""\n}\n'
        ),
    }
    index, _ = _repo(tmp_path, files)
    found = _needs(index, files, "writer.go")
    ranks = {s.name: i for i, s in enumerate(found)}
    assert ranks["DebugLevel"] < min(ranks[f"Helper{i}"] for i in range(30))
    index.close()


def test_a_chain_continued_on_a_new_line_keeps_its_receiver(tmp_path: Path):
    files = dict(REPOS["typescript"])
    files["src/main.ts"] = (
        "import { Circle } from './shapes';\nconst c: Circle = make();\nconst a = c\n  .<|>\n"
    )
    index, _ = _repo(tmp_path, files)
    found = _needs(index, files, "src/main.ts")
    assert found[0].name == "Circle" and "  area(): number { ... }" in found[0].text
    index.close()


def test_members_the_repository_uses_most_come_first_in_a_large_outline(tmp_path: Path):
    methods = "".join(f"    def step{i}(self) -> int:\n        return {i}\n\n" for i in range(40))
    files = {
        "pkg/__init__.py": "",
        "pkg/command.py": "class Command:\n" + methods + "    def name(self) -> str:\n        return 'c'\n",
        **{f"pkg/use{i}.py": f"def show{i}(c):\n    return c.name() + '{i}'\n" for i in range(6)},
        "pkg/main.py": "from .command import Command\n\ndef run(c: Command):\n    c.<|>\n",
    }
    index, _ = _repo(tmp_path, files)
    found = _needs(index, files, "pkg/main.py")
    assert found[0].name == "Command" and "    def name(self) -> str: ..." in found[0].text
    assert "    def step39(self) -> int: ..." not in found[0].text  # never used: in a later part
    index.close()


def test_a_go_package_receiver_offers_the_members_of_all_its_files(tmp_path: Path):
    files = {
        "go.mod": "module example.com/app\n",
        **{f"logx/a{i}.go": f"package logx\n\nfunc Helper{i}() {{}}\n" for i in range(12)},
        "logx/level.go": "package logx\n\ntype Level uint32\n\nconst (\n\tPanicLevel Level = iota\n\tDebugLevel\n)\n",
        "hook/hook.go": (
            'package hook\n\nimport "example.com/app/logx"\n\nfunc pick(l logx.Level) int {\n\tswitch l {\n'
            "\tcase logx.PanicLevel:\n\t\treturn 1\n\tcase logx.<|>\n\t}\n\treturn 0\n}\n"
        ),
    }
    index, _ = _repo(tmp_path, files)
    found = _needs(index, files, "hook/hook.go")
    ranks = {s.name: i for i, s in enumerate(found)}
    assert ranks["DebugLevel"] < min(ranks[f"Helper{i}"] for i in range(12))
    index.close()


def test_receivers_through_calls_reach_the_declared_return_type(tmp_path: Path):
    files = {
        "src/lib.rs": "pub mod hir;\npub mod translate;\n",
        "src/hir.rs": (
            "pub struct Hir {\n    kind: u8,\n}\n\n"
            "impl Hir {\n    pub fn is_anchored_start(&self) -> bool {\n        true\n    }\n}\n"
        ),
        "src/translate.rs": (
            "use crate::hir::Hir;\n\n"
            "fn t(pattern: &str) -> Hir {\n    unimplemented!()\n}\n\n"
            'fn check() {\n    assert!(t(r"^foo|^(bar)").<|>);\n}\n'
        ),
        "src/queryCache.ts": (
            "export class Query<T> {\n  setData(data: T): T { return data }\n}\n"
            "export class QueryCache {\n  build<T>(key: string): Query<T> { return new Query<T>() }\n}\n"
        ),
        "src/client.ts": (
            "import { QueryCache } from './queryCache'\n\n"
            "export class Client {\n  #queryCache: QueryCache\n  set(data: number) {\n"
            "    return this.#queryCache\n      .build('k')\n      .<|>\n  }\n}\n"
        ),
    }
    index, _ = _repo(tmp_path, files)
    found = _needs(index, files, "src/translate.rs")
    assert (
        found[0].path == "src/hir.rs"
        and "    pub fn is_anchored_start(&self) -> bool { ... }" in found[0].text
    )
    found = _needs(index, files, "src/client.ts")
    assert found[0].name == "Query" and "  setData(data: T): T { ... }" in found[0].text
    index.close()


def test_rust_types_have_the_provided_methods_of_the_traits_they_implement(tmp_path: Path):
    files = {
        "src/lib.rs": "mod math;\nmod bignum;\nmod errors;\nmod algorithm;\n",
        "src/math.rs": (
            "pub(crate) trait Math: Clone + Sized {\n    fn data(&self) -> &[u32];\n\n"
            "    fn imul_small(&mut self, y: u32) {\n        let _ = y;\n    }\n}\n"
        ),
        "src/bignum.rs": (
            "use super::math::*;\n\npub(crate) struct Bigint {\n    pub data: Vec<u32>,\n}\n\n"
            "impl Math for Bigint {\n    fn data(&self) -> &[u32] {\n        &self.data\n    }\n}\n"
        ),
        "src/errors.rs": (
            "pub(crate) trait FloatErrors {\n    fn error_halfscale() -> u32;\n}\n\n"
            "impl FloatErrors for u64 {\n    fn error_halfscale() -> u32 {\n        1\n    }\n}\n"
        ),
        "src/algorithm.rs": (
            "use super::bignum::*;\nuse super::errors::*;\n\nfn parse() {\n    let mut result = Bigint::default();\n"
            "    result.<|>\n}\n"
        ),
    }
    graph = extract("src/bignum.rs", files["src/bignum.rs"])
    assert [(d.name, d.container, d.kind) for d in graph.definitions if d.kind == "impl"] == [
        ("Math", "Bigint", "impl")
    ]
    index, _ = _repo(tmp_path, files)
    found = _needs(index, files, "src/algorithm.rs")
    assert any(
        s.path == "src/math.rs" and "    fn imul_small(&mut self, y: u32) { ... }" in s.text
        for s in found[:3]
    )
    assert not any("impl Math for Bigint" in s.text for s in found)  # a trait link, not a member to show
    files["src/algorithm.rs"] = files["src/algorithm.rs"].replace("result.<|>", "let e = u64::<|>")
    found = _needs(index, files, "src/algorithm.rs")
    assert found[0].path == "src/errors.rs" and "    fn error_halfscale() -> u32;" in found[0].text
    index.close()


def test_an_index_built_by_older_extraction_code_refreshes_its_graphs_once(tmp_path: Path):
    index, files = _repo(tmp_path, REPOS["python"])
    store = index.store
    assert store.meta("graph_version") == GRAPH_VERSION
    # As an older version left it: no graph version, and a graph that lacks what extraction now finds.
    store.replace_graph("shop/models.py", None)
    store.set_meta("graph_version", "1")
    index.close()
    index = CodeIndex(index.root, IndexConfig(index_dir=tmp_path / "index"), embedder=HashEmbedder())
    stats = index.reindex()
    assert stats.files_changed == 0 and stats.chunks_embedded == 0  # nothing re-chunked or re-embedded
    assert index.store.meta("graph_version") == GRAPH_VERSION
    assert [d.name for d in index.graph_of("shop/models.py").definitions][:2] == ["Base", "save"]
    buffer = "from shop.models import Order\n\ndef main(order: Order):\n    order."
    assert index.needs_snippets("app.py", buffer, len(buffer))[0].name == "Order"
    index.close()


def test_loop_variables_and_callback_parameters_take_the_collections_item_type(tmp_path: Path):
    files = {
        "src/observer.ts": "export class QueryObserver {\n  onQueryUpdate(): void {}\n}\n",
        "src/query.ts": (
            "import { QueryObserver } from './observer'\n\n"
            "export class Query {\n  observers: Array<QueryObserver<any, any>>\n"
            "  dispatch(): void {\n    this.observers.forEach((observer) => {\n      observer.<|>\n    })\n  }\n}\n"
        ),
        "go.mod": "module example.com/cli\n",
        "cmd/command.go": (
            "package cmd\n\ntype Command struct {\n\tcommands []*Command\n}\n\n"
            "func (c *Command) Commands() []*Command {\n\treturn c.commands\n}\n\n"
            'func (c *Command) Name() string {\n\treturn ""\n}\n'
        ),
        "cmd/help.go": "package cmd\n\nfunc names(cmd *Command) {\n\tfor _, sub := range cmd.Commands() {\n\t\tsub.<|>\n\t}\n}\n",
    }
    index, _ = _repo(tmp_path, files)
    found = _needs(index, files, "src/query.ts")
    assert found[0].name == "QueryObserver" and "  onQueryUpdate(): void { ... }" in found[0].text
    found = _needs(index, files, "cmd/help.go")
    assert found[0].name == "Command" and "func (c *Command) Name() string { ... }" in found[0].text
    index.close()
