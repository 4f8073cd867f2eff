// git's pkt-line framing: four hex digits of length (including themselves), then the payload; 0000 is a flush.

export class PktLineError extends Error {}

export const FLUSH = Buffer.from('0000');

export function pkt(payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  if (body.length > 65516) throw new PktLineError('pkt-line payload too long');
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0')), body]);
}

/** Reads one pkt-line at `offset`: null when more bytes are needed; throws on malformed framing. */
export function readPkt(buf: Buffer, offset: number): { payload: Buffer | 'flush' | 'delim' | 'response-end'; next: number } | null {
  if (buf.length - offset < 4) return null;
  const head = buf.subarray(offset, offset + 4).toString('latin1');
  if (!/^[0-9a-f]{4}$/.test(head)) throw new PktLineError(`bad pkt-line length "${printable(head)}"`);
  const len = parseInt(head, 16);
  if (len === 0) return { payload: 'flush', next: offset + 4 };
  if (len === 1) return { payload: 'delim', next: offset + 4 };
  if (len === 2) return { payload: 'response-end', next: offset + 4 };
  if (len < 4) throw new PktLineError(`bad pkt-line length ${len}`);
  if (buf.length - offset < len) return null;
  return { payload: buf.subarray(offset + 4, offset + len), next: offset + len };
}

/** Checks that a whole request is well-framed pkt-lines (an upload-pack request); throws what is wrong. */
export function checkPktStream(buf: Buffer): void {
  if (buf.length === 0) throw new PktLineError('empty request');
  let offset = 0;
  while (offset < buf.length) {
    const p = readPkt(buf, offset);
    if (!p) throw new PktLineError('truncated pkt-line');
    offset = p.next;
  }
}

const printable = (s: string) => s.replace(/[^\x20-\x7e]/g, '?');
