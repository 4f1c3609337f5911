"""Next-edit prediction: the user's likely next change near the cursor, above or below it.

`history` keeps recent changes per document. No LSP, no CLI here.
"""

from .history import Change, EditHistory

__all__ = ["Change", "EditHistory"]
