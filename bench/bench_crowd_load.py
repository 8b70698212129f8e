"""Crowd load bench: simulated annotators against gunicorn + PostgreSQL (not a timed test).

    .venv/bin/python bench/bench_crowd_load.py [--annotators 50] [--submissions 2000]

Creates (and afterwards drops) the database `crowd_bench` on 127.0.0.1:5432, seeds a finished run
with enough units for the submissions (60 tiles per task: 57 top + 3 controls), starts gunicorn on
127.0.0.1, and lets N threads play annotators through the HTML pages: start -> task page -> submit
(a few random "does not fit" marks; 85% of answers also mark the planted controls, which the bench
looks up in the database as a careful person would spot them; when the control check asks to look
again, submit once more) -> next task page. Think time between actions is random (default 1.5-4.5 s) so 50 annotators are 50 people,
not 50 flood loops. Celery goes to a Redis broker on db 13 (no worker consumes it; flushed at the end)
so the numbers are the web tier's. Then it checks in the database: no saved answer lost, no task over
its redundancy, no (worker, unit) pair twice; and prints p50/p95 latencies.
"""

import argparse
import http.client
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
DB_NAME = "crowd_bench"
PG = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/13"


def _args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--redundancy", type=int, default=3)
    parser.add_argument(
        "--think", type=float, nargs=2, default=(1.5, 4.5), metavar=("MIN_S", "MAX_S")
    )
    parser.add_argument(
        "--careful", type=float, default=0.85, help="Share of answers that mark the controls."
    )
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--gunicorn-threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=0, help="Default: a free port on 127.0.0.1.")
    parser.add_argument(
        "--timeout", type=float, default=900, help="Give up after this many seconds."
    )
    parser.add_argument(
        "--keep", action="store_true", help="Keep the database and media afterwards."
    )
    return parser.parse_args()


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qAtc", sql], check=True)


def _setup_env(work: Path) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"{PG}/{DB_NAME}",
        CROWDDISSECT_DATA_DIR=str(work / "data"),
        CROWDDISSECT_MEDIA_ROOT=str(work / "media"),
        CELERY_BROKER_URL=REDIS,
        CROWDDISSECT_SUBMIT_RATE="100000/min",  # the bench measures latency, not the rate limit
        DJANGO_DEBUG="0",
        LOG_LEVEL="WARNING",
    )
    os.environ.update(env)
    return env


def _seed(*, units: int, annotators: int, redundancy: int):
    """A done run, `units` units with 57 top + 3 control tiles each, a live campaign, annotator sessions."""
    import io

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.core.management import call_command
    from django.test import Client
    from PIL import Image as PILImage

    from annotate.crowd import services
    from core.roles import ensure_roles
    from dissect import models as dm

    call_command("migrate", interactive=False, verbosity=0)
    network = dm.Network.objects.create(name="bench-net", arch="alexnet")
    image_set = dm.ImageSet.objects.create(name="bench-images", root="/tmp")
    images = dm.Image.objects.bulk_create(
        [dm.Image(image_set=image_set, path=f"{i:03d}.jpg") for i in range(60)]
    )
    run = dm.DissectionRun.objects.create(
        network=network, image_set=image_set, layers=["conv5"], status=dm.DissectionRun.Status.DONE
    )
    layer = dm.Layer.objects.create(run=run, name="conv5", unit_count=units)
    tile_paths = []
    for i in range(60):  # 60 real tile files shared by every unit: the bench is about the web tier
        buffer = io.BytesIO()
        PILImage.new("RGB", (112, 112), (i * 4 % 256, 255 - i * 4 % 256, 90)).save(buffer, "JPEG")
        tile_paths.append(
            default_storage.save(f"bench/tile-{i:02d}.jpg", ContentFile(buffer.getvalue()))
        )
    unit_rows = dm.Unit.objects.bulk_create([dm.Unit(layer=layer, index=u) for u in range(units)])
    unit_images = []
    for unit in unit_rows:
        for rank in range(57):
            unit_images.append(
                dm.UnitImage(
                    unit=unit,
                    image=images[rank],
                    kind="top",
                    rank=rank,
                    score=1.0,
                    tile_path=tile_paths[rank],
                )
            )
        for rank in range(3):
            unit_images.append(
                dm.UnitImage(
                    unit=unit,
                    image=images[57 + rank],
                    kind="control",
                    rank=rank,
                    score=0.0,
                    tile_path=tile_paths[57 + rank],
                )
            )
    dm.UnitImage.objects.bulk_create(unit_images, batch_size=5000)
    campaign = services.campaign_create(
        run=run, layers=["conv5"], redundancy=redundancy, name="Load bench"
    )
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    ensure_roles()
    group = Group.objects.get(name="annotator")
    User = get_user_model()
    sessions = []
    for i in range(annotators):
        user = User.objects.create(username=f"bench{i:03d}")
        user.set_unusable_password()
        user.save()
        user.groups.add(group)
        client = Client()
        client.force_login(user)
        sessions.append(client.cookies["sessionid"].value)
    return campaign.pk, sessions


