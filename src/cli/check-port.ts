import { once } from 'node:events';
import { createServer } from 'node:net';

// `serve` tries the listen address before it touches the database: a port in use is
// then reported before the first start bootstraps the Default workspace, whose key
// is printed only once — failing after the bootstrap would lose that key. The real
// listen still reports the (rare) race where the port is taken in between.

export async function checkPortFree(port: number, host: string): Promise<void> {
  if (port === 0) return; // any free port will do
  const probe = createServer();
  probe.listen({ port, host, exclusive: true });
  await Promise.race([once(probe, 'listening'), once(probe, 'error').then(([error]) => Promise.reject(error as Error))]);
  probe.close();
  await once(probe, 'close');
}
