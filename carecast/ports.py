"""Checking that the ports `carecast dev` needs are free before anything starts."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class PortNeed:
    port: int
    purpose: str
    env_var: str


class PortInUseError(RuntimeError):
    def __init__(self, host: str, need: PortNeed) -> None:
        super().__init__(
            f"port {need.port} on {host} ({need.purpose}) is already in use. "
            f"Stop whatever holds it (e.g. another `carecast dev`), or set {need.env_var} to another port."
        )
        self.need = need


def ensure_free(host: str, needs: list[PortNeed]) -> None:
    """Raises PortInUseError for the first port something already listens on."""
    for need in needs:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, need.port))
            except OSError:
                raise PortInUseError(host, need) from None
