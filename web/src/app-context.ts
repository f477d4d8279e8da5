import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Api } from './api/client.js';

export interface AppContext {
  api: Api;
  /** Re-reads the workspace (credits) after something that spends or frees them. */
  refreshWorkspace(): void;
}

export const App = createContext<AppContext | null>(null);

export function useApp(): AppContext {
  const context = useContext(App);
  if (!context) throw new Error('useApp outside a signed-in dashboard');
  return context;
}
