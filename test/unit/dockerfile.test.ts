import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../harness';

// No Docker engine runs here, so the image's recipe is checked for the promises it must keep, and its
// build steps are held to the README's (which CI runs for real).
describe('Dockerfile', () => {
  const text = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it('builds with the README\'s install and test commands', () => {
    assert.ok(readme.includes('npm ci && npm test'));
    assert.match(text, /^RUN npm ci && npm test && npm prune --omit=dev$/m);
  });
  it('is multi-stage, runs as a non-root user, has git, volumes for data and keys, and a health check', () => {
    assert.equal(text.match(/^FROM /gm)?.length, 2);
    assert.match(text, /^USER cairn$/m);
    assert.match(text.split(/^FROM /m)[2], /apt-get install[^\n]*\bgit\b/);
    assert.match(text, /^VOLUME \["\/data", "\/keys"\]$/m);
    assert.match(text, /^HEALTHCHECK [\s\S]*\/healthz/m);
  });
  it('copies every folder the build stage needs', () => {
    for (const dir of ['bin', 'hooks', 'migrations', 'server', 'test', 'bench']) assert.match(text, new RegExp(`^COPY ${dir} ./${dir}$`, 'm'), dir);
  });
});
