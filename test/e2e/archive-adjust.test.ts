import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { commit, git, must, startTestServer, TestServer, tmpDir, workTree } from '../harness';
import { archiveToken, freePort, originServer, repour } from './archive-helpers';

describe('archive: /repour/adjust, /clone, /internal-scm, /git-external-to-internal (issue 5 points 2, 3, 5)', () => {
  let server: TestServer; let token: string; let port: number; let upstream: string; let scripts: string;
  let plainGit: { url: string; close(): void }; let gitRoot: string;
  let internalUrl: { readwrite: string; readonly: string };
  const originUrl = (repo = 'lib') => `http://127.0.0.1:${port}/upstream/${repo}.git`;
  const admin = () => ({ user: 'admin', token: server.adminToken });
  const pwned = path.join(tmpDir('cairn-pwned-'), 'pwned');

  before(async () => {
    scripts = tmpDir('cairn-adjusters-');
    fs.writeFileSync(path.join(scripts, 'mvn.sh'), '#!/bin/sh\nset -e\necho "adjusted for $CAIRN_BUILD_TYPE" >> README\nprintf "%s" "$CAIRN_ADJUST_PARAMETERS" > params.json\n', { mode: 0o755 });
    fs.writeFileSync(path.join(scripts, 'versioned.sh'), '#!/bin/sh\nset -e\nprintf "%s" "$CAIRN_ADJUST_PARAMETERS" > params.json\n' +
      'echo \'{"VersioningState":{"executionRootModified":{"groupId":"g","artifactId":"a","version":"1.0.0.redhat-00001"}},"RemovedRepositories":[]}\' > "$CAIRN_ADJUST_RESULT"\n', { mode: 0o755 });
    port = await freePort();
    gitRoot = tmpDir('cairn-plain-git-');
    plainGit = await originServer(tmpDir('cairn-no-files-'), gitRoot);
    server = await startTestServer({ CAIRN_HTTP_PORT: String(port), CAIRN_ARCHIVE_ALLOWED_ORIGINS: `http://127.0.0.1:${port}/upstream/,${plainGit.url}/git/`,
      CAIRN_ARCHIVE_ADJUSTERS: JSON.stringify({ MVN: path.join(scripts, 'mvn.sh'), NOOP: 'true', VERSIONED: path.join(scripts, 'versioned.sh'),
        FAIL: 'echo broken >&2; exit 3' }) });
    token = await archiveToken(server);
    await server.repo('upstream', 'lib', { public: true });
    upstream = await workTree(server.url('upstream/lib', admin()));
    await commit(upstream, 'README', 'lib\n');
    await must(git(upstream, 'tag', '-a', '-m', 'release', 'v1'));
    await must(git(upstream, 'push', '-q', 'origin', 'main', 'v1'));
    // The same project as an upstream that rewrote its history (Cairn never lets one do that, so it is
    // another repository): another main, another v1.
    await server.repo('upstream', 'lib-rewritten', { public: true });
    const rewritten = await workTree(server.url('upstream/lib-rewritten', admin()), 'rewritten');
    await commit(rewritten, 'README', 'rewritten\n');
    await must(git(rewritten, 'tag', '-a', '-m', 'moved', 'v1'));
    await must(git(rewritten, 'push', '-q', 'origin', 'main', 'v1'));
  });
  after(async () => { plainGit.close(); await server.stop(); });

  const call = (endpoint: string, body: Record<string, unknown>) => repour(server, token, endpoint, body);
  const upstreamHead = async () => (await must(git(upstream, 'rev-parse', 'HEAD'))).stdout.trim();
  const repo = () => server.repoDir('archive/lib');

  it('/internal-scm makes the archive repository once, then finds it', async () => {
    const r = await call('internal-scm', { project: 'lib', owner_groups: ['builders'] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, 'SUCCESS_CREATED');
    assert.equal(r.body.readonly_url, `${server.base}/archive/lib.git`);
    internalUrl = { readwrite: r.body.readwrite_url, readonly: r.body.readonly_url };
    const again = await call('internal-scm', { project: 'lib', owner_groups: ['builders'] });
    assert.equal(again.body.status, 'SUCCESS_ALREADY_EXISTS');
    assert.equal((await server.api('GET', '/api/v1/repos/archive/lib', undefined, server.adminToken)).status, 200);
    const events = await server.api('GET', '/api/v1/events?repo=archive/lib', undefined, server.adminToken);
    assert.deepEqual(events.body.map((e: { event: string }) => e.event), ['repo.created'], 'made by the API\'s own code path');
  });

  let first: any;
  it('syncs the ref, runs the adjuster, commits on top of the upstream commit, tags it on a branch', async () => {
    const r = await call('adjust', { ref: 'main', internal_url: internalUrl, originRepoUrl: originUrl(), sync: true, buildType: 'MVN',
      adjustParameters: { ALIGNMENT_PARAMETERS: '-Dx=$(touch ' + pwned + ')' }, taskId: 'task-1', tempBuild: false });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    first = r.body;
    const head = await upstreamHead();
    assert.equal(r.body.upstream_commit, head);
    assert.equal(r.body.is_ref_revision_internal, false);
    assert.deepEqual(r.body.adjustResultData, {});
    assert.equal(r.body.tag, `repour-${r.body.commit}`);
    assert.deepEqual(r.body.url, internalUrl);
    assert.equal((await must(git(repo(), 'rev-parse', `${r.body.commit}^`))).stdout.trim(), head, 'the parent is the upstream commit');
    assert.equal((await must(git(repo(), 'show', `${r.body.tag}:README`))).stdout, 'lib\nadjusted for MVN\n');
    assert.equal(JSON.parse((await must(git(repo(), 'show', `${r.body.tag}:params.json`))).stdout).ALIGNMENT_PARAMETERS, `-Dx=$(touch ${pwned})`);
    assert.ok(!fs.existsSync(pwned), 'caller values reach the adjuster as data, never as shell');
    const refs = await server.diskRefs('archive/lib');
    assert.equal(refs.get('refs/heads/main'), head, 'the branch was synced');
    assert.equal(refs.get(`refs/heads/branch-repour-${r.body.tag}-${r.body.commit}`), r.body.commit);
    assert.equal((await must(git(repo(), 'cat-file', '-t', `refs/tags/${r.body.tag}`))).stdout.trim(), 'tag');
  });

  it('runs the adjuster in the sandbox: an origin\'s symlink cannot make it write outside, or read Cairn\'s keys', async (t) => {
    if (spawnSync('bwrap', ['--ro-bind', '/', '/', '--unshare-pid', '--proc', '/proc', '--dev', '/dev', 'true']).status !== 0) {
      t.skip('bubblewrap cannot run here');
      return;
    }
    const target = path.join(tmpDir('cairn-outside-'), 'target');
    fs.writeFileSync(target, 'untouched\n');
    await server.repo('upstream', 'evil', { public: true });
    const evil = await workTree(server.url('upstream/evil', admin()));
    fs.symlinkSync(target, path.join(evil, 'README'));
    fs.symlinkSync(path.join(server.keysDir, 'secrets.key'), path.join(evil, 'key'));
    await must(git(evil, 'add', 'README', 'key'));
    await must(git(evil, 'commit', '-q', '-m', 'links out'));
    await must(git(evil, 'push', '-q', 'origin', 'main'));
    const scm = await call('internal-scm', { project: 'evil', owner_groups: ['builders'] });
    const r = await call('adjust', { ref: 'main', internal_url: { readwrite: scm.body.readwrite_url, readonly: scm.body.readonly_url },
      originRepoUrl: originUrl('evil'), sync: true, buildType: 'MVN', taskId: 'evil-1' });
    assert.equal(fs.readFileSync(target, 'utf8'), 'untouched\n', JSON.stringify(r.body).slice(0, 400));
    assert.ok(!JSON.stringify(r.body).includes(fs.readFileSync(path.join(server.keysDir, 'secrets.key')).toString('base64').slice(0, 16)));
  });

  it('gives the same request twice the same tag and commit, creating nothing', async () => {
    const before = await server.diskRefs('archive/lib');
    const r = await call('adjust', { ref: 'main', internal_url: internalUrl, originRepoUrl: originUrl(), sync: true, buildType: 'MVN',
      adjustParameters: { ALIGNMENT_PARAMETERS: '-Dx=$(touch ' + pwned + ')' }, taskId: 'task-1', tempBuild: false });
    assert.deepEqual(r.body, first);
    assert.deepEqual(await server.diskRefs('archive/lib'), before);
  });

  it('without sync, takes the ref from the internal repository and answers the tag its tree already has', async () => {
    const r = await call('adjust', { ref: 'main', internal_url: internalUrl, buildType: 'MVN',
      adjustParameters: { ALIGNMENT_PARAMETERS: '-Dx=$(touch ' + pwned + ')' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.tag, r.body.commit, r.body.is_ref_revision_internal], [first.tag, first.commit, true]);
  });

  it('with sync, takes a ref the origin lacks from the internal repository', async () => {
    const r = await call('adjust', { ref: first.tag, internal_url: internalUrl, originRepoUrl: originUrl(), sync: true, buildType: 'NOOP' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.upstream_commit, r.body.is_ref_revision_internal, r.body.commit], [first.commit, true, first.commit]);
  });

  it('tags the upstream commit itself when the adjuster changes nothing; a commit id syncs as repour-sync-<sha>', async () => {
    const head = await upstreamHead();
    const r = await call('adjust', { ref: head, internal_url: internalUrl, originRepoUrl: originUrl(), sync: true, buildType: 'NOOP' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.commit, r.body.tag, r.body.upstream_commit], [head, `repour-${head}`, head]);
    const refs = await server.diskRefs('archive/lib');
    assert.equal(refs.get(`refs/tags/repour-sync-${head}`), head);
    assert.equal(refs.get(`refs/heads/branch-repour-repour-${head}-${head}`), head);
  });

  it("names the tag after the adjuster's version; a name taken by another tree gets -<first 8 of commit>", async () => {
    const a = await call('adjust', { ref: 'v1', internal_url: internalUrl, originRepoUrl: originUrl(), sync: true, buildType: 'VERSIONED',
      adjustParameters: { n: 1 } });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.tag, '1.0.0.redhat-00001');
    assert.equal(a.body.adjustResultData.VersioningState.executionRootModified.version, '1.0.0.redhat-00001');
    assert.equal((await server.diskRefs('archive/lib')).has('refs/tags/v1'), true, 'the upstream tag was synced');
    const b = await call('adjust', { ref: 'v1', internal_url: internalUrl, buildType: 'VERSIONED', adjustParameters: { n: 2 } });
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.equal(b.body.tag, `1.0.0.redhat-00001-${b.body.commit.slice(0, 8)}`);
    assert.notEqual(b.body.commit, a.body.commit);
    assert.equal((await must(git(repo(), 'rev-parse', '1.0.0.redhat-00001^{commit}'))).stdout.trim(), a.body.commit, 'the first never moved');
  });

  it('/pull with adjust: the adjusted commit on top of the pulled one, the pull result beside it', async () => {
    const r = await call('pull', { name: 'pulled', type: 'git', url: originUrl(), ref: 'main', adjust: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const plain = await call('pull', { name: 'pulled', type: 'git', url: originUrl(), ref: 'main' });
    assert.deepEqual(r.body.pull, plain.body);
    const id = /^repour-([0-9a-f]{40})$/.exec(r.body.tag)?.[1];
    assert.equal(r.body.branch, `branch-adjust-${id}`);
    const dir = server.repoDir('archive/pulled');
    assert.equal((await must(git(dir, 'rev-parse', `${id}^`))).stdout.trim(), plain.body.tag.slice('repour-'.length));
    assert.equal((await must(git(dir, 'show', `${r.body.tag}:README`))).stdout, 'lib\nadjusted for MVN\n');
    const again = await call('pull', { name: 'pulled', type: 'git', url: originUrl(), ref: 'main', adjust: true });
    assert.deepEqual(again.body, r.body);
  });

  it('gives identical adjusts at the same moment one tag and no error', async () => {
    const before = await server.diskRefs('archive/lib');
    const body = { ref: 'main', internal_url: internalUrl, buildType: 'MVN', adjustParameters: { race: true } };
    const answers = await Promise.all([1, 2, 3].map(() => call('adjust', body)));
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(new Set(answers.map((a) => JSON.stringify(a.body))).size, 1);
    assert.equal((await server.diskRefs('archive/lib')).size, before.size + 2, 'one tag, one branch');
  });

  it('adjusts a pull request without syncing it; its tag says Pull_Request-', async () => {
    // A plain git server that keeps GitHub's pull-request refs.
    const bare = path.join(gitRoot, 'gh.git');
    await must(git(gitRoot, 'init', '-q', '--bare', bare));
    const pr = await workTree(bare, 'base');
    await commit(pr, 'README', 'base\n');
    await must(git(pr, 'push', '-q', 'origin', 'HEAD:refs/heads/main'));
    const prCommit = await commit(pr, 'README', 'base\nproposed change\n');
    await must(git(pr, 'push', '-q', 'origin', 'HEAD:refs/pull/7/head'));
    const before = await server.diskRefs('archive/lib');
    const r = await call('adjust', { ref: 'pull/7', internal_url: internalUrl, originRepoUrl: `${plainGit.url}/git/gh.git`, sync: true, buildType: 'MVN' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.upstream_commit, prCommit);
    assert.equal(r.body.tag, `Pull_Request-repour-${r.body.commit}`);
    assert.equal((await must(git(repo(), 'rev-parse', `${r.body.commit}^`))).stdout.trim(), prCommit);
    const added = [...(await server.diskRefs('archive/lib')).keys()].filter((ref) => !before.has(ref)).sort();
    assert.deepEqual(added, [`refs/heads/branch-repour-${r.body.tag}-${r.body.commit}`, `refs/tags/${r.body.tag}`], 'the pull request itself is not synced');
    const missing = await call('adjust', { ref: 'pull/8', internal_url: internalUrl, originRepoUrl: `${plainGit.url}/git/gh.git`, sync: true, buildType: 'MVN' });
    assert.deepEqual([missing.status, missing.body.exit_code], [400, 10]);
  });

  it('answers processing errors in Repour\'s shape: the adjuster\'s own exit code, 10 for the caller\'s faults', async () => {
    const failed = await call('adjust', { ref: 'main', internal_url: internalUrl, buildType: 'FAIL' });
    assert.equal(failed.status, 400);
    assert.deepEqual({ ...failed.body, error_traceback: 'x' }, { desc: 'the adjuster for FAIL failed', error_type: 'AdjustCommandError',
      error_traceback: 'x', cmd: ['/bin/sh', '-c', 'echo broken >&2; exit 3'], exit_code: 3, stderr: 'broken\n' });
    const unknownType = await call('adjust', { ref: 'main', internal_url: internalUrl, buildType: 'GRADLE' });
    assert.deepEqual([unknownType.status, unknownType.body.exit_code], [400, 10]);
    const unknownRef = await call('adjust', { ref: 'nope', internal_url: internalUrl, buildType: 'MVN' });
    assert.deepEqual([unknownRef.status, unknownRef.body.exit_code], [400, 10]);
    assert.match(unknownRef.body.desc, /do not have the 'nope' present/);
    const before = await server.diskRefs('archive/lib');
    const badUrl = await call('adjust', { ref: 'main', internal_url: internalUrl, buildType: 'MVN',
      adjustParameters: { ALIGNMENT_PARAMETERS: `-DrepoUrl=${originUrl()} -Dmirror=http://169.254.169.254/latest` } });
    assert.deepEqual([badUrl.status, badUrl.body.exit_code], [400, 10]);
    assert.equal(badUrl.body.desc, 'Non-authorized urls used in adjust parameters: http://169.254.169.254/latest');
    assert.deepEqual(await server.diskRefs('archive/lib'), before, 'refused before anything ran');
    const optionRef = await call('adjust', { ref: '--output=/tmp/x', internal_url: internalUrl, buildType: 'MVN' });
    assert.deepEqual([optionRef.status, optionRef.body.exit_code], [400, 10], 'a ref is never read as an option');
    const foreign = await call('adjust', { ref: 'main', internal_url: { readwrite: server.url('upstream/lib'), readonly: server.url('upstream/lib') }, buildType: 'MVN' });
    assert.deepEqual([foreign.status, foreign.body.exit_code], [400, 10], 'only archive repositories are the archive\'s to write');
  });

  it('never forces: a rewritten upstream branch is refused and the archive keeps its history', async () => {
    const before = await server.diskRefs('archive/lib');
    const r = await call('adjust', { ref: 'main', internal_url: internalUrl, originRepoUrl: originUrl('lib-rewritten'), sync: true, buildType: 'MVN' });
    assert.deepEqual([r.status, r.body.exit_code], [400, 10], JSON.stringify(r.body));
    assert.match(r.body.desc, /CAIRN_NON_FAST_FORWARD refs\/heads\/main/);
    assert.deepEqual(await server.diskRefs('archive/lib'), before);
  });

  it('/clone copies everything into a new target, then a ref, never forcing; it answers the request', async () => {
    const target = `${server.base}/archive/lib-copy.git`;
    const upstreamRefs = await server.diskRefs('upstream/lib');
    const first = await call('clone', { type: 'git', ref: 'v1', originRepoUrl: originUrl(), targetRepoUrl: target });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body, { type: 'git', ref: 'v1', originRepoUrl: originUrl(), targetRepoUrl: target });
    assert.deepEqual(await server.diskRefs('archive/lib-copy'), upstreamRefs, 'a new target gets every branch and tag, as in Repour');
    const head = upstreamRefs.get('refs/heads/main')!;
    const bySha = await call('clone', { type: 'git', ref: head, originRepoUrl: originUrl(), targetRepoUrl: target });
    assert.equal(bySha.status, 200, JSON.stringify(bySha.body));
    const copied = await server.diskRefs('archive/lib-copy');
    assert.deepEqual([...copied].filter(([ref]) => !upstreamRefs.has(ref)), [[`refs/tags/repour-sync-${head}`, head]], 'a commit id becomes repour-sync-<sha>');
    const again = await call('clone', { type: 'git', originRepoUrl: originUrl(), targetRepoUrl: target });
    assert.equal(again.status, 200, 'nothing new: nothing to write, no error');
    // An upstream that moved its tag and rewrote its branch: the archive refuses rather than follow.
    const moved = await call('clone', { type: 'git', originRepoUrl: originUrl('lib-rewritten'), targetRepoUrl: target });
    assert.deepEqual([moved.status, moved.body.exit_code], [400, 10], JSON.stringify(moved.body));
    assert.match(moved.body.desc, /CAIRN_TAG_IMMUTABLE refs\/tags\/v1/);
    assert.deepEqual(await server.diskRefs('archive/lib-copy'), copied);
    const foreign = await call('clone', { type: 'git', originRepoUrl: originUrl(), targetRepoUrl: server.url('upstream/lib-rewritten') });
    assert.deepEqual([foreign.status, foreign.body.exit_code], [400, 10], 'only archive repositories are targets');
  });

  it('/git-external-to-internal maps an external URL to its archive repository; an unsupported one is a 500', async () => {
    for (const ext of ['https://github.com/myproject/myrepo.git', 'http://github.com/myproject/myrepo/', 'git+ssh://github.com/myproject/myrepo.git',
      'ssh://git@github.com/myproject/myrepo.git', 'git@github.com:myproject/myrepo.git', 'git@github.com/myproject/myrepo']) {
      const r = await call('git-external-to-internal', { external_url: ext });
      assert.equal(r.status, 200, ext);
      assert.match(r.body.internal_url, /\/archive\/myproject-myrepo\.git$/, ext);
      assert.equal(r.body.external_url, ext);
    }
    for (const bad of ['://github.com/a/b', 'github.com/a/b', 'sh://github.com/a/b']) {
      const r = await call('git-external-to-internal', { external_url: bad });
      assert.equal(r.status, 500, bad);
      assert.deepEqual(Object.keys(r.body).sort(), ['error_traceback', 'error_type']);
    }
  });

  it('counts requests per endpoint and errors at /metrics', async () => {
    const text = await (await fetch(`${server.base}/metrics`)).text();
    assert.match(text, /cairn_repour_request_duration_seconds_count\{endpoint="adjust"\} \d+/);
    assert.match(text, /cairn_repour_errors_total\{kind="400"\} \d+/);
    assert.match(text, /cairn_repour_errors_total\{kind="500"\} \d+/);
  });
});
