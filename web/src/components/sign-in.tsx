import { useState } from 'preact/hooks';
import { verifyKey } from '../api/client.js';
import { storeKey } from '../api/session.js';
import { ErrorNote } from './common.js';

export function SignIn({ onSignedIn }: { onSignedIn: (key: string) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) return setError(new Error('Paste an API key (sk_live_…).'));
    setBusy(true);
    try {
      await verifyKey(trimmed);
      storeKey(trimmed);
      onSignedIn(trimmed);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="sign-in">
      <h1>SkipFlow</h1>
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autocomplete="off" spellcheck={false} value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        <ErrorNote error={error} />
        <p class="muted">The key stays in this tab only (session storage) and is sent to this server alone.</p>
      </form>
    </main>
  );
}
