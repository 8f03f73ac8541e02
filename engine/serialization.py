"""portable_json: how every stored payload (inputs, outputs, errors, messages) is encoded.

The format is the one of the DBOS system tables: compact JSON, inputs wrapped as
``{"positionalArgs": [...], "namedArgs": {...}}``, errors as ``{"name", "message"}`` (plus a
``data`` member we use to rebuild the exception class on replay). Nothing is ever unpickled:
decoding can only produce JSON values, and rebuilding an exception only ever instantiates an
already-imported ``BaseException`` subclass with JSON arguments.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sys
import uuid
from typing import Any

from engine import errors

FORMAT = "portable_json"


def _portable(value: Any) -> Any:
    # The conversions portable_json defines for common non-JSON scalars.
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, ensure_ascii=False, default=_portable
)


DEFAULT_LIMIT = 2 * 1024 * 1024  # bytes: a stored payload larger than this is refused


def dumps(value: Any, what: str, limit: int | None = None) -> str:
    """Encode ``value``; ``what`` names it in the error ("the input of workflow 'x'")."""
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise errors.SerializationError(
            f"{what} is not JSON-serializable ({exc}); pass and return JSON data "
            "(dict, list, str, int, float, bool, None; datetimes and Decimals become strings)"
        ) from None
    if limit is not None and len(text) > limit // 4 and len(text.encode()) > limit:
        raise errors.SerializationError(
            f"{what} is {len(text.encode()):,} bytes, over the {limit:,}-byte limit for a "
            "stored payload; store large data elsewhere and pass a reference to it (or raise "
            "the limit: max_payload_bytes=)"
        )
    return text


def loads(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise errors.SerializationError(f"{what} holds corrupt JSON ({exc})") from None


def encode_inputs(value: Any, what: str, limit: int | None = None) -> str:
    return dumps({"positionalArgs": [value], "namedArgs": {}}, what, limit)


def decode_inputs(text: str | None, what: str) -> Any:
    payload = loads(text, what)
    if payload is None:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("positionalArgs"), list):
        raise errors.SerializationError(
            f"{what} is not in portable_json input form "
            '({"positionalArgs": [...], "namedArgs": {...}})'
        )
    args = payload["positionalArgs"]
    return args[0] if args else None


def unwrap_inputs(text: str | None, what: str) -> Any:
    """The input as a reader should see it: the positional input (a list when a DBOS caller
    passed several), else the named arguments; a payload not in input form as it is."""
    payload = loads(text, what)
    if not isinstance(payload, dict) or not isinstance(payload.get("positionalArgs"), list):
        return payload
    args = payload["positionalArgs"]
    if args:
        return args[0] if len(args) == 1 else args
    named = payload.get("namedArgs")
    return named if named else None


def error_dict(exc: BaseException) -> dict[str, Any]:
    """The stored form of an exception; ``data`` lets a replay rebuild the same class."""
    cls = type(exc)
    stored: dict[str, Any] = {"name": cls.__name__, "message": str(exc)}
    try:
        args = json.loads(_encoder.encode(list(exc.args)))
    except (TypeError, ValueError, RecursionError):
        args = None  # not rebuildable: a replay raises StepError instead
    stored["data"] = {"module": cls.__module__, "qualname": cls.__qualname__, "args": args}
    return stored


def encode_error(exc: BaseException) -> str:
    return _encoder.encode(error_dict(exc))


def public_error(text: str | None, what: str) -> dict[str, str] | None:
    """The ``{"name", "message"}`` shape the API exposes for a stored error."""
    stored = loads(text, what)
    if stored is None:
        return None
    if not isinstance(stored, dict):
        return {"name": "Error", "message": str(stored)}
    return {"name": str(stored.get("name", "Error")), "message": str(stored.get("message", ""))}


def rebuild_error(text: str | None, what: str) -> BaseException:
    """The recorded exception as the same class when it can be rebuilt, else ``StepError``."""
    stored = loads(text, what)
    if not isinstance(stored, dict):
        return errors.StepError("Error", str(stored))
    name, message = str(stored.get("name", "Error")), str(stored.get("message", ""))
    data = stored.get("data") or {}
    cls = _find_exception_class(data.get("module"), data.get("qualname"))
    args = data.get("args")
    if cls is not None and isinstance(args, list):
        try:
            exc = cls(*args)
        except Exception:  # a constructor with another signature: fall through
            pass
        else:
            if str(exc) == message:
                return exc
    return errors.StepError(name, message)


def _find_exception_class(module: Any, qualname: Any) -> type[BaseException] | None:
    # Only classes of modules already imported: a stored row never makes us import code.
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return obj
    return None
