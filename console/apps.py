from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Waymark console"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from console import sources

        # A DBOS source's connections check its schema version and get their temp views.
        connection_created.connect(sources.on_connection, dispatch_uid="waymark-sources")
