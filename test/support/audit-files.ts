/**
 * Audit log test helpers: an event of a chosen size, and a real file handle whose writes and fsyncs
 * a test can break at any moment by changing `faults`.
 */
import { type FileHandle, open } from 'node:fs/promises';
import type { AuditFile } from '../../src/state/audit.js';

export const auditEvent = (i: number, reason: string | null = null) => ({
  request_id: `r${i}`,
  client_id: 'c',
  endpoint: '/v1/deploy',
  image: `img:${i}`,
  outcome: 'deployed',
  status: 200,
  reason,
  duration_ms: i,
});

export interface Faults {
  /** Every write call writes at most this many bytes (a short write). */
  maxBytesPerWrite?: number;
  /** While set, a write call writes this many bytes, then fails with EIO (a device that fails mid-line). */
  failWritesAfter?: number | null;
  /** The next fsync fails with EIO. */
  failNextSync?: boolean;
}

export function faultyAuditFile(faults: Faults): (path: string) => Promise<AuditFile> {
  return async (path) => {
    const handle: FileHandle = await open(path, 'a+', 0o600);
    return {
      read: (b, o, l, p) => handle.read(b, o, l, p),
      stat: () => handle.stat(),
      truncate: (len) => handle.truncate(len),
      close: () => handle.close(),
      write: async (buffer, offset, length) => {
        const allowed = Math.min(length, faults.maxBytesPerWrite ?? length);
        const failAfter = faults.failWritesAfter;
        if (failAfter === undefined || failAfter === null) return handle.write(buffer, offset, allowed, null);
        if (failAfter > 0) await handle.write(buffer, offset, Math.min(allowed, failAfter), null);
        throw Object.assign(new Error('I/O error'), { code: 'EIO' });
      },
      sync: async () => {
        if (faults.failNextSync === true) {
          faults.failNextSync = false;
          throw Object.assign(new Error('fsync failed'), { code: 'EIO' });
        }
        await handle.sync();
      },
    };
  };
}