class Annotator(threading.Thread):
    """One simulated person: a keep-alive connection, a session cookie, think time between actions."""

    def __init__(self, *, port, session, campaign, quota, think, careful, results):
        super().__init__(daemon=True)
        self.careful = careful
        self.port, self.session, self.campaign, self.quota, self.think = (
            port,
            session,
            campaign,
            quota,
            think,
        )
        self.results = results
        self.cookies = {"sessionid": session}
        self.conn = None

    def _request(self, method, path, body=None):
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Host": "127.0.0.1",
        }
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://127.0.0.1:{self.port}{path}"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            started = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                text = response.read().decode("utf-8", "replace")
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name] = rest.split(";", 1)[0]
            return response.status, response.getheader("Location"), text, elapsed_ms
        raise RuntimeError("unreachable")

    def _pause(self):
        time.sleep(random.uniform(*self.think))

    def run(self):
        try:
            self._work()
        except Exception as error:  # noqa: BLE001 - the bench reports every failure
            self.results["errors"].append(repr(error))
        finally:
            from django.db import connection

            connection.close()

    def _work(self):
        status, location, html, _ = self._request("GET", "/tasks/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        if status != 200 or not token:
            self.results["errors"].append(f"home page {status} {location or ''}")
            return
        body = urlencode({"csrfmiddlewaretoken": token[1]})
        status, location, _, _ = self._request(
            "POST", f"/tasks/campaigns/{self.campaign}/start/", body
        )
        if status != 302:
            self.results["errors"].append(f"start {status}")
            return
        while location and "/tasks/assignments/" in location and self.quota.take():
            status, _, html, ms = self._request("GET", location)
            if status != 200:
                self.results["errors"].append(f"task page {status}")
                return
            self.results["page_ms"].append(ms)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]
            tiles = len(re.findall(r'class="tile-box"', html))
            self._pause()
            form = [
                ("csrfmiddlewaretoken", token),
                ("concept", random.choice(["tree", "sky", "car", "red"])),
                ("category", random.choice(["object", "region", "color"])),
                ("active_seconds", "3.0"),
            ]
            assignment = int(re.search(r"/tasks/assignments/(\d+)/", location)[1])
            flagged = set(random.sample(range(tiles), random.randint(0, 3)))
            if random.random() < self.careful:
                # A careful person spots the planted controls (the bench peeks in the database to
                # play one; the page itself never says which tiles they are).
                flagged |= set(_control_positions(assignment))
            form += [("flagged", str(p)) for p in sorted(flagged)]
            for _ in range(2):  # the control check may ask once to look again
                status, next_location, html, ms = self._request("POST", location, urlencode(form))
                self.results["submit_ms"].append(ms)
                if status == 302:
                    self.results["saved"].append(assignment)
                    break
                if status != 200 or "Please look again" not in html:
                    self.results["errors"].append(f"submit {status}")
                    self.quota.give_back()
                    return
            else:
                self.results["errors"].append("submit not saved after the control check")
                return
            location = next_location
            self._pause()
        if location and "/tasks/assignments/" in location:
            # Quota reached while holding a lease: hand it back so the pool is tidy.
            html = self._request("GET", location)[2]
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
            if token:
                self._request(
                    "POST", location + "return/", urlencode({"csrfmiddlewaretoken": token[1]})
                )


def _control_positions(assignment_id: int) -> list[int]:
    from annotate.crowd.models import Assignment
    from dissect.models import UnitImage

    order = Assignment.objects.select_related("task").get(pk=assignment_id).task.tile_order
    controls = set(
        UnitImage.objects.filter(pk__in=order, kind="control").values_list("pk", flat=True)
    )
    return [p for p, pk in enumerate(order) if pk in controls]


