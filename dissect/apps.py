from django.apps import AppConfig


class DissectConfig(AppConfig):
    name = "dissect"
    verbose_name = "Dissection"
