"""Rate limits (settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']); the cache is locmem embedded,
Redis in production.

- ``submit``: answers per worker. One throttle serves the HTML pages, the outside-crowd pages and
  the API. It keys on the worker, so local accounts and outside-crowd ids share one rule.
- ``external_entry``: requests per client IP to the outside-crowd doors (``/mturk/campaigns/ID/``,
  ``/tasks/link/ID/``), which create a worker and a lease for any worker id without a login.
- ``external_lease``: new leases per outside-crowd worker id (across campaigns).

The per-campaign cap on leases from those doors lives in ``services.assignment_for_external``.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from annotate.crowd.models import Worker


class SubmitThrottle(SimpleRateThrottle):
    scope = "submit"

    def __init__(self, *, worker_id: int):
        super().__init__()
        self.worker_id = worker_id

    def get_rate(self) -> str | None:
        # Read at use time (DRF reads its class attribute once at import): tests and benches can tune it.
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope)

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": f"worker-{self.worker_id}"}


def submit_wait_seconds(*, request, worker: Worker) -> float | None:
    """None when the worker may submit now; otherwise seconds to wait."""
    throttle = SubmitThrottle(worker_id=worker.pk)
    if throttle.allow_request(request, None):
        return None
    return throttle.wait() or 1.0


DEFAULT_RATES = {"external_entry": "30/min", "external_lease": "60/hour"}


class _ConfiguredRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope, DEFAULT_RATES.get(self.scope))


class ExternalEntryThrottle(_ConfiguredRateThrottle):
    """Outside-crowd door requests per client IP (REMOTE_ADDR, or X-Forwarded-For behind the
    number of proxies REST_FRAMEWORK['NUM_PROXIES'] names)."""

    scope = "external_entry"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": f"ip-{self.get_ident(request)}"}


class ExternalLeaseThrottle(_ConfiguredRateThrottle):
    scope = "external_lease"

    def __init__(self, *, worker_id: int):
        super().__init__()
        self.worker_id = worker_id

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": f"worker-{self.worker_id}"}


def external_entry_wait_seconds(*, request) -> float | None:
    """None when this client may enter an outside-crowd door now; otherwise seconds to wait."""
    throttle = ExternalEntryThrottle()
    if throttle.allow_request(request, None):
        return None
    return throttle.wait() or 1.0


def external_lease_wait_seconds(*, worker: Worker) -> float | None:
    """None when this outside-crowd worker may take a new lease now; otherwise seconds to wait."""
    throttle = ExternalLeaseThrottle(worker_id=worker.pk)
    if throttle.allow_request(None, None):
        return None
    return throttle.wait() or 1.0
