"""One path policy for the language server and the CLI: which root holds a file, its path there,
and whether it is a secret. Plain Python (no pygls, no argparse).

A file is named two ways: as the editor or the command line names it (symbolic links not
followed) and where it really is (links resolved). Roots are resolved (`Indexes.root_for`,
`CodeIndex.root`), so a workspace opened through a link (macOS's /tmp and /var are links) has
its files under the root only once resolved. The index keys files by the resolved path; a secret
is a secret under either name (`settings.py -> .env` is `.env`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from retrieval.files import is_secret


@dataclass(frozen=True)
class Located:
    root: Path | None  # the root holding the file, resolved; None outside every root
    named: str  # as named, relative to the root when it lies under it, else absolute
    target: str  # links resolved, relative to the root when it lies under it, else absolute

    @property
    def path(self) -> str:
        """The path retrieval and prompts use: the index's key when the file is under the root."""
        if self.root is not None and not os.path.isabs(self.target):
            return self.target
        return self.named


def _relative(path: Path, root: Path | None) -> str:
    if root is not None and (path == root or path.is_relative_to(root)):
        return path.relative_to(root).as_posix()
    return path.as_posix()


def locate(file: Path, root: Path | None) -> Located:
    """`file` (absolute) as named and as resolved, relative to `root` (resolved) where it lies under it."""
    named = Path(os.path.abspath(file))
    try:
        target = file.resolve()
    except (OSError, RuntimeError):  # a link loop: the name is all there is
        target = named
    return Located(root, _relative(named, root), _relative(target, root))


def holds_secrets(located: Located, deny: Iterable[str] = (), text: str = "") -> bool:
    """Whether the file must never reach a prompt: its name or its link's target is a secret (or on
    the deny list), or its text holds a private key block."""
    deny = tuple(deny)
    return is_secret(located.named, deny, text) or is_secret(located.target, deny)
