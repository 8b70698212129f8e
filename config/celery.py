"""The Celery app: queue `gpu` for model work, queue `cpu` for rendering, aggregation and export."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("crowddissect")
app.config_from_object("django.conf:settings", namespace="CELERY")

app.conf.task_queues = (Queue("cpu"), Queue("gpu"))
app.conf.task_default_queue = "cpu"
# First match wins: rendering and merging are CPU work even though they live in dissect.tasks.
app.conf.task_routes = [
    {
        "dissect.tasks.render_*": {"queue": "cpu"},
        "dissect.tasks.merge_*": {"queue": "cpu"},
        "dissect.tasks.watchdog_*": {"queue": "cpu"},
        "dissect.tasks.*": {"queue": "gpu"},
    }
]
# A killed worker's task is redelivered, and a worker holds only the task it runs (model work is long).
app.conf.task_acks_late = True
app.conf.task_reject_on_worker_lost = True
app.conf.worker_prefetch_multiplier = 1
app.conf.broker_connection_retry_on_startup = True
# The broker's visibility timeout is derived from the task time limit in config/settings.py.
# `celery -A config beat` sweeps the crowd workflow (expired leases return tasks to the pool: they
# already stop counting when they end; the sweep updates their status; due answers get approved)
# and the runs (stalled ones are resumed).
app.conf.beat_schedule = {
    "expire-leases": {"task": "annotate.crowd.tasks.expire_leases", "schedule": 60.0},
    "auto-approve": {"task": "annotate.crowd.tasks.auto_approve", "schedule": 600.0},
    # Runs whose worker died: found, recorded on the run and resumed (dissect.watchdog).
    "watchdog-runs": {"task": "dissect.tasks.watchdog_runs", "schedule": 60.0},
}

app.autodiscover_tasks(["config", "dissect", "annotate.crowd", "annotate.labels"])


def torch_device_name() -> str:
    """'cuda' when this process can use a GPU, else 'cpu' (imports torch: workers only)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _register_control_commands() -> None:
    from celery.worker.control import control_command

    @control_command()
    def torch_device(state):
        """Answer /healthz: which torch device this worker would compute on."""
        return {"device": torch_device_name()}


_register_control_commands()
