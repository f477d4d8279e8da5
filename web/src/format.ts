// Plain-text formatting of API values. Everything the screens show goes through Preact
// text nodes, so none of this needs (or does) any escaping.

export function formatTime(timestamp: string | null | undefined): string {
  if (!timestamp) return '—';
  return timestamp.replace('T', ' ').replace(/\+00:00$|Z$/, ' UTC');
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Between two API timestamps (seconds precision), or until now while running. */
export function spanMs(start: string | null | undefined, end: string | null | undefined, now = Date.now()): number | null {
  if (!start) return null;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : now;
  return Number.isNaN(from) || Number.isNaN(to) ? null : Math.max(0, to - from);
}

export function describeTrigger(trigger: { type: string; [field: string]: unknown } | undefined): string {
  if (!trigger) return '—';
  switch (trigger.type) {
    case 'retry':
      return `retry of ${String(trigger.execution_id ?? '')}`;
    case 'workflow':
      return `sub-workflow of ${String(trigger.execution_id ?? '')}`;
    default:
      return trigger.type;
  }
}

export function prettyJson(value: unknown): string {
  return JSON.stringify(value, null, 2) ?? 'null';
}
