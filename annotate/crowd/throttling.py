"""Submit rate limit per worker (settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['submit']).

One throttle serves the HTML pages, the outside-crowd pages and the API. It keys on the worker, so
local accounts and outside-crowd ids share one rule; the cache is locmem embedded, Redis in production.
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
