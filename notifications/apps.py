from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from monitors.announcements import announced

        from .services import write_outbox

        # Monitors announce; the outbox listens (monitors never import us).
        announced.connect(write_outbox, dispatch_uid="notifications.write_outbox")
