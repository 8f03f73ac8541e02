"""Optional adapters to other systems (Celery)."""
