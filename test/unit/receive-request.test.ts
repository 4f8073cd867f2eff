import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FLUSH, parseReceiveRequest, pkt, PktLineError, refusalReport, checkPktStream } from '../../server/git';

const A = 'a'.repeat(40); const Z = '0'.repeat(40);

describe('receive-pack request parsing', () => {
  const request = Buffer.concat([
    pkt(`${Z} ${A} refs/heads/main\0report-status side-band-64k agent=git/2.39\n`),
    pkt(`${A} ${Z} refs/tags/v1\n`), FLUSH, Buffer.from('PACK-bytes')]);

  it('reads the commands and capabilities, keeps the pack bytes, and asks git for an atomic update', () => {
    const r = parseReceiveRequest(request)!;
    assert.deepEqual(r.commands, [{ oldId: Z, newId: A, ref: 'refs/heads/main' }, { oldId: A, newId: Z, ref: 'refs/tags/v1' }]);
    assert.deepEqual(r.capabilities, ['report-status', 'side-band-64k', 'agent=git/2.39']);
    assert.equal(r.rest.toString(), 'PACK-bytes');
    assert.match(r.head.toString(), /\0report-status side-band-64k agent=git\/2\.39 atomic\n/);
  });

  it('waits for more bytes while the command list is incomplete', () => {
    for (let cut = 0; cut < request.length - 'PACK-bytes'.length; cut++) {
      assert.equal(parseReceiveRequest(request.subarray(0, cut)), null, `cut at ${cut}`);
    }
  });

  it('refuses malformed framing and commands with a clear error', () => {
    const bad = [Buffer.from('zzzz'), Buffer.from('0003'), pkt('hello\n'), Buffer.concat([pkt(`${Z} ${A} refs/heads/x\n`), FLUSH]),
      Buffer.concat([pkt(`${Z} ${A.slice(1)} refs/heads/x\0caps\n`), FLUSH]), Buffer.from('0000PACK'),
      Buffer.concat([pkt(`${Z} ${A} main\0caps\n`), FLUSH])];
    for (const b of bad) assert.throws(() => parseReceiveRequest(b), PktLineError, b.toString());
    assert.throws(() => checkPktStream(Buffer.from('GET / HTTP/1.1\r\n')), PktLineError);
    assert.doesNotThrow(() => checkPktStream(Buffer.concat([pkt('command=ls-refs\n'), FLUSH])));
  });

  it('takes a lone flush as git\'s probe before a large push: no commands, nothing else', () => {
    assert.deepEqual(parseReceiveRequest(FLUSH)?.commands, []);
  });

  it('answers a refusal the way receive-pack would: per-ref ng lines inside side-band 1, messages on band 2', () => {
    const r = parseReceiveRequest(request)!;
    const out = refusalReport(r, new Map([['refs/tags/v1', 'CAIRN_TAG_IMMUTABLE tags are immutable']]), ['CAIRN_TAG_IMMUTABLE refs/tags/v1: tags are immutable']).toString('latin1');
    assert.match(out, /\x02CAIRN_TAG_IMMUTABLE refs\/tags\/v1: tags are immutable\n/);
    assert.match(out, /\x01[0-9a-f]{4}unpack ok\n[0-9a-f]{4}ng refs\/heads\/main CAIRN_PUSH_REFUSED[^\n]*\n[0-9a-f]{4}ng refs\/tags\/v1 CAIRN_TAG_IMMUTABLE tags are immutable\n0000/);
    assert.ok(out.endsWith('0000'));
  });
});
