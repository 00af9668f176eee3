"""An adapter module that fails while it is imported (it connects to its model at import time)."""

from __future__ import annotations


def _connect() -> int:
    raise ConnectionRefusedError("the Acme model server at localhost:7000 refused the connection")


MODEL_HANDLE = _connect()  # the mistake: work at import time that can fail


def make() -> int:
    return MODEL_HANDLE
