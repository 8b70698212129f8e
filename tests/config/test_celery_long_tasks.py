"""Issue 15: Celery settings for long GPU tasks, read from the real settings and app."""

import os
import subprocess
import sys

from django.conf import settings

from config.celery import app, gpu_worker_problem
from tests.conftest import REPO


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_TASK_")}
    return {**env, "CROWDDISSECT_DATA_DIR": os.environ.get("CROWDDISSECT_DATA_DIR", "var"), **extra}


def test_no_live_task_outlasts_the_redis_visibility_timeout():
    soft, hard = settings.CELERY_TASK_SOFT_TIME_LIMIT, settings.CELERY_TASK_TIME_LIMIT
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert soft < hard < visibility
    assert app.conf.broker_transport_options["visibility_timeout"] == visibility
    assert app.conf.task_time_limit == hard


def test_the_visibility_timeout_follows_the_hard_limit_it_is_derived_from():
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.CELERY_TASK_TIME_LIMIT, s.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'])")  # fmt: skip
    for limit in (600, 86_400):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
            env=_env(CELERY_TASK_TIME_LIMIT=str(limit), CELERY_TASK_SOFT_TIME_LIMIT="60",
                     DJANGO_SETTINGS_MODULE="config.settings"),
        )  # fmt: skip
        hard, visibility = map(int, out.stdout.split()[-2:])
        assert hard == limit and visibility > limit


def test_a_killed_worker_gives_its_task_back_and_holds_no_second_one():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.worker_cancel_long_running_tasks_on_connection_loss is True


def test_gpu_workers_never_fork_and_use_one_gpu_each():
    gpu = {"queues": ["gpu"], "concurrency": 1, "environ": {}}
    assert gpu_worker_problem(pool="solo", **gpu) is None
    assert gpu_worker_problem(pool="threads", **gpu) is None
    assert gpu_worker_problem(pool="prefork", **gpu).startswith("--pool prefork:")
    assert gpu_worker_problem(pool="threads", **{**gpu, "concurrency": 4}).startswith(
        "--concurrency 4:"
    )
    two = {**gpu, "environ": {"CUDA_VISIBLE_DEVICES": "0,1"}}
    assert gpu_worker_problem(pool="solo", **two).startswith("CUDA_VISIBLE_DEVICES=0,1:")
    one = {**gpu, "environ": {"CUDA_VISIBLE_DEVICES": "1"}}
    assert gpu_worker_problem(pool="solo", **one) is None
    # cpu workers fork as they like.
    assert gpu_worker_problem(pool="prefork", queues=["cpu"], concurrency=8, environ={}) is None


def test_a_forking_gpu_worker_stops_at_start_up_with_one_line(tmp_path):
    # Nothing listens on port 1: the check runs before the worker connects to the broker.
    out = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu", "--loglevel",
         "WARNING"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env=_env(CELERY_BROKER_URL="redis://127.0.0.1:1/0", CROWDDISSECT_DATA_DIR=str(tmp_path)),
    )  # fmt: skip
    assert out.returncode != 0
    assert "celery worker: --pool prefork: a worker on the gpu queue" in out.stderr + out.stdout
