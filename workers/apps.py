from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Workers and regions"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects Celery and Django signals)
