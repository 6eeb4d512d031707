"""The Wyoming server: a TCP listener on its own event loop in a daemon thread, and its zeroconf announcement."""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import logging
import socket
import threading
from functools import partial

from wyoming.server import AsyncTcpServer

from engine import Engine, RequestComposer

from .handler import StudioEventHandler

log = logging.getLogger(__name__)

SERVICE_NAME = "chatterbox-studio"


class WyomingServer:
    """Wyoming on `host`:`port` over `engine`, each text composed by `composer`; announced by zeroconf when
    `announce` (the studio listens beyond loopback)."""

    def __init__(self, engine: Engine, composer: RequestComposer, host: str, port: int, announce: bool):
        self.engine, self.composer, self.host, self.port, self.announce = engine, composer, host, port, announce

    def start(self) -> None:
        """Listen (an OSError here when the port is taken), announce the service, then serve in the background."""
        loop = asyncio.new_event_loop()
        server = AsyncTcpServer(self.host, self.port)
        loop.run_until_complete(server.start(partial(StudioEventHandler, self.engine, self.composer)))
        loop.run_until_complete(self._announce())
        threading.Thread(target=loop.run_forever, name="wyoming-server", daemon=True).start()
        log.info("Wyoming server on tcp://%s:%s", self.host, self.port)

    async def _announce(self) -> None:
        """Announce `_wyoming._tcp` by zeroconf, so Home Assistant discovers the studio, when asked to and the
        optional zeroconf package is installed."""
        if not self.announce:
            return
        if importlib.util.find_spec("zeroconf") is None:
            log.info("Not announcing the Wyoming server by zeroconf: `pip install zeroconf` to let Home Assistant "
                     "discover it; it can still be added by host and port.")
            return
        from wyoming.zeroconf import HomeAssistantZeroconf

        name = f"{SERVICE_NAME}-{socket.gethostname().split('.')[0]}-{self.port}"  # unique on the network
        try:
            await HomeAssistantZeroconf(self.port, name=name, host=_ipv4_address(self.host)).register_server()
        except Exception as error:  # no multicast, a name taken: discovery is a convenience, serving goes on
            log.warning("Could not announce the Wyoming server by zeroconf (%s); add it by host and port.", error)
            return
        log.info("Wyoming server announced by zeroconf as %s", name)


def _ipv4_address(host: str) -> str | None:
    """`host` when it is one IPv4 address to announce; None (the address zeroconf finds) for 0.0.0.0 or a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return str(address) if address.version == 4 and not address.is_unspecified else None
