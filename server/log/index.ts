import pino from 'pino';

export type Logger = pino.Logger;

/** The root logger: JSON on stderr (stdout belongs to CLI results). Redaction is the floor, not the plan. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { app: 'cairn' },
    redact: {
      paths: ['authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
        'token', '*.token', 'password', '*.password', 'private_key', '*.private_key'],
      censor: '[redacted]',
    },
  }, pino.destination(2));
}
