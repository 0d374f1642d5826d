"""docs/operations.md's claim about Redis Cluster, tried on a real one-shard cluster.

Some managed Redis offerings come only in cluster mode. In a cluster, Redis refuses a
command or script whose keys are in different hash slots (CROSSSLOT), even when one node
holds every slot. The station's multi-key operations, run here through the station's own
code, fail that way with no namespace. They succeed with a hash-tag namespace
(``EAS_BUS_NAMESPACE={eas}``): every key is ``<namespace>:<name>``, and Redis hashes only
the first ``{...}``. The cluster is a private ``redis-server --cluster-enabled yes`` on a
free port, never the machine's shared Redis.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from eas_schemas.streams import ALERT_EVENTS, ALERTS_INGESTED, DEAD_LETTER, SETTINGS_CHANGED
from servicekit.bus import stream_key
from servicekit.consumer import GroupConsumer
from servicekit.embedded import find_server_binary, free_port
from servicekit.tail import StreamTail
from station_api.throttle import LoginThrottle

pytestmark = pytest.mark.integration

HASH_TAG = "{eas}"
# Redis's CROSSSLOT error, as redis-py words it (the code itself is stripped).
CROSSSLOT = "hash to the same slot"


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("cluster")
    port = free_port()
    log = (data / "redis.log").open("wb")
    process = subprocess.Popen(
        [
            find_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            # The cluster bus is on port + 10000 unless named: past 55535 that does not exist.
            "--cluster-port",
            str(free_port()),
            "--cluster-config-file",
            str(data / "nodes.conf"),
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = redis.Redis(port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                exited = process.poll() is not None
                if exited or time.monotonic() > deadline:
                    output = (data / "redis.log").read_text()
                    pytest.fail(f"the cluster node did not start: {output}")
                time.sleep(0.05)
        # One shard: this node serves all 16384 slots, so nothing is ever redirected.
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the one-shard cluster did not come up"
            time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
async def client(cluster_url: str) -> AsyncIterator[aioredis.Redis]:
    # The station's clients are plain (non-cluster) ones, as servicekit.bus makes them.
    c = aioredis.Redis.from_url(cluster_url, decode_responses=True)
    yield c
    await c.aclose()


def _ns(tag: str, request: pytest.FixtureRequest) -> str:
    # A fresh namespace per test, so the tests share the module's cluster but no keys.
    return f"{tag}{request.node.name}" if tag else ""


async def test_login_throttle_needs_the_hash_tag(
    client: aioredis.Redis, request: pytest.FixtureRequest
) -> None:
    plain = LoginThrottle(client, "", window_s=60, max_user=5, max_addr=20)
    with pytest.raises(ResponseError, match=CROSSSLOT):
        await plain.attempt("alice", "192.0.2.7")
    tagged = LoginThrottle(client, _ns(HASH_TAG, request), window_s=60, max_user=5, max_addr=20)
    await tagged.attempt("alice", "192.0.2.7")
    await tagged.succeeded("alice", "192.0.2.7")


async def test_fan_out_read_of_several_streams_needs_the_hash_tag(
    client: aioredis.Redis, request: pytest.FixtureRequest
) -> None:
    plain = StreamTail(client, {stream_key(s): "0-0" for s in (ALERT_EVENTS, SETTINGS_CHANGED)})
    with pytest.raises(ResponseError, match=CROSSSLOT):
        await plain.read(block_ms=1)
    ns = _ns(HASH_TAG, request)
    keys = [stream_key(s, ns) for s in (ALERT_EVENTS, SETTINGS_CHANGED)]
    for key in keys:
        await client.xadd(key, {"probe": "1"})
    tagged = StreamTail(client, {key: "0-0" for key in keys})
    got = await tagged.read(block_ms=1)
    assert sorted(stream for stream, _, _ in got) == sorted(keys)


async def _dead_letter_one(client: aioredis.Redis, namespace: str) -> GroupConsumer:
    async def never_called(entry_id: str, envelope: object) -> None:
        raise AssertionError("a non-envelope entry reaches no handler")

    consumer = GroupConsumer(
        client, ALERTS_INGESTED.name, "probe", "probe-1", never_called, namespace=namespace
    )
    await consumer.ensure_group()
    # Not an event envelope: the consumer dead-letters it in one MULTI (XADD + XACK).
    await client.xadd(stream_key(ALERTS_INGESTED, namespace), {"junk": "1"})
    await consumer.poll_once()
    return consumer


async def test_dead_lettering_needs_the_hash_tag(
    client: aioredis.Redis, request: pytest.FixtureRequest
) -> None:
    # The keys of one MULTI must share a slot: without the tag the transaction is refused.
    with pytest.raises(ResponseError, match=CROSSSLOT):
        await _dead_letter_one(client, "")
    ns = _ns(HASH_TAG, request)
    consumer = await _dead_letter_one(client, ns)
    assert consumer.stats.dead_lettered == 1
    assert await client.xlen(stream_key(DEAD_LETTER, ns)) == 1
    assert await consumer.pending_count() == 0


async def test_a_hash_tag_later_in_a_key_gives_way_to_the_namespace(
    client: aioredis.Redis, request: pytest.FixtureRequest
) -> None:
    # eas-monitor's dedup keys carry their own tag ({digest}) after the namespace; with a
    # tagged namespace they land in the namespace's slot, with every other key.
    ns = _ns(HASH_TAG, request)
    dedup = stream_key("eas-monitor:dedup:same:{0123abcd}:first", ns)
    lease = stream_key("playout.lease:1", ns)
    slots = {await client.execute_command("CLUSTER", "KEYSLOT", k) for k in (dedup, lease, ns)}
    assert len(slots) == 1
    assert await client.mget([dedup, lease]) == [None, None]
