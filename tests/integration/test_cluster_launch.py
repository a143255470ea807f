"""Launching POM across servers the documented ways (docs/operations.md, "Several POM servers").

* `ray_cluster.yaml` goes through Ray's own preparation and validation, the one `ray up` runs
  (`_bootstrap_config`: the local provider's defaults, the JSON schema, the provider's
  bootstrap), with its placeholders as shipped; its start commands, run by the shell as the
  launcher runs them (with `--dry-run`), start Ray with the POM server's resources.
* A real multi-process cluster on this machine: `pom cluster start-head` and `pom cluster join`
  as separate processes (`--block`, as the systemd units run them), then `pom run` joined to it
  with `POM_RAY_ADDRESS`: its demo job's managers land on the two servers, both servers'
  gateways dial, and the job completes. The cluster has its own port, temporary directories and
  authentication token, so the session's own Ray instance is not touched; every process the
  test started is stopped by pid at the end, whatever happened.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml

from pom_actors import names

from .ports import free_port
from .processes import Recorded

ROOT = Path(__file__).resolve().parents[2]
POM = str(Path(sys.executable).with_name("pom"))
CLOCK_START = "2026-11-25T15:00:00+00:00"      # a Wednesday: the demo's time zones are in their window


def test_ray_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.commands import _bootstrap_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    resolved = _bootstrap_config(config, no_config_cache=True)      # raises on an invalid config
    node_type = resolved["available_node_types"][resolved["head_node_type"]]
    assert node_type["min_workers"] == node_type["max_workers"] == len(config["provider"]["worker_ips"]) == 2
    assert resolved["provider"]["head_ip"] == "POM_HEAD_HOST"         # the placeholders survive as text
    assert resolved["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert any("pip install --quiet -e ~/pom" in c for c in resolved["setup_commands"])
    with pytest.raises(jsonschema.ValidationError):                   # the validation is real
        _bootstrap_config({**config, "head_start_commands": []}, no_config_cache=True)


@pytest.mark.parametrize("role, env_file", [("head", None), ("worker", None), ("worker", "POM_ZONE=east\n")])
def test_ray_cluster_yaml_starts_pom_servers(role, env_file, tmp_path):
    """The start command as the launcher runs it on a node (a shell, RAY_HEAD_IP set), with
    the project's own `pom` and `--dry-run`: the `ray start` it would run; the node's
    /etc/pom/pom.env (here a file of the test's in its place) gives its zone."""
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    *before, start = config[f"{role}_start_ray_commands"]
    assert before == ["~/pom/.venv/bin/ray stop"]
    action = "start-head" if role == "head" else "join"
    line = start.replace(f"~/pom/.venv/bin/pom cluster {action}", f"{POM} cluster {action} --dry-run")
    assert line != start and "/etc/pom/pom.env" in line
    if env_file:
        (tmp_path / "pom.env").write_text(env_file)
        line = line.replace("/etc/pom/pom.env", str(tmp_path / "pom.env"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POM_", "RAY_"))}
    out = subprocess.run(["bash", "-c", line], env={**env, "RAY_HEAD_IP": "10.0.0.1"}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    words = shlex.split(out.stdout)
    assert words[:3] == ["RAY_worker_niceness=0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0", "RAY_AUTH_MODE=token"]
    assert words[4:6] == (["start", "--head"] if role == "head" else ["start", "--address=10.0.0.1:6379"])
    [resources] = [json.loads(w.split("=", 1)[1]) for w in words if w.startswith("--resources=")]
    assert resources == names.server_resources("east" if env_file else names.DEFAULT_ZONE)
    if role == "head":
        assert words[-1] == "--autoscaling-config=~/ray_bootstrap_config.yaml"


# -- a real cluster of two `ray start` processes ------------------------------------------------
# Run in a process of its own (this one may be connected to the session's Ray): the job's
# managers and each server's gateway, by node, and the POM servers with their resources.
PROBE = r"""
import json, sys, ray
from pom_actors import names
ray.init(address=sys.argv[1], namespace=names.NAMESPACE, logging_level="ERROR", log_to_driver=False)
job = int(sys.argv[2])
node = lambda h: ray.get(h.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()), timeout=30)
managers = {n: node(h) for n in ray.util.list_named_actors() if n.startswith(names.manager_name(job, 0)[:-1])
            and (h := names.actor(n))}
orders = {n: len(ray.get(h.order_ids.remote(), timeout=30)) for n, h in names.gateways(True).items()}
servers = {n["NodeID"]: {r: v for r, v in n["Resources"].items() if r == names.SERVER_RESOURCE or r.startswith("zone:")}
           for n in ray.nodes() if n["Alive"]}
print(json.dumps({"managers": managers, "orders": orders, "servers": servers}))
"""


class Processes:
    """The processes this test starts, each in a session of its own; all they start is
    recorded so that only those are ever killed."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.recorded = Recorded()

    def start(self, name: str, argv: list[str], **env) -> subprocess.Popen:
        out = open(self.root / f"{name}.out", "w")
        proc = subprocess.Popen(argv, env={**self.env, **env}, cwd=self.root, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        self.record()
        return proc

    def output(self, name: str) -> str:
        return (self.root / f"{name}.out").read_text(errors="replace")[-3000:]

    def record(self) -> None:
        for proc in self.procs.values():
            self.recorded.add_tree(proc.pid)

    def stop(self, which: tuple[str, ...], timeout: float) -> dict[str, int | None]:
        """SIGTERM to each process at once (what systemd sends), then their exit codes (None:
        still up)."""
        self.record()
        for name in which:
            if self.procs[name].poll() is None:
                self.procs[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes = {}
        for name in which:
            try:
                codes[name] = self.procs[name].wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[name] = None
        return codes

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.recorded.kill()


def _until(predicate, timeout: float, what: str, procs: Processes, watch: tuple[str, ...]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in watch:
            code = procs.procs[name].poll()
            assert code is None, f"{name} exited {code} while waiting for {what}:\n{procs.output(name)}"
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:g} s\n" + "\n".join(
        f"--- {n}:\n{procs.output(n)}" for n in watch))


@pytest.fixture
def procs():
    root = Path(tempfile.mkdtemp(prefix="pomc-"))       # short: Ray's socket paths live under it
    os.chmod(root, 0o755)                               # the embedded server runs as its own user
    token = root / "ray-token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POM_", "RAY_"))}
    env.update(RAY_AUTH_TOKEN_PATH=str(token), PYTHONUNBUFFERED="1")
    running = Processes(root, env)
    try:
        yield running
    finally:
        running.kill_all()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(300)
def test_two_servers_started_with_pom_cluster_run_a_job_across_both(procs):
    root, port = procs.root, free_port()
    address = f"127.0.0.1:{port}"
    # Loopback, and every port Ray would otherwise take a fixed default for picked anew.
    local = ["--node-ip-address=127.0.0.1", "--num-cpus=2", "--dashboard-agent-listen-port=0"]
    t0 = time.monotonic()
    procs.start("head", [POM, "cluster", "start-head", "--port", str(port), "--block", "--",
                         *local, f"--temp-dir={root}/ray-head", "--include-dashboard=false",
                         f"--ray-client-server-port={free_port()}"])
    _until(lambda: _listening(port), 60, "the head's GCS", procs, ("head",))
    procs.start("worker", [POM, "cluster", "join", address, "--block", "--", *local, f"--temp-dir={root}/ray-worker"])

    data = root / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    http = free_port()
    procs.start("pom", [POM, "run"], POM_RAY_ADDRESS=address, RAY_AUTH_MODE="token", POM_DATA_DIR=str(data),
                POM_HTTP_PORT=str(http), POM_DEMO="1", POM_DEMO_CONTACTS="300", POM_CLOCK_SCALE="10000",
                POM_CLOCK_START=CLOCK_START, POM_KAFKA="0", POM_LOG_LEVEL="WARNING")
    live = ("head", "worker", "pom")

    def job() -> dict | None:
        try:
            token = (data / "admin-token").read_text().strip()
            r = httpx.get(f"http://127.0.0.1:{http}/api/v1/jobs/1", headers={"Authorization": f"Bearer {token}"},
                          timeout=5)
        except (OSError, httpx.HTTPError):
            return None
        return r.json() if r.status_code == 200 else None

    _until(lambda: (j := job()) and j["state"] == "running" and sum(j["attempts_by_code"].values()) > 0,
           150, "the demo job dialling", procs, live)
    dialling = time.monotonic() - t0
    procs.record()
    during = _probe(procs, address)
    done = _until(lambda: (j := job()) and j["state"] in ("completed", "stopped", "failed") and j, 120,
                  "the demo job to end", procs, live)
    after = _probe(procs, address)
    took = time.monotonic() - t0

    servers = during["servers"]
    assert len(servers) == 2, servers
    assert all(r == names.server_resources() for r in servers.values()), servers
    managers = during["managers"]
    assert len(managers) == 2 and set(managers.values()) == set(servers), \
        f"the job's managers are not one on each server: {managers}"
    assert done["state"] == "completed", done
    # Orders went through the servers' gateways (a manager uses its own server's once that one
    # is up: on a short job the other server's may have none; CI once saw 857 and 0).
    dialled = {names.gateway_node(g) for g, n in after["orders"].items() if n > 0}
    assert dialled and dialled <= {names.server_name(s) for s in servers}, after["orders"]

    assert procs.stop(("pom",), 60) == {"pom": 0}, procs.output("pom")
    codes = procs.stop(("worker", "head"), 60)
    assert None not in codes.values(), codes
    left = procs.recorded.left_behind(grace=10)
    print(f"two servers: dialling {dialling:.1f} s after the first start, the job completed at {took:.1f} s; "
          f"managers {managers}; orders per gateway {after['orders']}; ray start exits {codes}")
    assert left == [], left


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _probe(procs: Processes, address: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, address, "1"], env={**procs.env, "RAY_AUTH_MODE": "token"},
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
