"""Warnings and notes go through the standard `logging` module, logger "dfkd":

    dfkd: warning: the teacher scores 9.80%, about chance ...      (WARNING)
    dfkd: note: TorchScript teacher ... runs as a black box ...    (INFO)

Unless the application has put its own handler on the "dfkd" logger, they are printed on stderr in
that one-line form (what the CLI shows), and not passed on to the root logger. A notebook or a
pipeline routes them with `logging.getLogger("dfkd").handlers = [its handler]` (and `.propagate =
True` to pass them up), or silences them with `.setLevel(logging.ERROR)`.
"""
from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("dfkd")


class _Stderr(logging.Handler):
    """'dfkd: warning: msg' on whatever sys.stderr is at the time (pytest's capture, a redirect)."""

    def emit(self, record: logging.LogRecord) -> None:
        kind = "note" if record.levelno < logging.WARNING else record.levelname.lower()
        sys.stderr.write(f"dfkd: {kind}: {record.getMessage()}\n")


def _ready() -> logging.Logger:
    if not LOGGER.handlers:  # no handler of the application's: one line on stderr
        LOGGER.addHandler(_Stderr())
        if LOGGER.level == logging.NOTSET:
            LOGGER.setLevel(logging.INFO)
        LOGGER.propagate = False
    return LOGGER


def warn(msg: str) -> None:
    _ready().warning(msg)


def note(msg: str) -> None:
    _ready().info(msg)
