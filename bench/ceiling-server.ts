import Fastify from 'fastify';

// ceiling-http: a bare Fastify 5 route returning a small JSON object, run in its own
// process like SkipFlow is, so both are measured under the same load settings.
const app = Fastify({ logger: false });
app.get('/ping', async () => ({ ok: true, service: 'ceiling', n: 1 }));
const port = Number(process.argv[2]);
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write('ready\n');
