import type { Context } from 'koa';
import type { Knex } from '../../../db';
import type { Config } from '../../../config';
import type { Logger } from '../../../log';
import type { Principal, SecretBox } from '../../../auth';
import type { HookServer } from '../../hook';
import type { Pipelines } from '../../../pipelines';
import type { ComposeWorker, ComposeDeps } from '../../../composes';
import type { Archive } from '../../../archive';

/** What every route handler is handed: wiring is explicit, there are no globals. */
export type ApiDeps = {
  config: Config;
  db: Knex;
  log: Logger;
  signingKey: Buffer;
  secrets: SecretBox;
  gitEnv: NodeJS.ProcessEnv;
  hooks: HookServer;
  pipelines: Pipelines;
  composes: ComposeWorker;
  composeDeps: ComposeDeps;
  /** The base of URLs the API returns: CAIRN_PUBLIC_URL, or the bound address. */
  publicUrl: () => string;
  sshPort: () => number;
  /** The archive (Repour) API served at /repour. */
  archive?: Archive;
};

export type JsonSchema = Record<string, unknown>;

export type ApiRequest = {
  params: Record<string, string>;
  query: Record<string, string | string[] | undefined>;
  body: any;
  principal: Principal;
  deps: ApiDeps;
  ctx: Context;
};
export type ApiResponse = { status: number; body?: unknown; headers?: Record<string, string> };

/** One route: how it is served and how the OpenAPI document describes it come from this one object. */
export type Route = {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** OpenAPI form, relative to /api/v1: `/repos/{tenant}/{repo}`. */
  path: string;
  summary: string;
  /** Who may call it, in words, for the document. */
  access: string;
  body?: JsonSchema;
  /** The body may also come as YAML (`application/yaml`). */
  yaml?: boolean;
  paged?: boolean;
  responses: Record<number, { description: string; schema?: JsonSchema }>;
  handler: (req: ApiRequest) => Promise<ApiResponse>;
};
