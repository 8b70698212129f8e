from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "Crowd labeling"

    def ready(self) -> None:
        from annotate.roles import ensure_roles

        # Roles are data the app needs to work; keep them in step with the code after every migrate.
        post_migrate.connect(lambda **kwargs: ensure_roles(), sender=self, weak=False)
