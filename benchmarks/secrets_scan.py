"""Inline-secret masking on real public projects: how much ordinary source it masks (false positives;
goal at most 0.5% of lines), and what it costs indexing (goal at most 1.1x the time without it).

    python benchmarks/secrets_scan.py [--embedder minilm|hash] [--rounds 1] [--show 15] [--ab]
    python benchmarks/secrets_scan.py --prefilter [--root PATH ...]

Projects are downloaded at run time into benchmarks/.cache (PyPI sdists, an npm tarball, a Debian
source package) and contain no real secrets that we know of: every masked line counts as a false
positive, and the masked lines are printed for a look. Indexing is timed whole (walk, chunking,
graph, embedding, SQLite and FAISS writes) into a fresh index folder, and the time spent masking
inside it is measured in the same run: the cost is total / (total - masking), which a loaded
machine cannot skew the way two separate runs can. `--ab` also times whole runs without masking,
alternated over `--rounds` (medians): on a shared two-core machine their noise exceeds the effect.

`--prefilter` times the scan alone over every file the indexer would read (the projects, or each
`--root`): as the index runs it, where each detector sees only the lines that could hold what it
finds (retrieval/literals.py), against every detector on every line, in one run (with, without,
with again: the two with-runs' mean), and checks that both find the same spans."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from retrieval_quality import obtain  # noqa: E402

import retrieval.index as index_module  # noqa: E402
import retrieval.secrets as secrets_module  # noqa: E402
from retrieval import CodeIndex, IndexConfig  # noqa: E402
from retrieval.files import walk  # noqa: E402
from retrieval.secrets import SecretScanner  # noqa: E402
from tests.fixtures.hash_embedder import HashEmbedder  # noqa: E402

# Reserved for independent evaluation, never used here: rich, httpx, jinja2, click, rxjs, mobx, gin,
# goldmark, clap, rayon.
PROJECTS = [
    "pypi:requests==2.32.3",
    "pypi:flask==3.0.3",
    "npm:@tanstack/query-core@5.59.0",
    "deb:golang-github-spf13-cobra-dev",
]


class NoMasking(SecretScanner):
    def mask(self, text: str, path: str = "") -> str:
        return text


def false_positives(root: Path, show: int) -> tuple[int, int, int, float, list[str]]:
    """(files, lines, masked lines, scan seconds, examples) over every file the indexer would read."""
    scanner = SecretScanner()
    files = lines = masked = 0
    seconds = 0.0
    examples: list[str] = []
    for f in walk(root, 1_000_000):
        try:
            text = f.abs_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        files += 1
        lines += text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        t0 = time.perf_counter()
        spans = scanner.spans(text, f.path)
        seconds += time.perf_counter() - t0
        hit_lines = sorted({text.count("\n", 0, s.start) for s in spans})
        masked += len(hit_lines)
        all_lines = text.splitlines()
        for n in hit_lines:
            if len(examples) < show:
                kinds = ",".join(sorted({s.kind for s in spans if text.count("\n", 0, s.start) == n}))
                examples.append(f"{f.path}:{n + 1} [{kinds}] {all_lines[n].strip()[:110]}")
    return files, lines, masked, seconds, examples


class TimedMasking(SecretScanner):
    """The real scanner, counting the seconds its masking takes."""

    seconds = 0.0

    def mask(self, text: str, path: str = "") -> str:
        t0 = time.perf_counter()
        try:
            return super().mask(text, path)
        finally:
            TimedMasking.seconds += time.perf_counter() - t0


def index_seconds(root: Path, embedder_name: str, scanner: type[SecretScanner]) -> tuple[float, float]:
    """(whole indexing seconds, of which masking) for a fresh index of `root` with `scanner`."""
    embedder = HashEmbedder() if embedder_name == "hash" else None
    original = index_module.SecretScanner
    index_module.SecretScanner = scanner  # type: ignore[misc]
    TimedMasking.seconds = 0.0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            index = CodeIndex(root, IndexConfig(index_dir=Path(tmp) / "index"), embedder=embedder)
            t0 = time.perf_counter()
            index.reindex()
            seconds = time.perf_counter() - t0
            index.close()
            return seconds, TimedMasking.seconds
    finally:
        index_module.SecretScanner = original  # type: ignore[misc]


def prefilter_comparison(root: Path) -> dict[str, float | int | bool]:
    """Seconds to find the spans of every file under `root` with the prefilters and without."""
    texts = {}
    for f in walk(root, 1_000_000):
        try:
            texts[f.path] = f.abs_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue

    def timed() -> tuple[float, dict]:
        scanner = SecretScanner()
        t0 = time.perf_counter()
        found = {path: scanner.spans(text, path) for path, text in texts.items()}
        return time.perf_counter() - t0, found

    scan = secrets_module._scan
    secrets_module._plugins()  # detect-secrets loaded once, outside the timing
    first, fast = timed()
    secrets_module._scan = lambda lines, name: scan(lines, name, prefilter=False)  # type: ignore[assignment]
    try:
        slow_s, slow = timed()
    finally:
        secrets_module._scan = scan  # type: ignore[assignment]
    second, again = timed()
    with_s = (first + second) / 2
    return {
        "files": len(texts),
        "lines": sum(t.count("\n") + 1 for t in texts.values()),
        "with_s": with_s,
        "without_s": slow_s,
        "same": fast == slow == again,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedder", choices=("minilm", "hash"), default="minilm")
    parser.add_argument("--rounds", type=int, default=1, help="indexing runs per project (medians)")
    parser.add_argument("--show", type=int, default=15, help="masked lines to print per project")
    parser.add_argument("--ab", action="store_true", help="also time whole runs without masking")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument(
        "--prefilter", action="store_true", help="time the scan with and without its prefilters"
    )
    parser.add_argument("--root", type=Path, action="append", help="with --prefilter: scan these trees")
    args = parser.parse_args()
    if args.prefilter:
        print(
            "| tree | files | lines | scan s, prefiltered | every detector on every line | speed-up | same spans |"
        )
        print("|---|---:|---:|---:|---:|---:|---|")
        for root in args.root or [obtain(spec) for spec in PROJECTS]:
            r = prefilter_comparison(root)
            print(
                f"| {root.name} | {r['files']} | {r['lines']} | {r['with_s']:.2f} | {r['without_s']:.2f} | "
                f"{r['without_s'] / max(r['with_s'], 1e-9):.2f}x | {'yes' if r['same'] else 'NO'} |"
            )
        return
    print(
        "| project | files | lines | masked lines | share | index s | of it masking s | cost "
        + ("| index s, no masking | A/B ratio |" if args.ab else "|")
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.ab else ""))
    totals = [0, 0, 0]
    whole_all = masking_all = 0.0
    details = []
    for spec in PROJECTS:
        root = obtain(spec)
        files, lines, masked, _, examples = false_positives(root, args.show)
        totals[0] += files
        totals[1] += lines
        totals[2] += masked
        runs, plain = [], []
        if not args.skip_timing:
            for r in range(args.rounds):
                if args.ab and r % 2 == 1:
                    plain.append(index_seconds(root, args.embedder, NoMasking)[0])
                runs.append(index_seconds(root, args.embedder, TimedMasking))
                if args.ab and r % 2 == 0:
                    plain.append(index_seconds(root, args.embedder, NoMasking)[0])
        whole = statistics.median(w for w, _ in runs) if runs else float("nan")
        masking = statistics.median(m for _, m in runs) if runs else float("nan")
        whole_all += whole if runs else 0.0
        masking_all += masking if runs else 0.0
        row = (
            f"| {spec} | {files} | {lines} | {masked} | {masked / max(lines, 1):.3%} | {whole:.1f} | "
            f"{masking:.1f} | {whole / (whole - masking):.3f}x |"
        )
        if args.ab:
            b = statistics.median(plain)
            row += f" {b:.1f} | {whole / b:.2f} |"
        print(row)
        details.append((spec, examples))
    cost = whole_all / (whole_all - masking_all) if whole_all else float("nan")
    print(
        f"| all | {totals[0]} | {totals[1]} | {totals[2]} | {totals[2] / max(totals[1], 1):.3%} | "
        f"{whole_all:.1f} | {masking_all:.1f} | {cost:.3f}x |"
    )
    for spec, examples in details:
        print(f"\nmasked lines in {spec} (first {args.show}):")
        for e in examples:
            print("  " + e)


if __name__ == "__main__":
    main()
