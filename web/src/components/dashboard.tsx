import { useCallback, useMemo, useState } from 'preact/hooks';
import { createApi } from '../api/client.js';
import { forgetKey, storedKey } from '../api/session.js';
import type { Workspace } from '../api/types.js';
import { App } from '../app-context.js';
import { Link, matchRoute, usePath } from '../router.js';
import { ExecutionScreen } from '../screens/execution.js';
import { ExecutionsScreen } from '../screens/executions.js';
import { SecretsScreen } from '../screens/secrets.js';
import { WorkflowScreen } from '../screens/workflow.js';
import { WorkflowsScreen } from '../screens/workflows.js';
import { SignIn } from './sign-in.js';
import { useLoad } from './use-load.js';

export function Dashboard() {
  const [key, setKey] = useState<string | null>(storedKey());
  const signOut = useCallback(() => {
    forgetKey();
    setKey(null);
  }, []);
  if (!key) return <SignIn onSignedIn={setKey} />;
  return <SignedIn apiKey={key} onSignOut={signOut} />;
}

function SignedIn({ apiKey, onSignOut }: { apiKey: string; onSignOut: () => void }) {
  const api = useMemo(() => createApi(apiKey, onSignOut), [apiKey, onSignOut]);
  const path = usePath();
  const workspace = useLoad((signal) => api.get<Workspace>('/workspace', signal), [api, path]);
  const context = useMemo(() => ({ api, refreshWorkspace: workspace.reload }), [api, workspace.reload]);
  const route = matchRoute(path);
  const section = route.screen.startsWith('execution') ? 'executions' : route.screen.startsWith('workflow') ? 'workflows' : route.screen;

  return (
    <App.Provider value={context}>
      <header class="top">
        <strong class="brand">SkipFlow</strong>
        <nav aria-label="Main">
          <Link href="/executions" aria-current={section === 'executions' ? 'page' : undefined}>
            Executions
          </Link>
          <Link href="/workflows" aria-current={section === 'workflows' ? 'page' : undefined}>
            Workflows
          </Link>
          <Link href="/secrets" aria-current={section === 'secrets' ? 'page' : undefined}>
            Secrets
          </Link>
        </nav>
        <span class="workspace" aria-live="polite">
          {workspace.value ? (
            <>
              {workspace.value.name} · <span data-testid="credits">Credits: {workspace.value.credits}</span>
            </>
          ) : null}
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main>
        <Screen route={route} />
      </main>
    </App.Provider>
  );
}

function Screen({ route }: { route: ReturnType<typeof matchRoute> }) {
  switch (route.screen) {
    case 'executions':
      return <ExecutionsScreen />;
    case 'execution':
      return <ExecutionScreen key={route.id} id={route.id} />;
    case 'workflows':
      return <WorkflowsScreen />;
    case 'workflow':
      return <WorkflowScreen key={route.id} id={route.id} />;
    case 'secrets':
      return <SecretsScreen />;
    default:
      return (
        <>
          <h1>Not found</h1>
          <p>
            No such page. <Link href="/executions">Go to the executions</Link>.
          </p>
        </>
      );
  }
}
