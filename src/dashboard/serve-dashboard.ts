import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ApiError } from '../errors.js';

// The web dashboard (web/, docs/dashboard.md) is a set of static files that
// `npm run build` writes to dist/web; this serves them from the api process itself.
// - index.html answers `/` and each of the dashboard's own pages (DASHBOARD_PAGES), so a
//   deep link or a reload lands on the right screen. Only these paths: every other
//   unknown path — above all under /api/v1 and /hooks — stays the API's authenticated
//   JSON 404, and no API route is ever shadowed.
// - index.html is never cached (it names the current assets); assets carry a content
//   hash in their names and are cached for a year, immutable.
// - A Content-Security-Policy allows nothing but this origin's own scripts, styles and
//   fetches: even if data were ever rendered as HTML, no injected script could run.

/** The dashboard's client-side routes (web/src/router.tsx), each served index.html. */
export const DASHBOARD_PAGES = ['/', '/executions', '/executions/:id', '/workflows', '/workflows/:id', '/secrets'] as const;

/** dist/web, both from src/dashboard (tests, tsx) and dist/dashboard (the build). */
export const DEFAULT_DASHBOARD_ROOT = fileURLToPath(new URL('../../dist/web/', import.meta.url));

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const IMMUTABLE = 'public, max-age=31536000, immutable';
const ASSET_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.[a-z0-9]+$/;

function notBuilt(): ApiError {
  return new ApiError('not_found', 'The dashboard is not built on this server: run "npm run build", then restart.');
}

export async function registerDashboard(app: FastifyInstance, root: string = DEFAULT_DASHBOARD_ROOT): Promise<void> {
  const built = existsSync(join(root, 'index.html'));
  // serve: false — only the routes below exist, each declared public and hidden from OpenAPI.
  await app.register(fastifyStatic, { root, serve: false, cacheControl: false, etag: true, lastModified: true });

  const sendIndex = (reply: FastifyReply) => {
    if (!built) throw notBuilt();
    reply.header('cache-control', 'no-cache').header('content-security-policy', CSP).header('referrer-policy', 'no-referrer');
    return reply.sendFile('index.html', root);
  };

  for (const url of DASHBOARD_PAGES) {
    app.get(url, { config: { scope: 'public' }, schema: { hide: true } }, async (_request, reply) => sendIndex(reply));
  }

  app.get<{ Params: { '*': string } }>('/assets/*', { config: { scope: 'public' }, schema: { hide: true } }, async (request, reply) => {
    if (!built) throw notBuilt();
    // The build's assets are flat, hashed file names: anything else (a sub-path, a `..`) is no asset.
    if (!ASSET_NAME.test(request.params['*'])) throw new ApiError('not_found', 'No such dashboard asset.');
    reply.header('cache-control', IMMUTABLE);
    return reply.sendFile(request.params['*'], join(root, 'assets'));
  });
}
