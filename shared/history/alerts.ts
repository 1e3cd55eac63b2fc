import type { AlertState } from '../job/spec.js';

/** One try to deliver an alert on one channel. */
export interface DeliveryAttempt {
  readonly atMs: number;
  readonly ok: boolean;
  /** "HTTP 200", "exit 0", or why it failed. */
  readonly detail: string;
}

export type ChannelName = 'webhook' | 'command';

export interface ChannelDelivery {
  status: 'pending' | 'delivered' | 'failed';
  attempts: DeliveryAttempt[];
}

/** The value under /cron/alerts/<job>/<run suffix>#<attempt>: what was sent, and how it went. */
export interface AlertRecord {
  readonly job: string;
  readonly slot: string;
  readonly runId: string;
  readonly attempt: number;
  readonly state: AlertState;
  readonly reason?: string;
  readonly worker?: string;
  /** The run record that raised it, and the revision it was written at. */
  readonly runKey: string;
  readonly runRevision: number;
  readonly createdAtMs: number;
  readonly channels: Partial<Record<ChannelName, ChannelDelivery>>;
}

export function decodeAlertRecord(text: string): AlertRecord | undefined {
  try {
    const value = JSON.parse(text) as Partial<AlertRecord>;
    if (typeof value.job !== 'string' || typeof value.runId !== 'string' || typeof value.channels !== 'object' || value.channels === null) return undefined;
    return value as AlertRecord;
  } catch {
    return undefined;
  }
}

/** Whether any channel still has deliveries to try. */
export function isAlertPending(record: AlertRecord): boolean {
  return Object.values(record.channels).some((channel) => channel?.status === 'pending');
}
