"""Login throttling: django-axes counts failed sign-ins (console login and /admin/ alike, both
go through `authenticate`) per client address and per username, separately.

Five failures lock that address, and that username, for 15 minutes (settings.AXES_*). Keying
on the username alone would let anyone lock an account out; keying on the address alone would
let a botnet guess one password per address. Both together cost an attacker the most, and an
admin lifts a lockout early in /admin/ (Axes > Access attempts: delete) or with
`manage.py axes_reset_username NAME` / `axes_reset_ip ADDRESS`.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """The address to count failures against. Behind a reverse proxy (WAYMARK_BEHIND_PROXY=1)
    every request comes from the proxy, so take the last X-Forwarded-For entry: the one our
    proxy appended (earlier entries are whatever the client chose to send). Without a proxy
    the header is ignored, since any client can forge it."""
    if settings.WAYMARK_BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")
