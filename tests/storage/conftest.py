"""The storage tests reuse the pipeline's tiny images and seeded network, and can cut the link to
the real object store (SeaweedFS) and restore it."""

import select
import socket
import socketserver
import threading
from urllib.parse import urlsplit

import pytest

from tests.dissect.pipeline.conftest import (  # noqa: F401 - fixtures
    image_folder,
    image_set,
    tiny_checkpoint,
    tiny_network,
)


class StoreLink:
    """A TCP link on its own port to the real store: ``cut()`` closes it (open connections
    dropped, new ones refused: the store is gone for this host), ``restore()`` opens it again on
    the same port. Only bytes pass through; every answer is SeaweedFS'."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        link = self

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self):
                upstream = socket.create_connection(link.target)
                with link._lock:
                    link._open.update((self.request, upstream))
                try:
                    pair = {self.request: upstream, upstream: self.request}
                    while True:
                        ready, _, _ = select.select(list(pair), [], [], 1.0)
                        for sock in ready:
                            data = sock.recv(65536)
                            if not data:
                                return
                            pair[sock].sendall(data)
                except OSError:
                    return
                finally:
                    with link._lock:
                        link._open.discard(self.request)
                        link._open.discard(upstream)
                    upstream.close()

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Pipe)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def cut(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with self._lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def store_link(object_store):
    """A ``StoreLink`` to the session's SeaweedFS, open; closed after the test."""
    parts = urlsplit(object_store.endpoint)
    link = StoreLink((parts.hostname, parts.port))
    link.restore()
    yield link
    link.cut()
