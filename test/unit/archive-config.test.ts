import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../server/config';

describe('archive settings', () => {
  it('default to the archive tenant, no allowed origin, no adjuster', () => {
    const c = loadConfig({}).archive;
    assert.equal(c.tenant, 'archive');
    assert.deepEqual(c.allowedOrigins, []);
    assert.deepEqual(c.adjusters, {});
    assert.equal(c.callbackRetryBaseMs, 2000);
  });
  it('read prefixes and adjusters (the positive control)', () => {
    const c = loadConfig({ CAIRN_ARCHIVE_TENANT: 'sources', CAIRN_ARCHIVE_ALLOWED_ORIGINS: 'https://github.com/acme/, http://10.0.0.5:8080/git/',
      CAIRN_ARCHIVE_ADJUSTERS: '{"MVN": "./pme.sh"}' }).archive;
    assert.deepEqual([c.tenant, c.allowedOrigins, c.adjusters], ['sources', ['https://github.com/acme/', 'http://10.0.0.5:8080/git/'], { MVN: './pme.sh' }]);
  });
  it('refuse a prefix that would allow whole schemes or look-alike hosts, bad adjusters, a reserved tenant', () => {
    for (const env of [{ CAIRN_ARCHIVE_ALLOWED_ORIGINS: 'https://' }, { CAIRN_ARCHIVE_ALLOWED_ORIGINS: 'https://github.com' },
      { CAIRN_ARCHIVE_ALLOWED_ORIGINS: 'file:///srv/' }, { CAIRN_ARCHIVE_ADJUSTERS: 'not json' }, { CAIRN_ARCHIVE_ADJUSTERS: '{"MVN": 1}' },
      { CAIRN_ARCHIVE_ADJUSTERS: '["x"]' }, { CAIRN_ARCHIVE_TENANT: 'repour' }, { CAIRN_ARCHIVE_TENANT: 'a/b' }]) {
      assert.throws(() => loadConfig(env), ConfigError, JSON.stringify(env));
    }
  });
});
