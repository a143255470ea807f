"""The `ray start` command of a POM server (pom_actors/cluster.py) and `pom cluster`."""
from __future__ import annotations

import json
import shlex

import pytest

from api.cli import main
from pom_actors import cluster, names


def _resources(start: cluster.RayStart) -> dict:
    [arg] = [a for a in start.argv if a.startswith("--resources=")]
    return json.loads(arg.split("=", 1)[1])


def test_head_offers_the_server_and_zone_resources_on_its_port():
    start = cluster.head("east", port=6390, ray="/opt/pom/bin/ray", environ={})
    assert start.argv[:4] == ["/opt/pom/bin/ray", "start", "--head", "--port=6390"]
    assert _resources(start) == {names.SERVER_RESOURCE: 1, names.zone_resource("east"): 1}
    assert "--block" not in start.argv
    assert start.env == {"RAY_worker_niceness": "0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
                         "RAY_AUTH_MODE": "token"}


def test_join_names_the_head_and_defaults_to_the_default_zone():
    start = cluster.join("pom1.example.internal:6379", block=True, ray="ray", environ={})
    assert start.argv[:3] == ["ray", "start", "--address=pom1.example.internal:6379"]
    assert _resources(start) == {names.SERVER_RESOURCE: 1, names.zone_resource(names.DEFAULT_ZONE): 1}
    assert start.argv[-1] == "--block"


def test_ray_options_pass_through_and_the_auth_mode_of_the_environment_is_kept():
    start = cluster.join("10.0.0.1:6379", "west", ray_args=["--num-cpus=8", "--node-ip-address", "10.0.0.2"],
                         ray="ray", environ={"RAY_AUTH_MODE": "disabled"})
    assert start.argv[-3:] == ["--num-cpus=8", "--node-ip-address", "10.0.0.2"]
    assert start.env["RAY_AUTH_MODE"] == "disabled"
    assert shlex.split(start.shell()) == [f"{k}={v}" for k, v in start.env.items()] + start.argv


@pytest.mark.parametrize("address", ["pom1", "pom1:", ":6379", "pom1:0", "pom1:65536", "pom1:63x9",
                                     "bad host:6379", "-x:6379", "h" * 300 + ":6379", ""])
def test_a_bad_head_address_is_refused(address):
    with pytest.raises(cluster.ClusterError) as err:
        cluster.join(address, ray="ray")
    assert err.value.field == "address"


def test_ipv6_and_dotted_addresses_are_taken():
    assert cluster.check_address("[fd00::1]:6379") == "[fd00::1]:6379"
    assert cluster.check_address("192.168.0.10:6379") == "192.168.0.10:6379"


@pytest.mark.parametrize("port", [0, 65536, -1, "6379"])
def test_a_bad_port_is_refused(port):
    with pytest.raises(cluster.ClusterError) as err:
        cluster.head(port=port, ray="ray")
    assert err.value.field == "port"


@pytest.mark.parametrize("zone", ["", "East", "a b", "zone:x", "x" * 64])
def test_a_bad_zone_name_is_refused(zone):
    with pytest.raises(cluster.ClusterError) as err:
        cluster.head(zone, ray="ray")
    assert err.value.field == "zone"


@pytest.mark.parametrize("option", ["--resources={}", "--head", "--address=x:1", "--port=1", "--block"])
def test_options_pom_cluster_sets_cannot_be_given_again(option):
    with pytest.raises(cluster.ClusterError) as err:
        cluster.join("h:1", ray_args=[option], ray="ray")
    assert err.value.field == "ray_args"


def test_cli_dry_run_prints_the_command(capsys, monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert main(["cluster", "join", "127.0.0.1:6390", "--zone", "east", "--dry-run", "--", "--num-cpus=2"]) == 0
    words = shlex.split(capsys.readouterr().out)
    assert words[:3] == ["RAY_worker_niceness=0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0", "RAY_AUTH_MODE=token"]
    assert words[4:] == ["start", "--address=127.0.0.1:6390", '--resources={"pom_server": 1, "zone:east": 1}',
                         "--num-cpus=2"]


def test_the_zone_defaults_to_pom_zone_then_to_the_default_zone():
    assert _resources(cluster.head(ray="ray", environ={"POM_ZONE": "north", "POM_DEFAULT_ZONE": "main"})) == \
        names.server_resources("north")
    assert _resources(cluster.head(ray="ray", environ={"POM_DEFAULT_ZONE": "main"})) == names.server_resources("main")
    assert _resources(cluster.head("east", ray="ray", environ={"POM_ZONE": "north"})) == names.server_resources("east")


def test_cli_zone_defaults_to_pom_zone(capsys, monkeypatch):
    monkeypatch.setenv("POM_ZONE", "north")
    assert main(["cluster", "start-head", "--port", "7000", "--dry-run"]) == 0
    assert '"zone:north": 1' in capsys.readouterr().out


def test_cli_refusals_name_the_argument_and_exit_2(capsys):
    assert main(["cluster", "join", "nohost", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("pom: address: ")
    assert main(["cluster", "start-head", "--dry-run", "--", "--resources={}"]) == 2
    assert capsys.readouterr().err.startswith("pom: ray_args: ")
    with pytest.raises(SystemExit) as exit_:
        main(["health", "--", "--num-cpus=2"])          # options after -- are for `pom cluster` only
    assert exit_.value.code == 2


@pytest.mark.parametrize("unit, role", [("pom-ray-head.service", "--head"), ("pom-ray-worker.service", "--address=pom1:6379")])
def test_the_systemd_units_start_a_pom_server(unit, role, capsys, monkeypatch):
    """Each unit's ExecStart, its variables expanded as systemd does (an unset $VAR: no word)."""
    from pathlib import Path

    monkeypatch.delenv("POM_ZONE", raising=False)
    monkeypatch.delenv("POM_DEFAULT_ZONE", raising=False)
    text = (Path(__file__).resolve().parents[2] / "cluster" / unit).read_text()
    [line] = [x for x in text.splitlines() if x.startswith("ExecStart=")]
    words = [w.replace("${POM_RAY_HEAD}", "pom1:6379") for w in shlex.split(line.split("=", 1)[1])
             if w != "$POM_RAY_START_OPTIONS"]
    assert words[0].endswith("/bin/pom") and "--block" in words
    assert main([*words[1:3], "--dry-run", *words[3:]]) == 0
    argv = shlex.split(capsys.readouterr().out)
    assert role in argv and "--block" in argv and argv[-1] == "--block"
    assert f"--resources={json.dumps(names.server_resources())}" in argv
