"""From an import as written to files of the repository, per language.

Paths are the index's (POSIX, relative to the root). Relative imports are joined to the importing
file; package imports are matched against the end of the repository's paths (`requests.models`
finds `src/requests/models.py`, a Go import path finds the folder that ends like it, `com.x.Y`
finds `.../com/x/Y.java`, `#include "a/b.h"` finds `include/a/b.h`), the candidate nearest the
importing file winning. An import that matches nothing is left out: it is a library's.

A target is a file and what the import takes from it: a name, "" for the module itself (a
namespace the code reaches into with `mod.`), or "*" for all its public names.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from .graph import Import

_EXT = {
    "python": (".py", ".pyi"),
    "javascript": (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx"),
    "typescript": (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs"),
    "tsx": (".tsx", ".ts", ".d.ts", ".js", ".jsx"),
    "go": (".go",),
    "rust": (".rs",),
    "java": (".java",),
    "c": (".h", ".c"),
    "cpp": (".h", ".hpp", ".hh", ".hxx", ".cc", ".cpp", ".cxx"),
}
_JS_EXT = (".js", ".jsx", ".mjs", ".cjs")
_INDEX_FILES = ("__init__.py", "index.ts", "index.tsx", "index.js", "index.jsx", "index.mjs", "mod.rs")
_RUST_ROOTS = ("lib.rs", "main.rs")


@dataclass(frozen=True)
class Target:
    path: str
    name: str  # a name the import takes, "" for the module itself, "*" for all its public names


class ModuleResolver:
    """The repository's files, indexed for import resolution. Built once per change of the file set."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = frozenset(paths)
        self.by_name: dict[str, list[str]] = defaultdict(list)  # file name -> paths
        self.dirs: dict[str, list[str]] = defaultdict(list)  # folder -> its files
        self.by_dir_name: dict[str, list[str]] = defaultdict(list)  # folder's last name -> folders
        for path in self.paths:
            folder, name = posixpath.split(path)
            self.by_name[name].append(path)
            self.dirs[folder].append(path)
        for folder in self.dirs:
            self.by_dir_name[posixpath.basename(folder)].append(folder)

    def resolve(self, path: str, language: str, imp: Import) -> list[Target]:
        """The files (and names in them) that `imp`, written in `path`, refers to."""
        method = {
            "python": self._python,
            "javascript": self._js,
            "typescript": self._js,
            "tsx": self._js,
            "go": self._go,
            "rust": self._rust,
            "java": self._java,
            "c": self._c,
            "cpp": self._c,
        }.get(language)
        return method(path, imp) if method is not None else []

    def package_files(self, path: str, language: str) -> list[str]:
        """Other files whose names `path` sees without an import: a Go package's, a Java package's."""
        if language not in ("go", "java"):
            return []
        folder = posixpath.dirname(path)
        ext = ".go" if language == "go" else ".java"
        test = path.endswith("_test.go")
        return sorted(
            p
            for p in self.dirs.get(folder, ())
            if p != path and p.endswith(ext) and (test or not p.endswith("_test.go"))
        )

    # -- matching ------------------------------------------------------------------------------
    def _nearest(self, path: str, candidates: Iterable[str]) -> str | None:
        """The candidate sharing the longest folder prefix with `path`, then the shortest."""
        best = None
        best_key: tuple[int, int] | None = None
        parts = path.split("/")
        for c in candidates:
            shared = 0
            for a, b in zip(parts, c.split("/")):
                if a != b:
                    break
                shared += 1
            key = (-shared, len(c))
            if best_key is None or key < best_key:
                best, best_key = c, key
        return best

    def _files_ending(self, tail: str) -> list[str]:
        """Files whose path is `tail` or ends with `/tail`."""
        name = posixpath.basename(tail)
        return [p for p in self.by_name.get(name, ()) if p == tail or p.endswith("/" + tail)]

    def _dirs_ending(self, tail: str) -> list[str]:
        name = posixpath.basename(tail)
        return [d for d in self.by_dir_name.get(name, ()) if d == tail or d.endswith("/" + tail)]

    # -- Python -----------------------------------------------------------------------------------
    def _py_module(self, path: str, key: str, relative: bool) -> str | None:
        """The file of module `key` (a/b/c): a/b/c.py, .pyi or a/b/c/__init__.py."""
        if relative:
            for candidate in (key + ".py", key + ".pyi", key + "/__init__.py", key + "/__init__.pyi"):
                if candidate in self.paths:
                    return candidate
            return None
        found = []
        for tail in (key + ".py", key + ".pyi", key + "/__init__.py"):
            for p in self._files_ending(tail):
                # An absolute import starts at a package root: the folder above the match is no package
                # (`import logging` is not pip/_internal/utils/logging.py).
                root = p[: len(p) - len(tail)].rstrip("/")
                if not root or root + "/__init__.py" not in self.paths:
                    found.append(p)
        return self._nearest(path, found)

    def _python(self, path: str, imp: Import) -> list[Target]:
        module = imp.module
        relative = module.startswith(".")
        if relative:
            level = len(module) - len(module.lstrip("."))
            base = posixpath.dirname(path)
            for _ in range(level - 1):
                base = posixpath.dirname(base)
            rest = module.lstrip(".").replace(".", "/")
            key = posixpath.join(base, rest) if rest else base
        else:
            key = module.replace(".", "/")
        if imp.kind == "name":
            sub = self._py_module(path, posixpath.join(key, imp.name) if key else imp.name, relative)
            if sub is not None:
                return [Target(sub, "")]
            found = self._py_module(path, key, relative) if key else None
            return [Target(found, imp.name)] if found else []
        found = self._py_module(path, key, relative) if key else None
        if found is None:
            return []
        return [Target(found, "*" if imp.kind == "star" else "")]

    # -- JavaScript / TypeScript ------------------------------------------------------------------
    def _js_file(self, base: str) -> str | None:
        candidates = [base]
        stem = base
        for ext in _JS_EXT:  # TypeScript sources import "./x.js" for ./x.ts
            if base.endswith(ext):
                stem = base[: -len(ext)]
                break
        candidates += [stem + ext for ext in (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs")]
        candidates += [f"{base}/index{ext}" for ext in (".ts", ".tsx", ".js", ".jsx", ".mjs")]
        return next((c for c in candidates if c in self.paths), None)

    def _js(self, path: str, imp: Import) -> list[Target]:
        module = imp.module
        if module.startswith("."):
            found = self._js_file(posixpath.normpath(posixpath.join(posixpath.dirname(path), module)))
        elif module.startswith(("@/", "~/", "src/")):  # the usual path aliases for the source root
            tail = module.split("/", 1)[1] if not module.startswith("src/") else module
            found = None
            for root in ("src", ""):
                found = self._js_file(posixpath.join(root, tail) if root else tail)
                if found:
                    break
        else:
            found = None  # a package of node_modules
        if found is None:
            return []
        if imp.kind == "name":
            return [Target(found, imp.name)]
        return [Target(found, "*" if imp.kind == "star" else "")]

    # -- Go ------------------------------------------------------------------------------------------
    def _go(self, path: str, imp: Import) -> list[Target]:
        segments = [s for s in imp.module.split("/") if s]
        if not segments:
            return []
        # The standard library's paths have no dot in their first element: only a whole match counts.
        shortest = 1 if "." in segments[0] else len(segments)
        test = path.endswith("_test.go")
        for k in range(len(segments), shortest - 1, -1):
            folders = [
                d
                for d in self._dirs_ending("/".join(segments[-k:]))
                if any(p.endswith(".go") for p in self.dirs[d])
            ]
            folder = self._nearest(path, folders)
            if folder is not None:
                files = sorted(
                    p for p in self.dirs[folder] if p.endswith(".go") and (test or not p.endswith("_test.go"))
                )
                kind = "*" if imp.kind == "star" else ""
                return [Target(p, kind) for p in files]
        return []

    # -- Rust ----------------------------------------------------------------------------------------
    def _rust_module_dir(self, path: str) -> str:
        """The folder that holds a module's child modules: x/ for x/mod.rs and src/lib.rs, x/y for x/y.rs."""
        folder, name = posixpath.split(path)
        if name in ("mod.rs", *_RUST_ROOTS):
            return folder
        return posixpath.join(folder, name[:-3]) if name.endswith(".rs") else folder

    def _rust_crate_root(self, path: str) -> str | None:
        folder = posixpath.dirname(path)
        while True:
            for root in _RUST_ROOTS:
                if posixpath.join(folder, root) in self.paths:
                    return folder
            if not folder:
                return None
            folder = posixpath.dirname(folder)

    def _rust_file(self, module_dir: str) -> str | None:
        """The file of the module whose child folder is `module_dir`: module_dir.rs or module_dir/mod.rs."""
        for candidate in (module_dir + ".rs", module_dir + "/mod.rs"):
            if candidate in self.paths:
                return candidate
        for root in _RUST_ROOTS:
            if posixpath.join(module_dir, root) in self.paths:
                return posixpath.join(module_dir, root)
        return None

    def _rust(self, path: str, imp: Import) -> list[Target]:
        segments = [s for s in imp.module.split("::") if s]
        if imp.kind == "name":
            segments.append(imp.name)
        if not segments:
            return []
        head = segments[0]
        base = self._rust_module_dir(path)
        file: str | None = path
        rest = segments
        if head == "crate":
            crate = self._rust_crate_root(path)
            if crate is None:
                return []
            base, file, rest = crate, self._rust_file(crate), segments[1:]
        while rest and rest[0] in ("self", "super"):
            if rest[0] == "super":
                base = posixpath.dirname(base)
                file = self._rust_file(base)
            rest = rest[1:]
        star = imp.kind == "star"
        # Down the module folders; the first segment that is no module names an item of the last one.
        for i, segment in enumerate(rest):
            child = self._rust_file(posixpath.join(base, segment))
            if child is None:
                if file is None or (i == 0 and head not in ("crate", "self", "super")):
                    return []  # another crate's path
                return [Target(file, "*" if star and i == len(rest) - 1 else segment)]
            base, file = posixpath.join(base, segment), child
        if file is None or file == path:
            return []
        return [Target(file, "*" if star else "")]

    # -- Java -----------------------------------------------------------------------------------------
    def _java(self, path: str, imp: Import) -> list[Target]:
        key = imp.module.replace(".", "/")
        if imp.kind == "star":
            folder = self._nearest(path, self._dirs_ending(key))
            if folder is None:
                return []
            return [Target(p, "*") for p in sorted(self.dirs[folder]) if p.endswith(".java")]
        found = self._nearest(path, self._files_ending(f"{key}/{imp.name}.java"))
        if found is not None:
            return [Target(found, imp.name)]
        found = self._nearest(path, self._files_ending(f"{key}.java"))  # import static a.B.member
        return [Target(found, imp.name)] if found else []

    # -- C / C++ ---------------------------------------------------------------------------------------
    def _c(self, path: str, imp: Import) -> list[Target]:
        if imp.alias != "<>":  # "x.h": the including file's folder first
            local = posixpath.normpath(posixpath.join(posixpath.dirname(path), imp.module))
            if local in self.paths:
                return [Target(local, "*")]
        found = self._nearest(path, self._files_ending(posixpath.normpath(imp.module).lstrip("./")))
        return [Target(found, "*")] if found else []
