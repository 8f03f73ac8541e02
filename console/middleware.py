"""A friendly 503 page when a database cannot be reached, instead of a stack trace.

The page says nothing about the connection (no host, port, database name, user or driver
message): that would hand an anonymous visitor a map of the infrastructure. The details go to
the server log instead, where operators look."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

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
