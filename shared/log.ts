import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * One root logger per process; components take children (`root.child({ component })`).
 * Logs go to stderr so that stdout stays for command output.
 */
export function createLogger(level: LevelWithSilent, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base }, pino.destination({ fd: 2, sync: false }));
}

export const LOG_LEVELS: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
