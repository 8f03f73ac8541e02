"""A friendly 503 page when a database cannot be reached, instead of a stack trace.

The page says nothing about the connection (no host, port, database name, user or driver
message): that would hand an anonymous visitor a map of the infrastructure. The details go to
the server log instead, where operators look."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import quote

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import escape

from console import sources
from engine import SystemDatabaseUnavailableError

log = logging.getLogger("waymark.console")


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, OperationalError | InterfaceError | SystemDatabaseUnavailableError):
            return None
        log.error(
            "database unavailable while serving %s: %s",
            request.path,
            exc,
            extra={"action": "console.db_unavailable"},
        )
        response = render(request, "503.html", status=503)
        response["Retry-After"] = "10"
        return response


class SourceMiddleware:
    """Resolve ``?source=NAME`` into ``request.source`` and the router's contextvar, for every
    page and action; an unknown source is a 400, a DBOS database this console cannot read a
    409 that says why. On another source, local links in HTML (and redirects) keep
    ``source=NAME``, so the whole console stays on the source the operator picked."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            source = sources.named(request.GET.get("source", ""))
        except sources.SourceError as exc:
            context = {"reason": str(exc), "source_refused": True}
            return render(request, "400.html", context, status=400)
        request.source = source  # type: ignore[attr-defined]
        token = sources.activate(source)
        try:
            response = self.get_response(request)
        finally:
            sources.deactivate(token)
        if source.name:
            keep_source(response, source.name)
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, sources.SourceError):
            return None
        log.warning("source refused: %s", exc, extra={"action": "console.source_refused"})
        return render(request, "400.html", {"reason": str(exc), "source_refused": True}, status=409)


_LOCAL_LINK = re.compile(
    r'((?:href|action|hx-get|hx-post|hx-push-url)=")(/(?!/|static/)[^"]*|\?[^"]*)(")'
)
# A GET form replaces its action's query with its fields: it carries the source in a field.
_GET_FORM = re.compile(r'<form\b(?![^>]*method="post")(?![^>]*source-switch)[^>]*>', re.I)


def with_source(url: str, name: str) -> str:
    """``url`` (a local path, maybe with a query, HTML-escaped or not) with source=NAME."""
    if not name or re.search(r"[?&;]source=", url):
        return url
    path, hash_, fragment = url.partition("#")
    amp = "&amp;" if "&amp;" in path else "&"
    joined = f"{path}{amp if '?' in path else '?'}source={quote(name)}"
    return joined + hash_ + fragment


def keep_source(response: HttpResponse, name: str) -> None:
    location = response.get("Location")
    if location and location.startswith("/"):
        response["Location"] = with_source(location, name)
    if response.streaming or "text/html" not in response.get("Content-Type", ""):
        return
    text = response.content.decode(response.charset or "utf-8")
    text = _LOCAL_LINK.sub(lambda m: m[1] + with_source(m[2], name) + m[3], text)
    field = f'<input type="hidden" name="source" value="{escape(name)}">'
    text = _GET_FORM.sub(lambda m: m[0] + field, text)
    response.content = text.encode(response.charset or "utf-8")


def source_context(request: HttpRequest) -> dict[str, object]:
    """The switcher in the header: the sources and the one this page reads."""
    current = getattr(request, "source", None) or sources.default()
    return {
        "source": current,
        "source_choices": sources.choices() if sources.listed() else [],
    }
