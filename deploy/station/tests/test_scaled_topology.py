"""eas_station.scaled reads deploy/compose.yml as the one source of the scaled topology: what
it would start, with which environment, and the nginx configuration it derives from
deploy/nginx.conf (no process is started here; tests/integration/test_scaled.py runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eas_station.scaled import (
    COMPOSE,
    Replica,
    ScaledStation,
    TopologyError,
    interpolate,
    load_topology,
)


def test_compose_variables_are_interpolated_as_compose_does() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}-${UNSET}", env) == "x-"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate("$${SET}", env) == "${SET}"
    with pytest.raises(TopologyError, match="EMPTY: say why"):
        interpolate("${EMPTY:?say why}", env)
    assert interpolate("${EMPTY?fine when set}", env) == ""


def test_the_topology_is_compose_yml_s() -> None:
    topology = load_topology(COMPOSE, {"EAS_REDIS_PASSWORD": "p"})
    replicas = {s.name: s.replicas for s in topology.long_running}
    assert replicas == {
        "alerts-api": 2,
        "station-api": 2,
        "eas-monitor": 1,
        "audio-control": 2,
        "audio-control-playout": 1,
        "ws-broadcaster": 2,
        "pollers": 1,
        "dashboard": 1,
    }
    assert [s.name for s in topology.one_shots] == ["migrations"]
    assert set(topology.infrastructure) == {"redis", "postgres", "proxy"}
    assert topology.services["ws-broadcaster"].container_port == 8002
    assert topology.services["alerts-api"].container_port == 8001
    assert topology.services["pollers"].container_port is None
    assert topology.services["audio-control"].environment["AUDIO_CONTROL_RUN_PLAYOUT"] == "false"
    with pytest.raises(TopologyError, match="EAS_REDIS_PASSWORD"):
        load_topology(COMPOSE, {})


def _station(tmp_path: Path) -> ScaledStation:
    station = ScaledStation(
        redis_url="redis://127.0.0.1:1/0",
        postgres_admin_url="postgresql://postgres@127.0.0.1:1/postgres",
        run_dir=tmp_path,
        cap_folder=tmp_path / "cap",
        port=18080,
    )
    ports = iter(range(20001, 20100))
    for spec in station.topology.long_running:
        port = next(ports) if spec.container_port else None
        station.replicas[spec.name] = [
            Replica(
                spec.name,
                i,
                station._replica_argv(spec, port),
                station._replica_env(spec, i, port),
                tmp_path,
                tmp_path / "log",
                port,
                spec.ready_check,
                True,
            )
            for i in range(1, spec.replicas + 1)
        ]
    return station


def test_each_replica_gets_the_machine_s_addresses(tmp_path: Path) -> None:
    station = _station(tmp_path)
    alerts = station.replica("alerts-api", 2)
    assert alerts.argv[:2] == ["alerts-api", "serve"]
    assert alerts.argv[alerts.argv.index("--host") + 1] == "127.0.0.1"
    assert alerts.argv[alerts.argv.index("--port") + 1] == str(alerts.port)
    env = alerts.env
    assert env["EAS_REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert env["EAS_DATABASE_URL"].endswith(f"/{station.database}")
    assert env["EAS_BUS_NAMESPACE"] == station.namespace
    assert env["EAS_TRUSTED_PROXIES"] == "127.0.0.1"
    assert env["EAS_INSTANCE"] == "alerts-api-2"
    assert env["EAS_AUTH_PUBLIC_KEY_FILE"] == str(tmp_path / "keys" / "signing.pub.pem")
    ws = station.replica("ws-broadcaster", 1).env
    assert ws["WS_BROADCASTER_HOST"] == "127.0.0.1"
    assert ws["WS_BROADCASTER_PORT"] == str(station.replica("ws-broadcaster", 1).port)
    assert station.replica("pollers").env["POLLERS_CAP_FOLDER"] == str(tmp_path / "cap")
    monitor = station.replica("eas-monitor").env["EAS_MONITOR_DATA_DIR"]
    assert monitor == str(tmp_path / "volumes" / "monitor-data")


def test_nginx_conf_is_the_same_file_with_every_replica_upstream(tmp_path: Path) -> None:
    station = _station(tmp_path)
    text = station.nginx_config()
    first, second = station.replicas["alerts-api"]
    assert (
        f"upstream alerts_api {{ server 127.0.0.1:{first.port}; server 127.0.0.1:{second.port}; }}"
        in text
    )
    assert "listen 127.0.0.1:18080;" in text and "listen 80;" not in text
    assert "alerts-api:8001" not in text
    original = (COMPOSE.parent / "nginx.conf").read_text()
    # Routing, headers and checks are deploy/nginx.conf's own, unchanged.
    for line in original.splitlines():
        if "upstream" not in line and "listen" not in line:
            assert line in text
