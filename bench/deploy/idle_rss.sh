#!/usr/bin/env bash
# Idle resident memory of each service, started as compose starts it (the same commands and
# settings, on loopback ports), to size deploy/k8s's memory requests. It uses its own
# throwaway database and bus namespace on the machine's PostgreSQL and Redis, and drops
# the database afterwards. Run from the repository root:  nice -n 10 bench/deploy/idle_rss.sh
# Memory is the sum over the service's process and its children (eas-monitor and
# audio-control supervise worker processes).
set -euo pipefail
cd "$(dirname "$0")/../.."
V=.venv/bin
PGURL=${EAS_BENCH_PG:-postgresql://postgres@127.0.0.1:5432}
DB=bench_idle_rss_$$
WORK=$(mktemp -d)
trap 'psql "$PGURL/postgres" -qc "drop database if exists $DB" >/dev/null; rm -rf "$WORK"' EXIT
psql "$PGURL/postgres" -qc "create database $DB" >/dev/null
$V/eas-token keygen --dir "$WORK/keys" >/dev/null
export EAS_REDIS_URL=${EAS_BENCH_REDIS:-redis://127.0.0.1:6379/0}
export EAS_DATABASE_URL=$PGURL/$DB
export EAS_BUS_NAMESPACE=bench-idle-rss-$$
export EAS_AUTH_PUBLIC_KEY_FILE=$WORK/keys/signing.pub.pem
export EAS_LOG_JSON=true
# Nothing written into the repository: compose's dashboard hosts audio-control, which
# would make its chain key and aired folder under ./var otherwise.
export EAS_CHAIN_KEY_FILE=$WORK/keys/chain.pem AUDIO_CONTROL_AIRED_DIR=$WORK/aired
for svc in alerts-api station-api eas-monitor audio-control; do $V/$svc migrate >/dev/null 2>&1; done

measure() {  # name port command...
  local name=$1 port=$2; shift 2
  env "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$! i
  for i in $(seq 1 300); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break
    sleep 0.2
  done
  sleep 3  # let background tasks (consumers, supervisors) start
  local ready total=0 p r
  ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")
  for p in $pid $(pgrep -P "$pid"); do
    r=$(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${r:-0}))
  done
  printf '%-15s readyz=%s  rss=%4d MiB  processes=%d\n' "$name" "$ready" $((total / 1024)) \
    $((1 + $(pgrep -P "$pid" | wc -l)))
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
K=$WORK/keys
measure alerts-api 18101 $V/alerts-api serve --no-migrate --host 127.0.0.1 --port 18101
measure station-api 18105 EAS_AUTH_SIGNING_KEY_FILE=$K/signing.pem EAS_CHAIN_KEY_FILE=$K/chain.pem \
  $V/station-api serve --no-migrate --host 127.0.0.1 --port 18105
measure eas-monitor 18103 EAS_MONITOR_DATA_DIR=$WORK/monitor \
  $V/eas-monitor serve --no-migrate --host 127.0.0.1 --port 18103
measure audio-control 18104 EAS_CHAIN_KEY_FILE=$K/chain.pem AUDIO_CONTROL_RUN_PLAYOUT=false \
  $V/audio-control serve --no-migrate --host 127.0.0.1 --port 18104
measure ws-broadcaster 18102 WS_BROADCASTER_HOST=127.0.0.1 WS_BROADCASTER_PORT=18102 $V/ws-broadcaster
mkdir -p "$WORK/cap"
measure pollers 18106 POLLERS_CAP_FOLDER=$WORK/cap POLLERS_HEALTH_HOST=127.0.0.1 \
  POLLERS_HEALTH_PORT=18106 $V/pollers run
measure dashboard 18180 EAS_GATEWAY_DISABLE=alerts-api,station-api,eas-monitor,ws-broadcaster,audio-control \
  EAS_GATEWAY_ALLOWED_HOSTS='*' $V/python -m eas_station.gateway serve --no-migrate --host 127.0.0.1 --port 18180
measure dashboard-compose 18181 EAS_GATEWAY_DISABLE=alerts-api,station-api,eas-monitor,ws-broadcaster \
  $V/python -m eas_station.gateway serve --no-migrate --host 127.0.0.1 --port 18181
