import fs from 'node:fs';
import path from 'node:path';
import { Transform, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { Unpack } from 'tar';
import type { ReadEntry } from 'tar';
import yauzl from 'yauzl';
import { ArchiveError, CALLER_FAULT } from './errors';
import { cleanEntryPath, entryPathProblem, linkTargetProblem } from './paths';

export type UnpackLimits = { maxBytes: number; maxEntries: number };

const badArchive = (why: string) => new ArchiveError(`the archive was refused: ${why}`, 'ArchiveError', { exitCode: CALLER_FAULT });

/** What a downloaded file is, from its first bytes (as Repour asks `file`): gzip, zip or plain tar. */
export function sniffArchive(head: Buffer): 'gzip' | 'zip' | 'tar' | null {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.toString('latin1', 0, 2) === 'PK' && (head[2] === 3 || head[2] === 5)) return 'zip';
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'tar';
  return null;
}

/**
 * Unpacks `file` into the empty dir `into`, refusing the whole archive at the first entry that is not a
 * plain file, directory or inward symlink, or whose path leaves the dir; and past the size or entry limits,
 * counted on what is unpacked (a decompression bomb stops at the limit, not at the end of the disk).
 */
export async function unpackArchive(file: string, into: string, limits: UnpackLimits): Promise<void> {
  const head = Buffer.alloc(512);
  const fd = fs.openSync(file, 'r');
  try { fs.readSync(fd, head, 0, 512, 0); } finally { fs.closeSync(fd); }
  const kind = sniffArchive(head);
  if (kind === null) throw badArchive('not a tar, tar.gz or zip archive');
  if (kind === 'zip') await unpackZip(file, into, limits);
  else await unpackTar(file, into, limits, kind === 'gzip');
}

class ByteLimit extends Transform {
  private seen = 0;
  constructor(private readonly max: number) { super(); }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) { done(badArchive(`it unpacks to more than ${this.max} bytes`)); return; }
    done(null, chunk);
  }
}

async function unpackTar(file: string, into: string, limits: UnpackLimits, gzipped: boolean): Promise<void> {
  const links = new Set<string>();
  let entries = 0; let declared = 0;
  let problem: ArchiveError | null = null;
  const source = fs.createReadStream(file);
  const refuse = (why: string): false => { problem ??= badArchive(why); source.destroy(problem); return false; };
  const unpack = new Unpack({
    cwd: into, strict: true, preserveOwner: false, noMtime: true, preservePaths: false, unlink: false,
    filter: (_p: string, e: ReadEntry | fs.Stats) => {
      const entry = e as ReadEntry;
      if (problem) return false;
      if (++entries > limits.maxEntries) return refuse(`more than ${limits.maxEntries} entries`);
      declared += entry.size ?? 0;
      if (declared > limits.maxBytes) return refuse(`it unpacks to more than ${limits.maxBytes} bytes`);
      const why = entryPathProblem(entry.path, links);
      if (why) return refuse(`${why}: ${JSON.stringify(entry.path.slice(0, 200))}`);
      if (entry.type === 'SymbolicLink') {
        const linkWhy = linkTargetProblem(entry.path, entry.linkpath ?? '');
        if (linkWhy) return refuse(`${linkWhy}: ${JSON.stringify(entry.path.slice(0, 200))}`);
        links.add(cleanEntryPath(entry.path));
        return true;
      }
      if (!['File', 'OldFile', 'ContiguousFile', 'Directory'].includes(entry.type)) {
        return refuse(`a ${entry.type} entry (only files, directories and inward symlinks): ${JSON.stringify(entry.path.slice(0, 200))}`);
      }
      return true;
    },
  });
  unpack.on('warn', (code: string, message: string) => { problem ??= badArchive(`${code}: ${message}`); });
  try {
    const stages: NodeJS.ReadWriteStream[] = gzipped ? [zlib.createGunzip(), new ByteLimit(limits.maxBytes + 1024 * 1024)] : [];
    await (pipeline as (...streams: unknown[]) => Promise<void>)(source, ...stages, unpack);
  } catch (err) {
    if (problem) throw problem;
    if (err instanceof ArchiveError) throw err;
    throw badArchive(`it could not be read (${(err as Error).message.slice(0, 200)})`);
  }
  if (problem) throw problem;
}

const S_IFMT = 0o170000; const S_IFLNK = 0o120000; const S_IFREG = 0o100000; const S_IFDIR = 0o040000;

async function unpackZip(file: string, into: string, limits: UnpackLimits): Promise<void> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true, validateEntrySizes: true, strictFileNames: false, decodeStrings: true },
      (err, z) => (err ? reject(badArchive(`not a readable zip (${err.message})`)) : resolve(z!))));
  const links = new Set<string>();
  let entries = 0; let total = 0;
  const readAll = (entry: yauzl.Entry) => new Promise<Buffer>((resolve, reject) => zip.openReadStream(entry, (err, stream) => {
    if (err) { reject(err); return; }
    const chunks: Buffer[] = [];
    stream!.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
  }));
  try {
    await new Promise<void>((resolve, reject) => {
      const next = async (entry: yauzl.Entry) => {
        if (++entries > limits.maxEntries) throw badArchive(`more than ${limits.maxEntries} entries`);
        total += entry.uncompressedSize;
        if (total > limits.maxBytes) throw badArchive(`it unpacks to more than ${limits.maxBytes} bytes`);
        const why = entryPathProblem(entry.fileName, links);
        if (why) throw badArchive(`${why}: ${JSON.stringify(entry.fileName.slice(0, 200))}`);
        const rel = cleanEntryPath(entry.fileName);
        const mode = (entry.externalFileAttributes >>> 16) & 0xffff;
        const type = mode & S_IFMT;
        const target = path.join(into, rel);
        if (entry.fileName.endsWith('/') || type === S_IFDIR) { if (rel) fs.mkdirSync(target, { recursive: true }); return; }
        if (type !== 0 && type !== S_IFREG && type !== S_IFLNK) throw badArchive(`a special file (mode ${type.toString(8)}): ${JSON.stringify(rel)}`);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        const content = await readAll(entry);
        if (type === S_IFLNK) {
          const linkTo = content.toString('utf8');
          const linkWhy = linkTargetProblem(rel, linkTo);
          if (linkWhy) throw badArchive(`${linkWhy}: ${JSON.stringify(rel)}`);
          fs.symlinkSync(linkTo, target);
          links.add(rel);
          return;
        }
        // flag 'wx': never write through something already there (a symlink above all).
        fs.writeFileSync(target, content, { flag: 'wx', mode: mode & 0o111 ? 0o755 : 0o644 });
      };
      zip.on('entry', (entry: yauzl.Entry) => { next(entry).then(() => zip.readEntry(), reject); });
      zip.on('end', () => resolve());
      zip.on('error', (err: Error) => reject(err instanceof ArchiveError ? err : badArchive(err.message.slice(0, 200))));
      zip.readEntry();
    });
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    throw badArchive(`it could not be read (${(err as Error).message.slice(0, 200)})`);
  } finally {
    zip.close();
  }
}

/** An archive of one top-level directory and nothing else is that directory (Repour "shucks" it). */
export function unwrapSingleDir(dir: string): string {
  const top = fs.readdirSync(dir);
  if (top.length !== 1) return dir;
  const only = path.join(dir, top[0]);
  return fs.lstatSync(only).isDirectory() ? only : dir;
}
