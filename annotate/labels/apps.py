from django.apps import AppConfig


class LabelsConfig(AppConfig):
    name = "annotate.labels"
    label = "labels"
    verbose_name = "Unit labels and reports"

    def ready(self) -> None:
        from annotate.labels import signals

        signals.connect()
