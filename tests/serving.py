"""Run a test HTTP server in a thread, and stop it promptly; GET from one.

``serve_forever`` looks at its shutdown flag once per ``poll_interval`` (0.5 s by
default), and ``shutdown()`` waits for that look: half a second per server per
test, about 40 s a run. Every test server starts here instead.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from socketserver import BaseServer

POLL_INTERVAL = 0.02


def start(httpd: BaseServer) -> threading.Thread:
    """Serve ``httpd`` from a daemon thread until ``stop``."""
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
    )
    thread.start()
    return thread


def stop(httpd: BaseServer) -> None:
    """Stop serving and close the listening socket (within ``POLL_INTERVAL``)."""
    httpd.shutdown()
    httpd.server_close()


def get(url: str) -> tuple[int, str]:
    """Return (status, body) of a GET; (0, "") while nothing answers on the port."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""
