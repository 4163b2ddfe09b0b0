from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "teams"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (every new user gets a personal team)
