"""The Celery app: queue `gpu` for model work, queue `cpu` for rendering, aggregation and export."""

import os

from celery import Celery, signals
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
        # A campaign's verification sample: a forward pass per layer over the run's images.
        "annotate.crowd.tasks.build_verification": {"queue": "gpu"},
    }
]
# A killed worker's task is redelivered (acked only when it ends, rejected back to the queue when
# its process dies), and a worker holds only the task it runs: model work is long, and a second
# message prefetched behind it would wait for hours while another GPU idles.
app.conf.task_acks_late = True
app.conf.task_reject_on_worker_lost = True
app.conf.worker_prefetch_multiplier = 1
# Lost broker connection: stop the tasks it delivered; they come back (acks late) instead of
# finishing unacknowledged while a second worker runs them again.
app.conf.worker_cancel_long_running_tasks_on_connection_loss = True
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


# GPU workers: pools that never fork after CUDA is initialised, one process per GPU.
CUDA_SAFE_POOLS = ("solo", "threads")
GPU_QUEUE = "gpu"


def gpu_worker_problem(
    *, queues: list[str], pool: str, concurrency: int, environ: dict
) -> str | None:
    """Why this worker must not consume the gpu queue as configured, or None. A forked child of
    a process that initialised CUDA cannot use CUDA, so gpu workers run ``--pool solo`` (or
    threads); one process sees one GPU (``CUDA_VISIBLE_DEVICES``), so N GPUs are N workers."""
    if GPU_QUEUE not in queues:
        return None
    if pool not in CUDA_SAFE_POOLS:
        return (
            f"--pool {pool}: a worker on the gpu queue must not fork after CUDA is initialised; "
            f"start it with --pool solo (one process per GPU, CUDA_VISIBLE_DEVICES=N)"
        )
    if pool == "threads" and concurrency != 1:
        return (
            f"--concurrency {concurrency}: a gpu worker runs one task at a time on its GPU; "
            "start one worker per GPU with CUDA_VISIBLE_DEVICES=N and --concurrency 1"
        )
    devices = [d for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if len(devices) > 1:
        return (
            f"CUDA_VISIBLE_DEVICES={environ['CUDA_VISIBLE_DEVICES']}: one gpu worker process uses "
            "one GPU; start one worker per device (CUDA_VISIBLE_DEVICES=0, =1, ...)"
        )
    return None


def _pool_name(pool_cls) -> str:
    name = getattr(pool_cls, "__module__", "") + "." + getattr(pool_cls, "__name__", "")
    for short in ("solo", "threads", "prefork", "eventlet", "gevent"):
        if short in name.lower():
            return short
    return str(pool_cls)


@signals.worker_init.connect
def _refuse_unsafe_gpu_workers(sender=None, **_kwargs) -> None:
    """A gpu worker with a forking pool or several GPUs stops at start-up with one line."""
    worker = sender
    if worker is None:
        return
    queues = list(worker.app.amqp.queues.consume_from or worker.app.amqp.queues)
    problem = gpu_worker_problem(
        queues=queues, pool=_pool_name(worker.pool_cls), concurrency=int(worker.concurrency or 1),
        environ=dict(os.environ),
    )  # fmt: skip
    if problem:
        raise SystemExit(f"celery worker: {problem}")
    from dissect.artifacts import store_problem

    problem = store_problem()  # the object store must answer before any task is taken
    if problem:
        raise SystemExit(f"celery worker: {problem}")


@signals.worker_process_init.connect
def _no_cuda_before_fork(**_kwargs) -> None:
    """In a forked pool child: the parent must not have initialised CUDA (it would fail here)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError(
            "CUDA was initialised in the worker's parent before it forked this child; run gpu "
            "workers with --pool solo (config/celery.py: gpu_worker_problem)"
        )


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
