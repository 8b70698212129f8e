"""Health checks behind /healthz: database, broker, a live worker per queue, torch device, the
file storage (object store), and no stalled run."""

import os
import sys

from django.conf import settings
from django.db import connection

QUEUES = ("gpu", "cpu")


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # any driver error means "down" here
        return {"ok": False, "error": f"DATABASE_URL: {str(exc).strip().splitlines()[0]}"}


def _local_device() -> str:
    """The device of this process without importing torch on a web request."""
    if "torch" in sys.modules:
        return "cuda" if sys.modules["torch"].cuda.is_available() else "cpu"
    return "cuda" if os.path.exists("/dev/nvidiactl") else "cpu"


def check_broker_and_workers(timeout_s: float = 2.0) -> tuple[dict, dict]:
    """(broker, workers): eager mode runs tasks in this process, so both are trivially up."""
    from config.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return (
            {"ok": True, "mode": "eager (tasks run in the web process)"},
            {"ok": True, "mode": "eager", "devices": {"in-process": _local_device()}},
        )
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:
        broker = {"ok": False, "error": f"CELERY_BROKER_URL: cannot reach the broker ({exc})"}
        return broker, {"ok": False, "error": "no broker, so no workers can be asked"}
    broker = {"ok": True, "transport": app.conf.broker_url.split("://")[0]}

    inspect = app.control.inspect(timeout=timeout_s)
    queues_by_worker = inspect.active_queues() or {}
    devices = {}
    replies = app.control.broadcast("torch_device", reply=True, timeout=timeout_s) or []
    for reply in replies:
        for worker, answer in reply.items():
            devices[worker] = (
                answer.get("device", "unknown") if isinstance(answer, dict) else "unknown"
            )
    serving = {
        queue: sorted(
            w for w, qs in queues_by_worker.items() if any(q["name"] == queue for q in qs)
        )
        for queue in QUEUES
    }
    missing = [queue for queue in QUEUES if not serving[queue]]
    workers = {"ok": not missing, "queues": serving, "devices": devices}
    if missing:
        workers["error"] = (
            f"no live worker on queue(s) {', '.join(missing)}: start `celery -A config worker -Q {','.join(missing)}`"
        )
    return broker, workers


def check_runs() -> dict:
    """Runs the watchdog found stalled (no progress within RUN_STALL_SECONDS): not ok while
    any is, so a run whose worker died never leaves /healthz green."""
    from dissect.watchdog import stalled_runs

    try:
        stalled = stalled_runs()
    except Exception as exc:  # noqa: BLE001 - the database check names the cause
        return {"ok": True, "note": f"runs not checked ({type(exc).__name__})"}
    report = {"ok": not stalled, "stalled": stalled}
    if stalled:
        report["error"] = (
            f"{len(stalled)} run(s) stalled ({', '.join(str(r['run']) for r in stalled)}); the "
            "watchdog resumes them; check the workers' logs"
        )
    return report


def check_storage() -> dict:
    """The file storage: local disk, or the object store answering with the bucket."""
    from dissect.artifacts import store_problem

    problem = store_problem()
    if problem:
        return {"ok": False, "kind": settings.STORAGE_KIND, "error": problem}
    return {"ok": True, "kind": settings.STORAGE_KIND}


def health_report() -> dict:
    database = check_database()
    broker, workers = check_broker_and_workers()
    checks = {"database": database, "broker": broker, "workers": workers,
              "storage": check_storage()}  # fmt: skip
    if database["ok"]:
        checks["runs"] = check_runs()
    down = [name for name, check in checks.items() if not check["ok"]]
    return {"ok": not down, "down": down, "checks": checks}
