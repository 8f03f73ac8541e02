"""Pickled payloads (dbos-py's py_pickle) are never unpickled except by the restricted decoder."""

from __future__ import annotations

import base64
import collections
import json
import os
import pickle
from datetime import datetime
from pathlib import Path

import pytest
from django.test import override_settings

from console import pickles
from console.payloads import Payload


class _Exploit:
    """A pickle that runs a shell command when loaded with pickle.loads."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _b64(value: object) -> str:
    return base64.b64encode(pickle.dumps(value)).decode()


def _payload(text: str, fmt: str | None = "py_pickle") -> Payload:
    return Payload(text, len(text), fmt)


def test_builtin_values_decode_through_the_restricted_unpickler() -> None:
    value = {"a": [1, 2.5, None, True], "b": ("x", b"y"), "c": {1, 2}, "d": frozenset({3})}
    assert pickles.decode(_b64(value)) == value
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        text = base64.b64encode(pickle.dumps({"s": {1}}, protocol=protocol)).decode()
        assert pickles.decode(text) == {"s": {1}}


def test_a_malicious_pickle_is_refused_and_never_executes(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = _b64(_Exploit(marker))
    with pytest.raises(pickles.PickleRefusedError, match=r"(os|posix)\.system"):
        pickles.decode(text)
    assert not marker.exists()
    with override_settings(WAYMARK_DECODE_PICKLES=True):
        shown = _payload(text).pretty()
        assert "not decoded: refused to load" in shown and "system" in shown
        name, message = _payload(text).error()
        assert name == "pickled Python exception" and "refused" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "value",
    [ValueError("boom"), collections.OrderedDict(a=1), datetime(2026, 1, 1), print, Path("/etc")],
)
def test_classes_and_callables_outside_the_allowlist_are_refused(value: object) -> None:
    try:
        text = _b64(value)
    except (pickle.PicklingError, TypeError, AttributeError):
        pytest.skip("not picklable in the first place")
    with pytest.raises(pickles.PickleRefusedError, match="refused to load"):
        pickles.decode(text)


def test_garbage_and_oversized_pickles_are_refused() -> None:
    with pytest.raises(pickles.PickleRefusedError):
        pickles.decode("not base64!")
    with pytest.raises(pickles.PickleRefusedError):
        pickles.decode(base64.b64encode(b"\x80\x05garbage").decode())
    with pytest.raises(pickles.PickleRefusedError, match="over"):
        pickles.decode(_b64("x" * (pickles.MAX_BYTES + 1)))


def test_pickled_payloads_show_a_summary_unless_decoding_is_enabled() -> None:
    text = _b64({"order": 7})
    nbytes = len(base64.b64decode(text))
    with override_settings(WAYMARK_DECODE_PICKLES=False):
        assert _payload(text).pretty().startswith(f"pickled Python object ({nbytes:,} bytes)")
        assert "order" not in _payload(text).pretty()
        assert "order" not in _payload(text).preview()
    with override_settings(WAYMARK_DECODE_PICKLES=True):
        assert "{'order': 7}" in _payload(text).pretty()


def test_portable_json_and_go_json_render_as_json() -> None:
    assert json.loads(_payload('{"a": 1}', "portable_json").pretty()) == {"a": 1}
    go = base64.b64encode(json.dumps({"id": "x", "n": [1, 2]}).encode()).decode()
    assert json.loads(_payload(go, "DBOS_JSON").pretty()) == {"id": "x", "n": [1, 2]}
    assert _payload(go, "DBOS_JSON").preview() == '{"id": "x", "n": [1, 2]}'
    # portable_json is never base64-decoded: shown as stored
    assert _payload(go, "portable_json").pretty() == go
    err = base64.b64encode(json.dumps({"name": "KeyError", "message": "k"}).encode()).decode()
    assert _payload(err, "DBOS_JSON").error() == ("KeyError", "k")
