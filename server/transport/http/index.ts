import http from 'node:http';
import Koa from 'koa';
import { CairnError } from '../../errors';
import { metrics, registry } from '../../metrics';
import { apiRouter, API_PREFIX } from './api';
import type { ApiDeps } from './api';
import { matchGitPath, serveGitHttp } from './git';
import { ARTIFACTS_PREFIX, serveArtifacts } from './artifacts';
import { COMPOSES_PREFIX, ODCS_PREFIX, serveComposeFiles, serveOdcs } from './odcs';
import { REPOUR_PREFIX, serveRepour } from './repour';

export type { ApiDeps } from './api';
export { openApiDocument, routes, API_PREFIX } from './api';
export { createRepo } from './api/repos';

/** The HTTP face: /healthz, /metrics, smart HTTP git and the REST API, with one place where errors become responses. */
export function createHttpApp(deps: ApiDeps): Koa {
  const app = new Koa();
  const log = deps.log.child({ mod: 'http' });
  const router = apiRouter(deps);

  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    const kind = ctx.path.startsWith(API_PREFIX) ? 'api' : ctx.path.startsWith(ARTIFACTS_PREFIX) ? 'artifacts' : ctx.path.startsWith(ODCS_PREFIX) ? 'odcs' : matchGitPath(ctx.path) ? 'git' : 'other';
    try {
      await next();
    } catch (err) {
      // Refusals are the caller's business; anything else is our bug, so log it whole.
      if (!(err instanceof CairnError) || err.status >= 500) log.error({ err, path: ctx.path }, 'unhandled error');
      const e = err instanceof CairnError ? err : new CairnError('internal', 'internal error');
      ctx.status = e.status;
      ctx.set(e.headers);
      // git prints a text/plain error body to the user as "remote: …"; JSON it would swallow.
      if (kind === 'git') { ctx.type = 'text/plain'; ctx.body = `${e.message}\n`; } else ctx.body = e.toBody();
    } finally {
      metrics.httpRequests.inc({ kind, status: String(ctx.status) });
      metrics.httpDuration.observe({ kind }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  });

  app.use(async (ctx, next) => {
    if (ctx.path === '/healthz' && ctx.method === 'GET') { ctx.body = { status: 'ok' }; return; }
    if (ctx.path === '/metrics' && ctx.method === 'GET') {
      ctx.type = registry.contentType;
      ctx.body = await registry.metrics();
      return;
    }
    if (ctx.path.startsWith(ARTIFACTS_PREFIX)) return serveArtifacts(ctx, deps);
    if (ctx.path.startsWith(ODCS_PREFIX)) return serveOdcs(ctx, deps, deps.composeDeps);
    if (ctx.path.startsWith(COMPOSES_PREFIX)) return serveComposeFiles(ctx, deps);
    if (ctx.path === REPOUR_PREFIX || ctx.path.startsWith(`${REPOUR_PREFIX}/`)) return serveRepour(ctx, deps);
    const gitPath = matchGitPath(ctx.path);
    if (gitPath) return serveGitHttp(ctx, deps, gitPath);
    return next();
  });

  app.use(router.routes());
  app.use(async (ctx) => {
    // A known path with another method is 405, anything else 404, both in the contract's error shape.
    const matched = router.match(ctx.path, ctx.method);
    if (matched.path.length > 0) {
      const allowed = [...new Set(matched.path.flatMap((l) => l.methods))].filter((m) => m !== 'HEAD').join(', ');
      throw new CairnError('method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}`, { Allow: allowed });
    }
    throw new CairnError('not_found', `no such route: ${ctx.method} ${ctx.path}`);
  });
  return app;
}

export async function listenHttp(app: Koa, port: number, host: string): Promise<http.Server> {
  const server = http.createServer(app.callback());
  // Pushes can be long uploads; git itself has no idle gaps longer than this.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  return server;
}
