import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiFailure } from '../api/client.js';

// Loads one thing from the API for a screen: its value, its error, and whether the
// server lacks the route altogether (then the screen shows the feature as unavailable).

export interface Loaded<T> {
  value: T | null;
  error: unknown;
  missing: boolean;
  loading: boolean;
  reload(): void;
}

export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ value: T | null; error: unknown; missing: boolean; loading: boolean }>({ value: null, error: null, missing: false, loading: true });
  const [round, setRound] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(controller.signal).then(
      (value) => !controller.signal.aborted && setState({ value, error: null, missing: false, loading: false }),
      (error: unknown) => {
        if (controller.signal.aborted) return;
        const missing = error instanceof ApiFailure && error.routeMissing;
        setState({ value: null, error: missing ? null : error, missing, loading: false });
      },
    );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { ...state, reload };
}
