from django.apps import AppConfig


class ReportingConfig(AppConfig):
    """Outbound reports: GitHub deployment statuses, missed-delivery recovery, notifications."""

    name = "reporting"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import rollout_adapter

        rollout_adapter.connect()
