"""Request helpers: the type the console's views take (Django's request with django-htmx's
``htmx`` details) and the client's address (for login throttling and the audit trail)."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address. Behind a reverse proxy (WAYMARK_BEHIND_PROXY=1) every request
    comes from the proxy, so take the last X-Forwarded-For entry: the one our proxy appended
    (earlier entries are whatever the client chose to send). Without a proxy the header is
    ignored, since any client can forge it. Anything that is not an IP address is dropped."""
    candidates = [request.META.get("REMOTE_ADDR", "")]
    if settings.WAYMARK_BEHIND_PROXY:
        candidates.insert(0, request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip())
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None
