from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core.roles import ensure_roles

        # Roles are data the app needs to work; keep them in step with the code after every migrate.
        post_migrate.connect(lambda **kwargs: ensure_roles(), sender=self, weak=False)
