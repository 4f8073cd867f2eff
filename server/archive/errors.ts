/**
 * A processing error in Repour's shape (its DescribedError): answered 400 with `desc`, `error_type` and,
 * for a command, `cmd`, `exit_code` and `stderr`. Exit code 10 says the fault is the caller's (an
 * unknown ref, an unreachable or refused origin, a bad archive), as Repour's callers expect.
 */
export class ArchiveError extends Error {
  readonly cmd?: string[];
  readonly exitCode?: number;
  readonly stderr?: string;
  constructor(readonly desc: string, readonly errorType: string, details: { cmd?: string[]; exitCode?: number; stderr?: string } = {}) {
    super(desc);
    this.name = errorType;
    this.cmd = details.cmd; this.exitCode = details.exitCode; this.stderr = details.stderr;
  }
}

/** The caller's fault, in Repour's convention. */
export const CALLER_FAULT = 10;

/** A task someone cancelled: its processes are gone and it sends no callback. */
export class Cancelled extends Error {
  constructor() { super('task cancelled'); this.name = 'Cancelled'; }
}
