"""The Waymark operator console (Django + HTMX). A skeleton for now: settings and a health page."""
