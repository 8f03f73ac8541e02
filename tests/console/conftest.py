"""Django for the console tests: set up before any console test module imports it."""

from __future__ import annotations

import tests.console.console_site  # noqa: F401  (django.setup(), the console's tables migrated)
