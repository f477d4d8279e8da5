import { dirname } from 'node:path';
import type { Config } from '../config.js';
import { DatabaseTimeoutError } from './check-database.js';

// Turns whatever stopped `serve` from starting into one line that names the cause
// and what to check. An operator reads it in a terminal or a unit's journal, so it
// is never a stack trace; the raw message is kept at the end for anything unforeseen.

interface SystemError extends Error {
  code?: string;
  syscall?: string;
  path?: string;
  errors?: SystemError[];
}

/** The database as an operator names it, without a password. */
export function describeDatabase(url: string): string {
  if (url.startsWith('sqlite:')) return `the SQLite database ${url.slice('sqlite:'.length)}`;
  try {
    const parsed = new URL(url);
    return `PostgreSQL at ${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return 'PostgreSQL (SKIPFLOW_DATABASE_URL)';
  }
}

const firstLine = (text: string) => text.split('\n', 1)[0]!.trim();

/** `code` of the error, or of the first error an AggregateError (several addresses tried) carries. */
function codeOf(error: SystemError): string | undefined {
  return error.code ?? error.errors?.find((inner) => inner.code)?.code;
}

function listenFailure(error: SystemError, config: Config): string | null {
  const where = `${config.host}:${config.port}`;
  switch (codeOf(error)) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: the port is already in use by another process; stop it or choose another port (PORT or --port)`;
    case 'EACCES':
      return `cannot listen on ${where}: permission denied (ports below 1024 need privileges); choose another port (PORT or --port)`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: ${config.host} is not an address of this machine; check HOST or --host`;
    default:
      return null;
  }
}

function databaseFailure(error: SystemError, config: Config): string | null {
  const database = describeDatabase(config.databaseUrl);
  const code = codeOf(error);
  if (error instanceof DatabaseTimeoutError) {
    return `cannot reach ${database}: it did not answer within ${error.timeoutMs / 1000} s; check the host, the port and the firewall (SKIPFLOW_DATABASE_URL)`;
  }
  if (error.syscall === 'mkdir') {
    return `cannot open ${database}: its directory ${error.path ?? dirname(config.databaseUrl)} cannot be created (${code}); check the path in SKIPFLOW_DATABASE_URL`;
  }
  if (error.name === 'SqliteError' || code?.startsWith('SQLITE_')) {
    return `cannot open ${database}: ${firstLine(error.message)} (${code}); check the path and its permissions in SKIPFLOW_DATABASE_URL`;
  }
  if (code === 'ECONNREFUSED') return `cannot connect to ${database}: connection refused; is PostgreSQL running on that host and port? (SKIPFLOW_DATABASE_URL)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot connect to ${database}: the host name does not resolve (${code}); check SKIPFLOW_DATABASE_URL`;
  if (code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ECONNRESET') {
    return `cannot connect to ${database}: ${code}; check the host, the port and the network (SKIPFLOW_DATABASE_URL)`;
  }
  // PostgreSQL's own refusals carry a SQLSTATE: 28xxx authentication, 3D000 no such database, 57P03 starting up.
  if (code !== undefined && /^(28|3D|57P)/.test(code)) return `${database} refused the connection: ${firstLine(error.message)} (SQLSTATE ${code}); check SKIPFLOW_DATABASE_URL`;
  return null;
}

export function startupFailureMessage(error: unknown, config: Config): string {
  const err = (error instanceof Error ? error : new Error(String(error))) as SystemError;
  const specific = err.syscall === 'listen' ? listenFailure(err, config) : databaseFailure(err, config);
  return specific ?? `start-up failed: ${firstLine(err.message || String(error))}${codeOf(err) ? ` (${codeOf(err)})` : ''}`;
}
