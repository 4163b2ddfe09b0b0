from django.apps import AppConfig


class MonitorsConfig(AppConfig):
    name = "monitors"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (maintenance windows apply on save)
