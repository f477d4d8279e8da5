import { useState } from 'preact/hooks';
import type { Secret } from '../api/types.js';
import { useApp } from '../app-context.js';
import { ErrorNote, Unavailable } from '../components/common.js';
import { useLoad } from '../components/use-load.js';
import { formatTime } from '../format.js';

const secretPath = (name: string) => `/secrets/${encodeURIComponent(name)}`;

export function SecretsScreen() {
  const { api } = useApp();
  const list = useLoad((signal) => api.get<{ secrets: Secret[] }>('/secrets', signal), [api]);
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);

  const run = async (what: () => Promise<unknown>, message: string) => {
    setError(null);
    setDone(null);
    try {
      await what();
      setDone(message);
      list.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  const set = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      await api.send('PUT', secretPath(name.trim()), { value });
      setValue('');
    }, `Secret ${name.trim()} set.`);
  };

  if (list.missing) {
    return (
      <>
        <h1>Secrets</h1>
        <Unavailable what="Secrets" />
      </>
    );
  }
  return (
    <>
      <h1>Secrets</h1>
      <p class="muted">Values are write-only: once set, no screen or response shows them again.</p>
      <form class="filters" onSubmit={set}>
        <div class="field">
          <label for="secret-name">Name</label>
          <input id="secret-name" value={name} pattern="[A-Za-z_][A-Za-z0-9_]{0,63}" required autocomplete="off" onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="secret-value">Value</label>
          <input id="secret-value" type="password" value={value} required autocomplete="new-password" onInput={(e) => setValue(e.currentTarget.value)} />
        </div>
        <button type="submit">Set</button>
      </form>
      <ErrorNote error={error ?? list.error} />
      {done ? <p role="status">{done}</p> : null}
      <table aria-label="Secrets">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Created</th>
            <th scope="col">Updated</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(list.value?.secrets ?? []).map((s) => (
            <tr key={s.name} data-secret={s.name}>
              <td class="mono">{s.name}</td>
              <td>{formatTime(s.created_at)}</td>
              <td>{formatTime(s.updated_at)}</td>
              <td>
                <button type="button" onClick={() => void run(() => api.send('DELETE', secretPath(s.name)), `Secret ${s.name} deleted.`)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.value && list.value.secrets.length === 0 ? <p class="muted">No secrets yet.</p> : null}
    </>
  );
}
