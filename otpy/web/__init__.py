"""``otpy[web]``: the HTTP API, the live event stream and the dashboard of a runtime.

::

    server = rt.serve(host="127.0.0.1", port=0, token=None)    # or serve(rt, ...)
    print(server.dashboard_url)               # open it: tree, jobs, providers, chat
    server.stop()

See :mod:`otpy.web._server` (the server), :mod:`otpy.web._security` (the token, the
Host check, the body cap) and the API at ``/openapi.json``.
"""

try:  # the extra's packages, named if one is missing
    import fastapi  # noqa: F401
    import sse_starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as missing:  # pragma: no cover - the dev extra installs them
    raise ImportError(f"otpy.web needs pip install 'otpy[web]' ({missing})") from missing

from otpy.web._app import MAX_BODY, create_app
from otpy.web._events import EventHub
from otpy.web._protocol import WebRuntime
from otpy.web._security import is_loopback
from otpy.web._server import Server, serve

__all__ = ["MAX_BODY", "EventHub", "Server", "WebRuntime", "create_app", "is_loopback", "serve"]
