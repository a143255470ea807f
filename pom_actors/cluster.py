"""The `ray start` command line of a POM server: `pom cluster start-head` and `pom cluster join`.

A POM server is a Ray node that offers the `pom_server` resource (the director puts a media
gateway on each and spreads a job's managers over them) and the `zone:<name>` resource of its
zone (a zone's jobs are placed only on its servers). The command is built here, as a plain
function, so that the CLI, the systemd units and `ray_cluster.yaml` start servers the same way
and the tests check it without starting Ray.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import names
from .core.zones import ZoneError, check_name

DEFAULT_PORT = 6379                   # the head's GCS port, Ray's own default
# Options `pom cluster` sets itself: given again after `--` they would contradict it.
OWNED = ("--head", "--address", "--port", "--resources", "--block")
ENV = {
    # Ray starts its worker processes at nice 15 by default; on a POM server they are the server.
    "RAY_worker_niceness": "0",
    # On SIGTERM `ray start --block` first lets its node drain for up to 30 s: POM's actors never
    # finish by themselves, and the director moves a lost server's shards (failover) anyway.
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}
# Ray's token authentication, unless the environment says otherwise: `ray start --head` turns
# it on by itself when the server has a token, `ray start --address` never does, and every
# node of a cluster needs the same mode.
AUTH_MODE = "token"
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\]")


class ClusterError(ValueError):
    """A start refused before anything ran; `field` names the argument at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RayStart:
    argv: list[str]
    env: dict[str, str]                # set over the caller's environment

    def shell(self) -> str:
        """The command as one shell line (what `--dry-run` prints)."""
        import shlex

        return shlex.join([f"{k}={v}" for k, v in self.env.items()] + self.argv)


def head(zone: str | None = None, *, port: int = DEFAULT_PORT, block: bool = False,
         ray_args: Sequence[str] = (), ray: str | None = None, environ: Mapping[str, str] = os.environ) -> RayStart:
    """`ray start --head` for the primary POM server (Ray's control store, and `pom run`)."""
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ClusterError("port", f"a port is 1-65535: {port!r}")
    return _start(["--head", f"--port={port}"], zone, block, ray_args, ray, environ)


def join(address: str, zone: str | None = None, *, block: bool = False,
         ray_args: Sequence[str] = (), ray: str | None = None, environ: Mapping[str, str] = os.environ) -> RayStart:
    """`ray start --address` for a POM server joining the head at `address` (host:port)."""
    return _start([f"--address={check_address(address)}"], zone, block, ray_args, ray, environ)


def check_address(address: str) -> str:
    host, sep, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not sep or not _HOST.fullmatch(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ClusterError("address", f"the head's address is HOST:PORT (e.g. pom1.example.internal:6379): "
                                      f"{address!r}")
    return address


def _start(role: list[str], zone: str | None, block: bool, ray_args: Sequence[str],
           ray: str | None, environ: Mapping[str, str]) -> RayStart:
    if zone is None:           # the server's zone, else the default zone (as `pom run` has it)
        zone = environ.get("POM_ZONE") or environ.get("POM_DEFAULT_ZONE") or names.DEFAULT_ZONE
    try:
        resources = names.server_resources(check_name(zone, "zone"))
    except ZoneError as exc:
        raise ClusterError(exc.field, str(exc)) from None
    for arg in ray_args:
        if arg.split("=", 1)[0] in OWNED:
            raise ClusterError("ray_args", f"{arg.split('=', 1)[0]} is set by pom cluster itself "
                                           f"(it sets {', '.join(OWNED)})")
    argv = [ray or ray_executable(), "start", *role, f"--resources={json.dumps(resources)}",
            *(["--block"] if block else []), *ray_args]
    return RayStart(argv, {**ENV, "RAY_AUTH_MODE": environ.get("RAY_AUTH_MODE") or AUTH_MODE})


def ray_executable() -> str:
    """The `ray` of this installation (beside this Python), else the one on PATH."""
    here = Path(sys.executable).with_name("ray")
    return str(here) if here.exists() else shutil.which("ray") or "ray"
