"""Whether a server can listen on a port: asked before starting one, so a taken port is one
clear message instead of a server that logs "Address already in use" (and may still exit 0)."""

from __future__ import annotations

import socket

from zooflow.errors import UserError


def require_free(host: str, port: int, what: str, remedy: str) -> None:
    """A ``UserError`` naming the port and ``what`` cannot listen there, unless it is free.

    The probe sets SO_REUSEADDR as the servers themselves do (uvicorn, PostgreSQL): a port
    whose last server just stopped keeps closed connections in TIME_WAIT for a minute, and
    those stop a plain bind but not a server; only a socket still listening there does."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UserError(f"port {port} on {host} is taken ({error.strerror}), so {what} cannot listen there: "
                            f"{remedy}") from None
