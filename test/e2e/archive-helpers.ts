import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import { TestServer } from '../harness';

/** A port nobody listens on now (the server is started on it, so the allow-list can name it beforehand). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function archiveToken(server: TestServer): Promise<string> {
  const t = await server.api('POST', '/api/v1/users/admin/tokens', { permissions: ['archive'] }, server.adminToken);
  if (t.status !== 201) throw new Error(JSON.stringify(t.body));
  return t.body.token;
}

export type RepourAnswer = { status: number; body: any };

export async function repour(server: TestServer, token: string | null, endpoint: string, body: unknown): Promise<RepourAnswer> {
  const res = await fetch(`${server.base}/repour/${endpoint}`, { method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : text };
}

type Entry = { name: string; type?: '0' | '2' | '1' | '3' | '5' | '6'; content?: string | Buffer; link?: string; mode?: number };

/** A ustar archive written byte by byte, so a test can make the hostile entries no tar tool would write. */
export function tarball(entries: Entry[], gzip = true): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.content ?? '');
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100, 'utf8');
    h.write(((e.mode ?? (e.type === '5' ? 0o755 : 0o644)).toString(8)).padStart(7, '0') + '\0', 100);
    h.write('0000000\0', 108); h.write('0000000\0', 116);
    h.write(body.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write(e.type ?? '0', 156);
    if (e.link) h.write(e.link, 157, 100, 'utf8');
    h.write('ustar\u000000', 257, 'latin1');
    let sum = 0; for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const tar = Buffer.concat(blocks);
  return gzip ? zlib.gzipSync(tar) : tar;
}

/**
 * A local origin for archives and misbehaving servers: files under /files/, a server that never answers
 * (/hang…), one that is not git (/notgit…), an endless body (/endless), redirects (/redirect?to=URL).
 */
export async function originServer(dir: string, gitRoot?: string): Promise<{ url: string; close(): void }> {
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (gitRoot && u.pathname.startsWith('/git/')) { httpBackend(gitRoot, u, req, res); return; }
    if (u.pathname.startsWith('/hang')) { held.push(res); return; }
    if (u.pathname.startsWith('/notgit')) { res.setHeader('content-type', 'text/html'); res.end('<html>hello</html>'); return; }
    if (u.pathname === '/redirect') { res.statusCode = 302; res.setHeader('location', u.searchParams.get('to')!); res.end(); return; }
    if (u.pathname === '/endless') {
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => { while (res.write(chunk)) { /* until the socket pushes back */ } };
      res.on('drain', pump); res.on('error', () => undefined); pump();
      return;
    }
    const file = path.join(dir, decodeURIComponent(u.pathname.replace(/^\/files\//, '')));
    if (!u.pathname.startsWith('/files/') || !fs.existsSync(file)) { res.statusCode = 404; res.end(); return; }
    res.end(fs.readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return { url, close: () => { for (const r of held) r.destroy(); server.closeAllConnections(); server.close(); } };
}

/**
 * Plain git over HTTP (git http-backend as a CGI) for repositories under `root`: an origin that, unlike
 * Cairn, lets the test rewrite history and keep pull-request refs.
 */
function httpBackend(root: string, u: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
  const child = spawn('git', ['http-backend'], { env: { PATH: process.env.PATH, HOME: root, GIT_PROJECT_ROOT: root, GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: decodeURIComponent(u.pathname.slice('/git'.length)), QUERY_STRING: u.search.slice(1), REQUEST_METHOD: req.method!,
    CONTENT_TYPE: String(req.headers['content-type'] ?? ''), HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
    GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''), REMOTE_ADDR: '127.0.0.1' } });
  req.pipe(child.stdin);
  const out: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.on('close', () => {
    const all = Buffer.concat(out);
    const sep = all.indexOf('\r\n\r\n');
    for (const line of all.subarray(0, sep).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      const [name, value] = [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
      if (name.toLowerCase() === 'status') res.statusCode = parseInt(value, 10); else res.setHeader(name, value);
    }
    res.end(all.subarray(sep + 4));
  });
}

/** A zip (stored, no compression) written byte by byte, unix modes in the external attributes. */
export function zipball(entries: { name: string; content?: string; mode: number }[]): Buffer {
  const locals: Buffer[] = []; const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name); const data = Buffer.from(e.content ?? '');
    const crc = zlib.crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18); local.writeUInt32LE(data.length, 22); local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0); central.writeUInt16LE((3 << 8) | 20, 4); central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16); central.writeUInt32LE(data.length, 20); central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28); central.writeUInt32LE((e.mode << 16) >>> 0, 38); central.writeUInt32LE(offset, 42);
    locals.push(local, name, data); centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}
