"""Database URLs to Django database settings: one rule for DATABASE_URL, WAYMARK_DATABASE_URL
and every WAYMARK_SOURCES entry."""

from __future__ import annotations

from urllib.parse import urlsplit


def database_config(url: str) -> dict[str, object]:
    """A Django DATABASES entry for a database URL (sqlite:///path or postgresql://...)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url.removeprefix("sqlite:///")}
    if parts.scheme in ("postgresql", "postgres"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": parts.username or "",
            "PASSWORD": parts.password or "",
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    raise RuntimeError(f"DATABASE_URL {url!r}: use sqlite:///path or postgresql://...")
