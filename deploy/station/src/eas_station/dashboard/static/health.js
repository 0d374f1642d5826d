// Which service instances the health panel should forget. Pure, so it is tested on its own
// (tests/integration/test_dashboard_health_js.py).

const FORGET_SILENT_MS = 15 * 60 * 1000;

/** The instance's last sign of life: its newest heartbeat, or the one a "down" alarm names.
 * Not the alarm's own time: the fleet publishes it well after the instance went quiet, and
 * judging by it kept an instance that a restart had replaced listed as down. */
export function lastSeen(entry) {
  return Math.max(
    new Date(entry.time || 0).getTime(),
    new Date(entry.alarm?.last_heartbeat || 0).getTime(),
  );
}

/** Keys of ``health`` (service/instance -> {hb, time, alarm}) to forget at ``now`` (ms):
 * instances replaced by a restart (another instance of the same service started after their
 * last sign of life) and instances silent for a long time. */
export function staleHealthKeys(health, now) {
  const started = new Map(); // service -> [started_at ms]
  for (const entry of health.values()) {
    if (entry.hb && entry.hb.started_at) {
      const list = started.get(entry.hb.service) || [];
      list.push(new Date(entry.hb.started_at).getTime());
      started.set(entry.hb.service, list);
    }
  }
  const stale = [];
  for (const [key, entry] of health) {
    const service = entry.hb?.service || entry.alarm?.service;
    const last = lastSeen(entry);
    const replaced = (started.get(service) || []).some((t) => t > last);
    if (replaced || now - last > FORGET_SILENT_MS) stale.push(key);
  }
  return stale;
}
