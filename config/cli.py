"""`manage.py` / `crowddissect` entry point: Django's command line with one-line configuration errors."""

import os
import sys


def _one_line(exc: BaseException) -> str | None:
    """The clear message for a configuration or connection problem, or None for other errors."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db import OperationalError as DatabaseError
    from django.db import ProgrammingError

    from config.env import SettingError

    if isinstance(exc, SettingError | ImproperlyConfigured):
        return str(exc)
    if isinstance(exc, DatabaseError | ProgrammingError) and _missing_table(str(exc)):
        first = str(exc).strip().splitlines()[0]
        return (
            f"the database has no tables for this command yet ({first}); "
            "create them with `python manage.py migrate`."
        )
    if isinstance(exc, DatabaseError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"DATABASE_URL: cannot use the database ({first}); check the URL and that the server runs."
    try:
        from kombu.exceptions import OperationalError as BrokerError
    except ImportError:  # pragma: no cover - kombu comes with celery
        return None
    if isinstance(exc, BrokerError):
        return (
            f"CELERY_BROKER_URL: cannot reach the broker ({exc}); check the URL and that it runs."
        )
    return None


def _missing_table(message: str) -> bool:
    """True for SQLite's and PostgreSQL's "this table does not exist" errors."""
    return "no such table" in message or ("relation" in message and "does not exist" in message)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    argv = list(sys.argv if argv is None else argv)
    if len(argv) == 1 or argv[0].endswith("crowddissect"):
        argv[0] = "manage.py"
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(argv)
    except Exception as exc:
        message = _one_line(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
