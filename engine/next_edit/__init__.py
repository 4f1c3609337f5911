"""Next-edit prediction: the user's likely next change near the cursor, above or below it.

`history` keeps recent changes per document, `formats` and `sweep` lay out prompts for next-edit
models, `edits` turns the model's rewritten window into document edits, `predictor` runs it all
through a `Backend`: the in-process model, or a server sent the prompt's text. No LSP, no CLI here.
"""

from .edits import TextEdit, Verdict, apply_edits, verdict, window_edits
from .formats import (
    NextEditFormat,
    NextEditRequest,
    Window,
    detect_next_edit_format,
    format_named,
    line_window,
)
from .history import Change, EditHistory
from .predictor import NextEdit, NextEditPredictor
from .sweep import SweepFormat

__all__ = [
    "Change",
    "EditHistory",
    "NextEdit",
    "NextEditFormat",
    "NextEditPredictor",
    "NextEditRequest",
    "SweepFormat",
    "TextEdit",
    "Verdict",
    "Window",
    "apply_edits",
    "detect_next_edit_format",
    "format_named",
    "line_window",
    "verdict",
    "window_edits",
]