class Quota:
    """The shared budget of submissions (stop at exactly N saved answers across all threads)."""

    def __init__(self, n):
        self.left, self.lock = n, threading.Lock()

    def take(self):
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def give_back(self):
        with self.lock:
            self.left += 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(server: subprocess.Popen, port: int) -> None:
    """Until our gunicorn answers the login page (and is still ours: it did not die on a taken port)."""
    for _ in range(150):
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode} (port {port} taken?)")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer on 127.0.0.1:{port}")


def _pct(values, q):
    values = sorted(values)
    return (
        values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]
        if values
        else float("nan")
    )


def _check(*, redundancy: int):
    from django.db.models import Count

    from annotate.crowd.models import Answer, Assignment

    A = Assignment.Status
    return {
        "answers": Answer.objects.count(),
        "submitted_ids": set(Assignment.objects.filter(status=A.SUBMITTED).values_list("pk", flat=True)),
        "over_assigned": Assignment.objects.filter(status__in=[A.SUBMITTED, A.APPROVED, A.LEASED])
        .values("task").annotate(n=Count("pk")).filter(n__gt=redundancy).count(),
        "duplicate_pairs": Assignment.objects.values("worker", "task__unit").annotate(n=Count("pk"))
        .filter(n__gt=1).count(),
    }  # fmt: skip


def main() -> int:
    args = _args()
    work = Path(tempfile.mkdtemp(prefix="crowd-bench-"))
    env = _setup_env(work)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    _psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
    _psql(f"CREATE DATABASE {DB_NAME}")
    gunicorn = None
    args.port = args.port or _free_port()
    try:
        units = -(-args.submissions // args.redundancy) + 10
        started = time.perf_counter()
        campaign, sessions = _seed(
            units=units, annotators=args.annotators, redundancy=args.redundancy
        )
        print(
            f"seeded {units} units x 60 tiles, {args.annotators} annotators in {time.perf_counter() - started:.1f}s"
        )
        gunicorn = subprocess.Popen(
            [str(REPO / ".venv/bin/gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{args.port}",
             "-k", "gthread", "-w", str(args.gunicorn_workers), "--threads", str(args.gunicorn_threads),
             "--log-level", "warning"],
            cwd=REPO, env=env,
        )  # fmt: skip
        _wait_for(gunicorn, args.port)
        results = {"page_ms": [], "submit_ms": [], "saved": [], "errors": []}
        quota = Quota(args.submissions)
        threads = [
            Annotator(
                port=args.port,
                session=s,
                campaign=campaign,
                quota=quota,
                think=args.think,
                careful=args.careful,
                results=results,
            )
            for s in sessions
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(1.0, args.timeout - (time.perf_counter() - started)))
        wall = time.perf_counter() - started
        check = _check(redundancy=args.redundancy)
        saved = set(results["saved"])
        lost = len(saved - check["submitted_ids"])
        print(
            f"\n{args.annotators} annotators, {len(results['saved'])} submissions saved in {wall:.1f}s "
            f"({len(results['saved']) / wall:.1f}/s), gunicorn {args.gunicorn_workers}x{args.gunicorn_threads} gthread"
        )
        print(
            f"  lost answers:          {lost} (client saw {len(saved)} saved, database has {check['answers']})"
        )
        print(f"  over-assigned tasks:   {check['over_assigned']}")
        print(f"  duplicate worker/unit: {check['duplicate_pairs']}")
        print(f"  errors:                {len(results['errors'])} {results['errors'][:5]}")
        for name, values in (
            ("task page load", results["page_ms"]),
            ("submit", results["submit_ms"]),
        ):
            print(
                f"  {name:<15} n={len(values):5d}  p50={_pct(values, 50):6.1f} ms  p95={_pct(values, 95):6.1f} ms"
                f"  max={max(values, default=float('nan')):6.1f} ms  mean={statistics.fmean(values) if values else 0:6.1f} ms"
            )
        ok = (
            len(saved) == args.submissions
            and lost == 0
            and check["over_assigned"] == 0
            and check["duplicate_pairs"] == 0
            and not results["errors"]
        )
        print("  verdict: " + ("OK" if ok else "PROBLEMS (see above)"))
        return 0 if ok else 1
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        subprocess.run(["redis-cli", "-n", "13", "FLUSHDB"], capture_output=True)
        if not args.keep:
            _psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
