import type { ComponentChildren } from 'preact';
import { errorText } from '../api/client.js';
import { prettyJson } from '../format.js';

export function StatusBadge({ status }: { status: string }) {
  return <span class={`status status-${status.replace(/[^a-z_]/g, '')}`}>{status}</span>;
}

/** JSON, pretty-printed as text, folded behind a summary so long results stay out of the way. */
export function JsonBlock({ label, value, open = false }: { label: string; value: unknown; open?: boolean }) {
  return (
    <details class="json" open={open}>
      <summary>{label}</summary>
      <pre>{prettyJson(value)}</pre>
    </details>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

export function Unavailable({ what }: { what: string }) {
  return <p class="muted">{what} are not available on this server.</p>;
}

export function Section({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section aria-label={title}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}
