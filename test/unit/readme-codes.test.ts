import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REFUSALS } from '../../server/policy';
import { ROOT } from '../harness';

// Build tools branch on these codes; the README is where they read them. Every code the code can give is listed.
describe('refusal codes', () => {
  it('are all listed in the README', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const sources = ['server/transport/hook/index.ts', 'hooks/pre-receive', 'server/git/receive-request.ts']
      .map((f) => fs.readFileSync(path.join(ROOT, f), 'utf8')).join('\n');
    const codes = new Set([...Object.keys(REFUSALS), ...sources.matchAll(/CAIRN_[A-Z_]+/g)].map((c) => (typeof c === 'string' ? c : c[0])));
    for (const env of ['CAIRN_HOOK_PORT', 'CAIRN_PUSH_TOKEN']) codes.delete(env);
    for (const code of codes) assert.ok(readme.includes(`\`${code}\``), `${code} is not in the README`);
  });
});
