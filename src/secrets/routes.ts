import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.js';
import { ApiError, invalid, notFound } from '../errors.js';
import { responses } from '../http/responses.js';
import type { SecretKey } from './secret-key.js';
import { MAX_SECRET_BYTES, SECRET_NAME, deleteSecret, listSecrets, putSecret } from './store.js';

// The secrets API: names and times go out, values only come in.

export const SecretView = Type.Object({ name: Type.String(), created_at: Type.String(), updated_at: Type.String() }, { title: 'Secret' });
export const SecretList = Type.Object({ secrets: Type.Array(SecretView), has_more: Type.Boolean({ description: 'always false: this list is not paginated' }) }, { title: 'SecretList' });
export const DeletedSecret = Type.Object({ name: Type.String(), deleted: Type.Literal(true) }, { title: 'DeletedSecret' });
const NameParams = Type.Object({ name: Type.String({ description: 'letters, digits and _, not starting with a digit; at most 64' }) });
const PutBody = Type.Object({ value: Type.String({ minLength: 1, description: `1 B–${MAX_SECRET_BYTES / 1024} KiB of UTF-8` }) }, { additionalProperties: false });

function secretName(name: string): string {
  if (!SECRET_NAME.test(name)) throw invalid(`name: "${name}" is not a secret name; use letters, digits and _, not starting with a digit, at most 64 characters`);
  return name;
}

export function registerSecretRoutes(app: FastifyInstance, deps: AppDeps, key: SecretKey | null): void {
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  const db = deps.db.db;

  typed.put(
    '/api/v1/secrets/:name',
    {
      config: { scope: 'secrets:write' },
      schema: { summary: 'Create or replace a secret', params: NameParams, body: PutBody, response: responses({ 200: SecretView }, ['invalid_request', 'secrets_not_configured', 'insufficient_scope']) },
    },
    async (request) => {
      const name = secretName(request.params.name);
      const { value } = request.body;
      if (Buffer.byteLength(value, 'utf8') > MAX_SECRET_BYTES) throw invalid(`value: a secret is at most ${MAX_SECRET_BYTES} bytes of UTF-8`);
      if (key === null) {
        throw new ApiError('secrets_not_configured', 'This server has no key to encrypt secrets with: the operator must set SKIPFLOW_SECRET_KEY (32 bytes, hex or base64) and restart.');
      }
      return putSecret(db, key.key, { workspaceId: request.auth.workspaceId, name, value, now: deps.clock.now() });
    },
  );

  typed.get(
    '/api/v1/secrets',
    { config: { scope: 'secrets:read' }, schema: { summary: 'List the names of the secrets', response: responses({ 200: SecretList }, ['insufficient_scope']) } },
    async (request) => ({ secrets: await listSecrets(db, request.auth.workspaceId), has_more: false }),
  );

  typed.delete(
    '/api/v1/secrets/:name',
    {
      config: { scope: 'secrets:write' },
      schema: { summary: 'Delete a secret', params: NameParams, response: responses({ 200: DeletedSecret }, ['invalid_request', 'not_found', 'insufficient_scope']) },
    },
    async (request) => {
      const name = secretName(request.params.name);
      if (!(await deleteSecret(db, request.auth.workspaceId, name))) throw notFound('Secret');
      return { name, deleted: true as const };
    },
  );
}
