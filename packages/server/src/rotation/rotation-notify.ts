import pg from 'pg';

/**
 * Postgres NOTIFY channel on which an org DEK rotation announces its new active version (the
 * payload is the org id), in the transaction that activates it. Every server sharing the
 * database listens and drops its cached DEKs of that org, so new writes move to the new version
 * within moments, whichever process (server or `crate-server keys rotate-org`) rotates.
 * A server that misses a notification (its listening connection was down) still moves over
 * when its cache entry expires (10 minutes), and meanwhile writes under the old version, which
 * stays readable; the rotation's closing sweep re-wraps such rows.
 */
export const ROTATION_CHANNEL = 'crate_org_dek_rotated';

const RECONNECT_MS = 5_000;

export function listenForRotations(
  databaseUrl: string,
  onRotated: (orgId: string) => void,
  onError: (error: unknown) => void,
): { stop(): Promise<void> } {
  let stopped = false;
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  const connect = async () => {
    if (stopped) return;
    const next = new pg.Client({ connectionString: databaseUrl });
    client = next;
    next.on('notification', (message) => {
      if (message.channel === ROTATION_CHANNEL && message.payload) onRotated(message.payload);
    });
    next.on('error', (error) => {
      onError(error);
      retry(next);
    });
    try {
      await next.connect();
      await next.query(`listen ${ROTATION_CHANNEL}`);
    } catch (error) {
      onError(error);
      retry(next);
    }
  };
  const retry = (failed: pg.Client) => {
    if (stopped || client !== failed) return;
    client = undefined;
    failed.end().catch(() => {});
    timer = setTimeout(() => void connect(), RECONNECT_MS);
    timer.unref();
  };
  void connect();
  return {
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await client?.end().catch(() => {});
    },
  };
}
