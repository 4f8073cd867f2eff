import { FLUSH, pkt, PktLineError, readPkt } from './pktline';

export type PushCommand = { ref: string; oldId: string; newId: string };
export type ReceiveRequest = {
  commands: PushCommand[];
  capabilities: string[];
  /** The command section re-encoded, with `atomic` asked for so git applies all refs or none. */
  head: Buffer;
  /** Bytes after the command section (the start of the pack) that were already read. */
  rest: Buffer;
};

const OID = /^[0-9a-f]{40}$/;
/** The longest command section buffered before deciding: room for a push of 100,000 tags. */
const MAX_HEAD_BYTES = 32 * 1024 * 1024;

/**
 * Parses the start of a receive-pack request (`old new ref\0caps`, …, flush) from `buf`.
 * Returns null while more bytes are needed; throws PktLineError on anything malformed.
 */
export function parseReceiveRequest(buf: Buffer): ReceiveRequest | null {
  const commands: PushCommand[] = [];
  const passThrough: Buffer[] = [];
  let capabilities: string[] = [];
  let offset = 0;
  for (;;) {
    const p = readPkt(buf, offset);
    if (!p) {
      if (buf.length > MAX_HEAD_BYTES) throw new PktLineError('push command list too long');
      return null;
    }
    offset = p.next;
    if (p.payload === 'flush') break;
    if (typeof p.payload === 'string') throw new PktLineError(`unexpected ${p.payload} packet in push commands`);
    let line = p.payload.toString('utf8');
    if (line.endsWith('\n')) line = line.slice(0, -1);
    if (line.startsWith('shallow ')) {
      if (commands.length > 0 || !OID.test(line.slice(8))) throw new PktLineError('malformed shallow line');
      passThrough.push(pkt(p.payload));
      continue;
    }
    if (commands.length === 0) {
      const nul = line.indexOf('\0');
      if (nul < 0) throw new PktLineError('first push command carries no capabilities');
      capabilities = line.slice(nul + 1).split(' ').filter(Boolean);
      line = line.slice(0, nul);
    }
    const m = /^([0-9a-f]{40}) ([0-9a-f]{40}) (refs\/[^\s\0]+)$/.exec(line);
    if (!m) throw new PktLineError(`malformed push command "${line.slice(0, 120).replace(/[^\x20-\x7e]/g, '?')}"`);
    commands.push({ oldId: m[1], newId: m[2], ref: m[3] });
  }
  // A lone flush is git's probe before a large chunked push (remote-curl's probe_rpc): no commands, no pack.
  if (commands.length === 0) {
    if (passThrough.length > 0 || buf.length > offset) throw new PktLineError('push without commands');
    return { commands, capabilities, head: FLUSH, rest: Buffer.alloc(0) };
  }
  const caps = capabilities.includes('atomic') ? capabilities : [...capabilities, 'atomic'];
  const encoded = commands.map((c, i) =>
    pkt(`${c.oldId} ${c.newId} ${c.ref}${i === 0 ? `\0${caps.join(' ')}` : ''}\n`));
  return { commands, capabilities, head: Buffer.concat([...passThrough, ...encoded, FLUSH]), rest: buf.subarray(offset) };
}

/**
 * The answer receive-pack would give, made without running it: used when the command list alone
 * refuses the push, so no pack is ever unpacked. `refused` maps a ref to its `CODE reason` text.
 */
export function refusalReport(req: ReceiveRequest, refused: ReadonlyMap<string, string>, messages: string[]): Buffer {
  const wantsReport = req.capabilities.includes('report-status') || req.capabilities.includes('report-status-v2');
  const report = wantsReport ? Buffer.concat([pkt('unpack ok\n'),
    ...req.commands.map((c) => pkt(`ng ${c.ref} ${refused.get(c.ref) ?? 'CAIRN_PUSH_REFUSED another ref in this push was refused'}\n`)),
    FLUSH]) : Buffer.alloc(0);
  if (!req.capabilities.includes('side-band-64k') && !req.capabilities.includes('side-band')) return report;
  const max = req.capabilities.includes('side-band-64k') ? 65515 : 999;
  const band = (n: number, data: Buffer): Buffer[] => {
    const out: Buffer[] = [];
    for (let i = 0; i < data.length; i += max) out.push(pkt(Buffer.concat([Buffer.from([n]), data.subarray(i, i + max)])));
    return out;
  };
  return Buffer.concat([...messages.flatMap((m) => band(2, Buffer.from(`${m}\n`))), ...band(1, report), FLUSH]);
}
