import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import SwaggerParser from '@apidevtools/swagger-parser';
import { startTestServer, TestServer } from '../harness';
import { routes } from '../../server/transport/http';

describe('REST API', () => {
  let server: TestServer;
  let alice: string;
  before(async () => {
    server = await startTestServer();
    alice = await server.user('alice');
  });
  after(() => server.stop());

  describe('tenants and repos', () => {
    it('an admin creates and lists tenants; a repo is private by default with both URLs', async () => {
      assert.equal((await server.api('POST', '/api/v1/tenants', { name: 'acme' }, server.adminToken)).status, 201);
      const list = await server.api('GET', '/api/v1/tenants', undefined, server.adminToken);
      assert.deepEqual(list.body.map((t: { name: string }) => t.name), ['acme']);
      const repo = await server.api('POST', '/api/v1/tenants/acme/repos', { name: 'app' }, server.adminToken);
      assert.equal(repo.status, 201);
      assert.equal(repo.body.public, false);
      assert.equal(repo.body.archived, false);
      assert.equal(repo.body.http_url, `${server.base}/acme/app.git`);
      assert.match(repo.body.ssh_url, /^ssh:\/\/git@127\.0\.0\.1:\d+\/acme\/app\.git$/);
      assert.ok(fs.existsSync(path.join(server.repoDir('acme/app'), 'HEAD')), 'bare repository on disk');
      const got = await server.api('GET', '/api/v1/repos/acme/app', undefined, server.adminToken);
      assert.deepEqual(got.body, repo.body);
    });

    it('refuses bad names with 422 and creates nothing', async () => {
      const bad = ['..', 'a/b', 'a b', '.hidden', '-dash', 'x'.repeat(65), 'app.git', '', 'api'];
      for (const name of bad) {
        const r = await server.api('POST', '/api/v1/tenants', { name }, server.adminToken);
        assert.equal(r.status, 422, `${JSON.stringify(name)}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'invalid_field');
      }
      for (const name of bad.slice(0, -1)) {
        const r = await server.api('POST', '/api/v1/tenants/acme/repos', { name }, server.adminToken);
        assert.equal(r.status, 422, JSON.stringify(name));
      }
      const tenants = await server.api('GET', '/api/v1/tenants', undefined, server.adminToken);
      assert.deepEqual(tenants.body.map((t: { name: string }) => t.name), ['acme']);
      assert.deepEqual(fs.readdirSync(path.join(server.dataDir, 'repos')), ['acme']);
      assert.deepEqual(fs.readdirSync(path.join(server.dataDir, 'repos', 'acme')), ['app.git']);
    });

    it('names are unique without regard to case (409)', async () => {
      const r = await server.api('POST', '/api/v1/tenants/acme/repos', { name: 'APP' }, server.adminToken);
      assert.equal(r.status, 409);
      assert.equal(r.body.error.code, 'name_taken');
      assert.equal((await server.api('POST', '/api/v1/tenants', { name: 'ACME' }, server.adminToken)).status, 409);
      assert.equal((await server.api('POST', '/api/v1/users', { name: 'Alice' }, server.adminToken)).status, 409);
    });

    it('refuses malformed JSON (400), unknown fields and wrong types (422), oversized bodies (413)', async () => {
      const malformed = await server.api('POST', '/api/v1/tenants', '{"name": ', server.adminToken);
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.error.code, 'malformed_request');
      const unknown = await server.api('POST', '/api/v1/tenants', { name: 'x1', colour: 'red' }, server.adminToken);
      assert.equal(unknown.status, 422);
      assert.match(unknown.body.error.message, /unknown field "colour"/);
      const wrongType = await server.api('POST', '/api/v1/tenants/acme/repos', { name: 'x2', public: 'yes' }, server.adminToken);
      assert.equal(wrongType.status, 422);
      assert.match(wrongType.body.error.message, /public/);
      const missing = await server.api('POST', '/api/v1/tenants', {}, server.adminToken);
      assert.equal(missing.status, 422);
      const big = await server.api('POST', '/api/v1/tenants', JSON.stringify({ name: 'x3', pad: 'x'.repeat(2 * 1024 * 1024) }), server.adminToken);
      assert.equal(big.status, 413);
      const tenants = await server.api('GET', '/api/v1/tenants', undefined, server.adminToken);
      assert.deepEqual(tenants.body.map((t: { name: string }) => t.name), ['acme'], 'nothing was created');
    });

    it('never deletes a repository: DELETE is 405 with the reason', async () => {
      const r = await server.api('DELETE', '/api/v1/repos/acme/app', undefined, server.adminToken);
      assert.equal(r.status, 405);
      assert.equal(r.body.error.code, 'repo_never_deleted');
      assert.match(r.body.error.message, /never deleted/);
      assert.equal((await server.api('GET', '/api/v1/repos/acme/app', undefined, server.adminToken)).status, 200);
      assert.ok(fs.existsSync(server.repoDir('acme/app')));
    });

    it('archives a repository for good', async () => {
      await server.repo('acme', 'old');
      const r = await server.api('PATCH', '/api/v1/repos/acme/old', { archived: true }, server.adminToken);
      assert.equal(r.status, 200);
      assert.equal(r.body.archived, true);
      const back = await server.api('PATCH', '/api/v1/repos/acme/old', { archived: false }, server.adminToken);
      assert.equal(back.status, 422);
      assert.equal((await server.api('GET', '/api/v1/repos/acme/old', undefined, server.adminToken)).body.archived, true);
      assert.equal((await server.api('PATCH', '/api/v1/repos/acme/old', {}, server.adminToken)).status, 422);
    });

    it('pages lists oldest first with a Link header', async () => {
      for (const n of ['p1', 'p2', 'p3']) await server.repo('paged', n);
      const first = await server.api('GET', '/api/v1/tenants/paged/repos?limit=2', undefined, server.adminToken);
      assert.deepEqual(first.body.map((r: { name: string }) => r.name), ['p1', 'p2']);
      const next = /<([^>]+)>; rel="next"/.exec(first.headers.get('link') ?? '')?.[1];
      assert.ok(next, 'Link rel=next');
      const second = await server.api('GET', new URL(next).pathname + new URL(next).search, undefined, server.adminToken);
      assert.deepEqual(second.body.map((r: { name: string }) => r.name), ['p3']);
      assert.equal(second.headers.get('link'), null);
      assert.equal((await server.api('GET', '/api/v1/tenants/paged/repos?limit=0', undefined, server.adminToken)).status, 422);
      assert.equal((await server.api('GET', '/api/v1/tenants/paged/repos?after=x', undefined, server.adminToken)).status, 422);
    });
  });

  describe('visibility and roles', () => {
    it('a private repo is 404 to a user without a grant, exactly like a missing one; 401 to anonymous for both', async () => {
      const hidden = await server.api('GET', '/api/v1/repos/acme/app', undefined, alice);
      const missing = await server.api('GET', '/api/v1/repos/acme/nope', undefined, alice);
      assert.equal(hidden.status, 404);
      assert.equal(missing.status, 404);
      assert.deepEqual(hidden.body.error.code, missing.body.error.code);
      const anonHidden = await server.api('GET', '/api/v1/repos/acme/app');
      const anonMissing = await server.api('GET', '/api/v1/repos/acme/nope');
      assert.equal(anonHidden.status, 401);
      assert.equal(anonMissing.status, 401);
      assert.equal((await server.api('GET', '/api/v1/tenants/acme/repos', undefined, alice)).status, 404);
      assert.deepEqual((await server.api('GET', '/api/v1/tenants', undefined, alice)).body, []);
    });

    it('a repo grant makes it visible; read may not manage members (403); removing the grant hides it again', async () => {
      const put = await server.api('PUT', '/api/v1/repos/acme/app/members/alice', { role: 'read' }, server.adminToken);
      assert.equal(put.status, 201);
      assert.equal((await server.api('PUT', '/api/v1/repos/acme/app/members/alice', { role: 'read' }, server.adminToken)).status, 200);
      assert.equal((await server.api('GET', '/api/v1/repos/acme/app', undefined, alice)).status, 200);
      assert.deepEqual((await server.api('GET', '/api/v1/tenants/acme/repos', undefined, alice)).body.map((r: { name: string }) => r.name), ['app']);
      const selfPromote = await server.api('PUT', '/api/v1/repos/acme/app/members/alice', { role: 'admin' }, alice);
      assert.equal(selfPromote.status, 403);
      assert.equal((await server.api('PATCH', '/api/v1/repos/acme/app', { archived: true }, alice)).status, 403);
      assert.equal((await server.api('GET', '/api/v1/repos/acme/app/members', undefined, alice)).status, 403, 'readers do not list members');
      const members = await server.api('GET', '/api/v1/repos/acme/app/members', undefined, server.adminToken);
      assert.deepEqual(members.body.map((m: { user: string; role: string }) => [m.user, m.role]), [['alice', 'read']]);
      assert.equal((await server.api('DELETE', '/api/v1/repos/acme/app/members/alice', undefined, server.adminToken)).status, 204);
      assert.equal((await server.api('GET', '/api/v1/repos/acme/app', undefined, alice)).status, 404);
    });

    it('a tenant admin creates repos and manages members in that tenant only', async () => {
      const bob = await server.user('bob');
      assert.equal((await server.api('PUT', '/api/v1/tenants/acme/members/bob', { role: 'admin' }, server.adminToken)).status, 201);
      assert.equal((await server.api('POST', '/api/v1/tenants/acme/repos', { name: 'bobs' }, bob)).status, 201);
      assert.equal((await server.api('PUT', '/api/v1/repos/acme/bobs/members/alice', { role: 'write' }, bob)).status, 201);
      assert.equal((await server.api('POST', '/api/v1/tenants/paged/repos', { name: 'no' }, bob)).status, 404);
      assert.equal((await server.api('POST', '/api/v1/tenants', { name: 'bobco' }, bob)).status, 403);
      assert.equal((await server.api('PUT', '/api/v1/tenants/acme/members/nobody', { role: 'read' }, bob)).status, 404);
      assert.equal((await server.api('PUT', '/api/v1/tenants/acme/members/alice', { role: 'owner' }, bob)).status, 422);
    });

    it('a public repo is readable anonymously, but not writable', async () => {
      await server.repo('acme', 'pub', { public: true });
      assert.equal((await server.api('GET', '/api/v1/repos/acme/pub')).status, 200);
      assert.equal((await server.api('GET', '/api/v1/repos/acme/pub/refs')).status, 200);
      assert.equal((await server.api('PATCH', '/api/v1/repos/acme/pub', { archived: true })).status, 401);
      assert.equal((await server.api('GET', '/api/v1/repos/acme/pub/members')).status, 401, 'anonymous readers do not list members');
    });

    it('only admins create users; users see themselves, not others', async () => {
      assert.equal((await server.api('POST', '/api/v1/users', { name: 'eve' }, alice)).status, 403);
      assert.equal((await server.api('GET', '/api/v1/users/alice', undefined, alice)).status, 200);
      assert.equal((await server.api('GET', '/api/v1/users/admin', undefined, alice)).status, 404);
      assert.equal((await server.api('GET', '/api/v1/user', undefined, alice)).body.name, 'alice');
      assert.equal((await server.api('POST', '/api/v1/users/admin/tokens', {}, alice)).status, 404);
    });
  });

  describe('tokens', () => {
    it('issues, lists (without secrets) and revokes; revocation holds from the next request', async () => {
      const issued = await server.api('POST', '/api/v1/users/alice/tokens', { expires_in: 3600 }, alice);
      assert.equal(issued.status, 201);
      const { id, token } = issued.body;
      assert.equal((await server.api('GET', '/api/v1/user', undefined, token)).status, 200);
      const list = await server.api('GET', '/api/v1/users/alice/tokens', undefined, alice);
      assert.ok(list.body.some((t: { id: string }) => t.id === id));
      assert.ok(!JSON.stringify(list.body).includes(token), 'the token itself is never listed');
      assert.equal((await server.api('DELETE', `/api/v1/users/alice/tokens/${id}`, undefined, alice)).status, 204);
      const after = await server.api('GET', '/api/v1/user', undefined, token);
      assert.equal(after.status, 401);
      assert.equal((await server.api('DELETE', `/api/v1/users/alice/tokens/${id}`, undefined, alice)).status, 404);
    });

    it('refuses expired, tampered, foreign-key, alg:none and garbage tokens with 401', async () => {
      const short = (await server.api('POST', '/api/v1/users/alice/tokens', { expires_in: 1 }, alice)).body.token;
      const claims = jwt.decode(alice) as jwt.JwtPayload;
      const [h, p, sig] = alice.split('.');
      const otherKey = jwt.sign({ sub: claims.sub }, crypto.randomBytes(32), { algorithm: 'HS256', jwtid: claims.jti, issuer: 'cairn', expiresIn: 60 });
      const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
      const adminClaims = Buffer.from(JSON.stringify({ ...claims, sub: '1' })).toString('base64url');
      const tampered = `${h}.${adminClaims}.${sig}`;
      await new Promise((r) => setTimeout(r, 2100));
      for (const [what, bad] of [['expired', short], ['other key', otherKey], ['alg none', none], ['tampered', tampered],
        ['garbage', 'not-a-token'], ['empty sig', `${h}.${p}.`]]) {
        const r = await server.api('GET', '/api/v1/user', undefined, bad);
        assert.equal(r.status, 401, what);
        assert.equal(r.body.error.code, 'unauthenticated', what);
      }
      assert.equal((await server.api('GET', '/api/v1/user', undefined, undefined, { authorization: 'Digest abc' })).status, 401);
      assert.equal((await server.api('GET', '/api/v1/user', undefined, alice)).status, 200, 'the real token still works');
    });

    it('bounds a token minted with a token by its parent: no longer life, revoked with it', async () => {
      const parent = await server.api('POST', '/api/v1/users/alice/tokens', { expires_in: 600 }, alice);
      const child = await server.api('POST', '/api/v1/users/alice/tokens', { expires_in: 300 * 24 * 3600 }, parent.body.token);
      assert.equal(child.status, 201);
      assert.ok(Date.parse(child.body.expires_at) <= Date.parse(parent.body.expires_at), 'the child expires no later than its parent');
      const grandchild = await server.api('POST', '/api/v1/users/alice/tokens', {}, child.body.token);
      assert.equal((await server.api('GET', '/api/v1/user', undefined, grandchild.body.token)).status, 200, 'positive control');
      assert.equal((await server.api('DELETE', `/api/v1/users/alice/tokens/${parent.body.id}`, undefined, alice)).status, 204);
      assert.equal((await server.api('GET', '/api/v1/user', undefined, child.body.token)).status, 401);
      assert.equal((await server.api('GET', '/api/v1/user', undefined, grandchild.body.token)).status, 401);
      assert.equal((await server.api('GET', '/api/v1/user', undefined, alice)).status, 200, 'the token it was minted beside lives on');
    });

    it('refuses bad expiries', async () => {
      for (const expires_in of [0, -5, 1.5, 10 ** 9]) {
        assert.equal((await server.api('POST', '/api/v1/users/alice/tokens', { expires_in }, alice)).status, 422, String(expires_in));
      }
    });
  });

  describe('the OpenAPI document', () => {
    it('is valid OpenAPI and describes exactly the routes the server serves', async () => {
      const doc = await (await fetch(`${server.base}/api/v1/openapi.json`)).json() as { paths: Record<string, object> };
      await SwaggerParser.validate(structuredClone(doc) as never);
      const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
      const served = routes.map((r) => `${r.method.toUpperCase()} ${r.path}`).sort();
      assert.deepEqual(documented, served);
      // Every documented route answers (with anything but "no such route").
      for (const route of served) {
        const [method, p] = route.split(' ');
        const res = await fetch(`${server.base}/api/v1${p.replace(/\{\w+\}/g, 'x')}`, { method, headers: { authorization: `Bearer ${server.adminToken}` },
          body: ['POST', 'PUT', 'PATCH'].includes(method) ? '{}' : undefined });
        const body = await res.json() as { error?: { message: string } };
        assert.ok(!(res.status === 404 && /no such route/.test(body.error?.message ?? '')), `${route} is not served`);
      }
    });

    it('unknown routes are 404 and wrong methods 405, in the error shape', async () => {
      const r = await server.api('GET', '/api/v1/nothing', undefined, server.adminToken);
      assert.equal(r.status, 404);
      assert.equal(r.body.error.code, 'not_found');
      const m = await server.api('PUT', '/api/v1/tenants', {}, server.adminToken);
      assert.equal(m.status, 405);
      assert.match(m.headers.get('allow') ?? '', /GET/);
    });
  });

  it('answers a path that does not decode with 401/404, not a crash', async () => {
    const r = await fetch(`${server.base}/%ZZ/x.git/info/refs?service=git-upload-pack`);
    assert.equal(r.status, 401);
    assert.equal((await fetch(`${server.base}/healthz`)).status, 200);
  });

  it('serves /healthz and /metrics without credentials', async () => {
    assert.equal((await fetch(`${server.base}/healthz`)).status, 200);
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    assert.match(metrics, /cairn_http_requests_total/);
  });
});
