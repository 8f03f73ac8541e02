"""Security headers on every response: a strict Content-Security-Policy, and no caching of
anything a signed-in user sees.

The policy allows scripts, styles and images from the console's own origin only (plus data:
images): no inline <script>, no style="" attributes, no on*= handlers, no eval. An injected
payload that slipped past escaping could therefore not run. The templates keep to it: geometry
that used to be inline styles is applied by static/console.js, and htmx is told (through its
<meta name="htmx-config">) neither to inject its indicator <style> nor to eval.

Cache-Control: private, no-store on every response to an authenticated user (pages, htmx
fragments, CSV exports) and on the login pages, so workflow payloads, audit records and
CSRF-bearing forms never land in a shared or on-disk cache.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", POLICY)
        # request.user is absent when an outer layer answered (static files): nothing private.
        user = getattr(request, "user", None)
        match = request.resolver_match
        on_login_page = match is not None and match.url_name == "login"  # console and /admin/
        if (user is not None and user.is_authenticated) or on_login_page:
            patch_cache_control(response, private=True, no_store=True)
        return response
