from django.apps import AppConfig


class ExplainConfig(AppConfig):
    name = "annotate.explain"
    label = "explain"
    verbose_name = "Explain images"
