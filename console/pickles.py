"""A restricted decoder for pickled payloads (dbos-py's default ``py_pickle`` serialization).

Unpickling runs code chosen by whoever wrote the bytes (``__reduce__`` names any callable), so
the console never calls ``pickle.loads``. With ``WAYMARK_DECODE_PICKLES=1`` an operator may opt
in to this decoder: plain builtin values (None, bool, int, float, str, bytes, list, tuple, dict)
need no class lookup at all, and ``find_class`` answers only for a few builtin container types;
every other global (an application class, ``os.system``, ``builtins.eval``) is refused before
anything is called, and the refusal names it.
"""

from __future__ import annotations

import base64
import binascii
import io
import pickle
from typing import Any

# The only globals a pickle may name: builtin containers with no behaviour of their own.
# Protocols 0-2 spell the module "__builtin__" (Python 2's name).
ALLOWED = frozenset(
    (module, name)
    for module in ("builtins", "__builtin__")
    for name in ("set", "frozenset", "bytearray", "complex", "range", "slice")
)
MAX_BYTES = 256 * 1024  # larger pickles are not decoded (the page says so)


class PickleRefusedError(ValueError):
    """The pickle names a global outside the allowlist, is too large, or is malformed."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise PickleRefusedError(
            f"refused to load {module}.{name}: only plain builtin values are decoded"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefusedError(
            "refused a persistent reference: only plain builtin values are decoded"
        )


def raw_bytes(text: str) -> bytes:
    """The pickle inside a base64 payload (raises PickleRefusedError when it is not base64)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PickleRefusedError(f"not a base64 pickle: {exc}") from None


def decode(text: str) -> Any:
    """The value of a base64 pickle, built from builtin types only; PickleRefusedError otherwise."""
    data = raw_bytes(text)
    if len(data) > MAX_BYTES:
        raise PickleRefusedError(f"not decoded: {len(data):,} bytes is over {MAX_BYTES:,}")
    try:
        return _Restricted(io.BytesIO(data)).load()
    except PickleRefusedError:
        raise
    except Exception as exc:  # a malformed pickle raises anything from EOFError to KeyError
        raise PickleRefusedError(f"not a readable pickle: {type(exc).__name__}") from None
