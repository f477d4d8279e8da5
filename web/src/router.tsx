import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

// A tiny history router: the path is the state, links push it, Back/Forward pop it. The
// server answers every path below with the same index.html (src/dashboard/), so a deep
// link or a reload lands on the same screen.

export type Route =
  | { screen: 'executions' }
  | { screen: 'execution'; id: string }
  | { screen: 'workflows' }
  | { screen: 'workflow'; id: string }
  | { screen: 'secrets' }
  | { screen: 'not-found' };

export function matchRoute(path: string): Route {
  const parts = path.replace(/\/+$/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [head, id, ...rest] = parts;
  if (rest.length > 0) return { screen: 'not-found' };
  if (head === undefined) return { screen: 'executions' };
  if (head === 'executions') return id === undefined ? { screen: 'executions' } : { screen: 'execution', id };
  if (head === 'workflows') return id === undefined ? { screen: 'workflows' } : { screen: 'workflow', id };
  if (head === 'secrets' && id === undefined) return { screen: 'secrets' };
  return { screen: 'not-found' };
}

const listeners = new Set<() => void>();

export function navigate(path: string): void {
  if (path === location.pathname + location.search) return;
  history.pushState(null, '', path);
  for (const listener of listeners) listener();
}

export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    listeners.add(update);
    addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', update);
    };
  }, []);
  return path;
}

/** An ordinary link (keyboard, middle click, "open in new tab" all work) that navigates in place. */
export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' | undefined }) {
  const { href, children, ...rest } = props;
  const onClick = (event: MouseEvent) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return (
    <a {...rest} href={href} onClick={onClick}>
      {children}
    </a>
  );
}

export const paths = {
  execution: (id: string) => `/executions/${encodeURIComponent(id)}`,
  workflow: (id: string) => `/workflows/${encodeURIComponent(id)}`,
};
