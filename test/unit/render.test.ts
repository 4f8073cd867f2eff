import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { toApiRepo } from '../../server/transport/http/api/render';
import type { ApiDeps } from '../../server/transport/http/api/route';

describe('repository URLs', () => {
  const repo = { id: 1, tenantId: 1, tenantName: 'acme', name: 'app', isPublic: false, isArchived: false, createdAt: '2026-11-22T00:00:00Z' };
  const deps = (publicUrl: string) => ({ publicUrl: () => publicUrl, sshPort: () => 2222 }) as unknown as ApiDeps;
  it('puts the public URL\'s host, and the SSH port, in ssh_url; an IPv6 address once bracketed', () => {
    assert.equal(toApiRepo(deps('http://git.example.com:8080'), repo).ssh_url, 'ssh://git@git.example.com:2222/acme/app.git');
    assert.equal(toApiRepo(deps('http://[::1]:8080'), repo).ssh_url, 'ssh://git@[::1]:2222/acme/app.git');
    assert.equal(toApiRepo(deps('http://[::1]:8080'), repo).http_url, 'http://[::1]:8080/acme/app.git');
  });
});
