from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    """Holds the history of the models that moved to core, crowd and labels (its migrations), and
    the end-to-end demo that composes every layer."""

    name = "annotate"
    verbose_name = "Annotate (history and demo)"
