"""No Docker engine runs in CI: check the compose file's shape as far as a parser can."""

import re
from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def load(name: str) -> dict:
    return yaml.safe_load((DOCKER / name).read_text())


def test_compose_has_the_services_queues_health_checks_and_volumes():
    compose = load("compose.yaml")
    services = compose["services"]
    assert set(services) == {"web", "worker-gpu", "worker-cpu", "beat", "postgres", "redis",
                             "seaweedfs", "bucket"}  # fmt: skip
    assert all("healthcheck" in service for name, service in services.items() if name != "bucket")
    assert "-Q gpu --pool solo" in services["worker-gpu"]["command"]
    assert services["worker-gpu"]["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert "-Q cpu" in services["worker-cpu"]["command"]
    assert "gunicorn config.wsgi:application" in services["web"]["command"]
    assert services["beat"]["command"].startswith("celery -A config beat")
    for name in ("web", "worker-gpu", "worker-cpu", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env[
            "CELERY_BROKER_URL"
        ].startswith("redis://")
        # Files in the object store: no app container shares a volume with another.
        assert env["CROWDDISSECT_STORAGE"] == "s3"
        assert env["AWS_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
        assert {"AWS_STORAGE_BUCKET_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
        assert name == "beat" or "volumes" not in services[name]
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["bucket"]["condition"] == (
            "service_completed_successfully"
        )
    assert set(compose["volumes"]) == {"beat", "objects", "postgres", "redis"}


def test_gpu_override_reserves_nvidia_devices_for_the_gpu_worker():
    devices = load("compose.gpu.yaml")["services"]["worker-gpu"]["deploy"]["resources"][
        "reservations"
    ]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_dockerfile_copies_what_the_package_needs():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    for folder in ("config", "dissect", "annotate", "templates", "static"):
        assert re.search(rf"^COPY {folder} ", dockerfile, re.MULTILINE), folder
    example = {
        line.split("=")[0]
        for line in (DOCKER / "env.example").read_text().splitlines()
        if "=" in line
    }
    assert {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "POSTGRES_PASSWORD", "S3_ACCESS_KEY",
            "S3_SECRET_KEY"} <= example  # fmt: skip


def test_beat_schedules_existing_crowd_sweeps():
    from config.celery import app

    app.loader.import_default_modules()
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]
