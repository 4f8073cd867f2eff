import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/**
 * The reference server: git's own http-backend behind nginx + fcgiwrap on loopback, installed with apt
 * when missing. Same git binary, same repositories, no Cairn.
 */
export type Reference = { port: number; url: (repo: string) => string; pushUrl: (repo: string) => string; stop(): void };

export function ensureInstalled(): void {
  aptInstall(['nginx', 'fcgiwrap'].filter((p) => spawnSync('sh', ['-c', `command -v ${p} || test -x /usr/sbin/${p}`]).status !== 0));
}

/** Installs Debian packages the bench needs, once, with sudo when not root. */
export function aptInstall(missing: string[]): void {
  if (missing.length === 0) return;
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  process.stderr.write(`bench: installing ${missing.join(' ')} with apt-get\n`);
  for (const args of [['apt-get', 'update', '-qq'], ['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing]]) {
    const r = spawnSync(sudo[0] ?? args[0], sudo.length ? args : args.slice(1), { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed`);
  }
}

/** Resolves once something accepts connections on the port (up to 2 s). */
export async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

export async function startReference(projectRoot: string, workDir: string, fcgiChildren: number): Promise<Reference> {
  const port = await freePort();
  const sock = path.join(workDir, 'fcgiwrap.sock');
  const backend = fs.existsSync('/usr/lib/git-core/git-http-backend') ? '/usr/lib/git-core/git-http-backend'
    : path.join(spawnSync('git', ['--exec-path']).stdout.toString().trim(), 'git-http-backend');
  const fcgi: ChildProcess = spawn('/usr/sbin/fcgiwrap', ['-c', String(fcgiChildren), '-s', `unix:${sock}`], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
  const conf = path.join(workDir, 'nginx.conf');
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  const backendParams = (pathInfo: string, remoteUser: string) => `
      fastcgi_pass unix:${sock};
      fastcgi_buffering off;
      fastcgi_request_buffering off;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME ${backend};
      fastcgi_param GIT_PROJECT_ROOT ${projectRoot};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO ${pathInfo};
      fastcgi_param GIT_PROTOCOL $http_git_protocol;
      ${remoteUser}`;
  fs.writeFileSync(conf, `${user}
worker_processes 2;
daemon off;
pid ${workDir}/nginx.pid;
error_log ${workDir}/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${workDir}/body;
  fastcgi_temp_path ${workDir}/fastcgi;
  proxy_temp_path ${workDir}/proxy;
  uwsgi_temp_path ${workDir}/uwsgi;
  scgi_temp_path ${workDir}/scgi;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:${port};
    # Pushes need credentials here as on Cairn, so both pay the same 401 round trip git makes before it sends them.
    location ~ ^/auth(/.*)$ {
      auth_basic "git";
      auth_basic_user_file ${workDir}/htpasswd;${backendParams('$1', 'fastcgi_param REMOTE_USER $remote_user;')}
    }
    location / {${backendParams('$uri', '')}
    }
  }
}
`);
  fs.writeFileSync(path.join(workDir, 'htpasswd'), 'bench:{PLAIN}secret\n');
  const nginx: ChildProcess = spawn('/usr/sbin/nginx', ['-c', conf, '-p', workDir], { stdio: 'ignore' });
  await waitForPort(port);
  return {
    port,
    url: (repo) => `http://127.0.0.1:${port}/${repo}.git`,
    pushUrl: (repo) => `http://bench:secret@127.0.0.1:${port}/auth/${repo}.git`,
    stop() { nginx.kill('SIGTERM'); fcgi.kill('SIGTERM'); },
  };
}
