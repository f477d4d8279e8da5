import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure } from '../api/client.js';
import type { Schedule, Webhook, Workflow } from '../api/types.js';
import { useApp } from '../app-context.js';
import { ErrorNote, JsonBlock, Section, Unavailable } from '../components/common.js';
import { useLoad } from '../components/use-load.js';
import { formatTime, prettyJson } from '../format.js';
import { locateField, parseFieldPath } from '../json-locate.js';
import { navigate, paths } from '../router.js';

const wfPath = (id: string) => `/workflows/${encodeURIComponent(id)}`;

export function WorkflowScreen({ id }: { id: string }) {
  const { api } = useApp();
  const workflow = useLoad((signal) => api.get<Workflow>(wfPath(id), signal), [api, id]);
  if (workflow.error) {
    return (
      <>
        <h1>Workflow</h1>
        <ErrorNote error={workflow.error} />
      </>
    );
  }
  const w = workflow.value;
  if (!w) return <p class="muted">Loading…</p>;
  return (
    <>
      <h1>{w.name}</h1>
      <p class="muted">
        <span class="mono">{w.id}</span> · updated {formatTime(w.updated_at)}
      </p>
      {w.description ? <p>{w.description}</p> : null}
      <RunForm workflowId={w.id} />
      <Section title="Steps">
        <ol class="timeline">
          {w.steps.map((step, index) => (
            <li class="step" key={index}>
              <div class="step-head">
                <span class="step-index">{index}</span>
                <strong>{step.name ?? step.type}</strong>
                <span class="muted">{step.type}</span>
              </div>
              <JsonBlock label={`Definition of step ${index}`} value={step} />
            </li>
          ))}
        </ol>
      </Section>
      <Schedules workflowId={w.id} />
      <Webhooks workflowId={w.id} />
      <DefinitionEditor workflow={w} onSaved={workflow.reload} />
    </>
  );
}

function RunForm({ workflowId }: { workflowId: string }) {
  const { api, refreshWorkspace } = useApp();
  const [input, setInput] = useState('null');
  const [error, setError] = useState<unknown>(null);
  const run = async (event: Event) => {
    event.preventDefault();
    setError(null);
    let value: unknown;
    try {
      value = input.trim() === '' ? null : JSON.parse(input);
    } catch {
      return setError(new Error('Input is not valid JSON.'));
    }
    try {
      const started = await api.send<{ execution_id: string }>('POST', `${wfPath(workflowId)}/run-async`, { input: value });
      refreshWorkspace();
      navigate(paths.execution(started.execution_id));
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <Section title="Run">
      <form onSubmit={run} class="stack">
        <label for="run-input">Input</label>
        <textarea id="run-input" class="code" rows={4} spellcheck={false} value={input} onInput={(e) => setInput(e.currentTarget.value)} aria-describedby="run-error" />
        <div id="run-error">
          <ErrorNote error={error} />
        </div>
        <div>
          <button type="submit">Run</button>
        </div>
      </form>
    </Section>
  );
}

function Schedules({ workflowId }: { workflowId: string }) {
  const { api } = useApp();
  const list = useLoad((signal) => api.get<{ schedules: Schedule[] }>(`/schedules?workflow_id=${workflowId}&limit=100`, signal), [api, workflowId]);
  return (
    <Section title="Schedules">
      {list.missing ? <Unavailable what="Schedules" /> : null}
      <ErrorNote error={list.error} />
      {list.value && list.value.schedules.length === 0 ? <p class="muted">No schedules.</p> : null}
      {list.value && list.value.schedules.length > 0 ? (
        <table aria-label="Schedules">
          <thead>
            <tr>
              <th scope="col">Cron</th>
              <th scope="col">Time zone</th>
              <th scope="col">Enabled</th>
              <th scope="col">Next runs</th>
              <th scope="col">Last error</th>
            </tr>
          </thead>
          <tbody>
            {list.value.schedules.map((s) => (
              <tr key={s.schedule_id}>
                <td class="mono">{s.cron}</td>
                <td>{s.timezone}</td>
                <td>{s.enabled ? 'yes' : 'no'}</td>
                <td>
                  <ul class="plain">
                    {(s.upcoming && s.upcoming.length > 0 ? s.upcoming : s.next_run_at ? [s.next_run_at] : []).map((t) => (
                      <li key={t}>{formatTime(t)}</li>
                    ))}
                  </ul>
                </td>
                <td>{s.last_error ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}

function Webhooks({ workflowId }: { workflowId: string }) {
  const { api } = useApp();
  const list = useLoad((signal) => api.get<{ webhooks: Webhook[] }>(`/webhooks?workflow_id=${workflowId}&limit=100`, signal), [api, workflowId]);
  return (
    <Section title="Webhooks">
      {list.missing ? <Unavailable what="Webhooks" /> : null}
      <ErrorNote error={list.error} />
      {list.value && list.value.webhooks.length === 0 ? <p class="muted">No webhooks.</p> : null}
      {list.value && list.value.webhooks.length > 0 ? (
        <table aria-label="Webhooks">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">URL</th>
              <th scope="col">Mode</th>
              <th scope="col">Last received</th>
            </tr>
          </thead>
          <tbody>
            {list.value.webhooks.map((h) => (
              <tr key={h.webhook_id}>
                <td>{h.name ?? '—'}</td>
                <td class="mono">{h.url}</td>
                <td>{h.mode ?? 'async'}</td>
                <td>{formatTime(h.last_received_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}

function editable(w: Workflow): string {
  return prettyJson({ name: w.name, description: w.description, steps: w.steps });
}

interface FieldError {
  message: string;
  field: string | null;
  line: number | null;
}

/** The definition as JSON; Save sends it with PUT and shows the API's error beside the field it names. */
function DefinitionEditor({ workflow, onSaved }: { workflow: Workflow; onSaved: () => void }) {
  const { api } = useApp();
  const [text, setText] = useState(() => editable(workflow));
  const [problem, setProblem] = useState<FieldError | null>(null);
  const [saved, setSaved] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  useEffect(() => setText(editable(workflow)), [workflow]);

  const save = async (event: Event) => {
    event.preventDefault();
    setSaved(false);
    setProblem(null);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      return setProblem({ message: `Not valid JSON: ${(error as Error).message}`, field: null, line: null });
    }
    try {
      await api.send('PUT', wfPath(workflow.id), body);
      setSaved(true);
      onSaved();
    } catch (failure) {
      const message = failure instanceof Error ? failure.message : String(failure);
      const named = failure instanceof ApiFailure ? parseFieldPath(message) : null;
      const where = named ? locateField(text, named.path) : null;
      setProblem({ message, field: named?.text ?? null, line: where?.line ?? null });
      if (where && area.current) {
        // Put the caret on the named field, so the error and the field meet.
        area.current.focus();
        area.current.setSelectionRange(where.offset, where.offset);
      }
    }
  };

  const lines = text.split('\n').length;
  return (
    <Section title="Definition">
      <form onSubmit={save} class="stack">
        <label for="definition">Definition (JSON)</label>
        <div class="editor">
          <textarea
            id="definition"
            ref={area}
            class="code"
            rows={Math.min(30, Math.max(8, lines + 1))}
            spellcheck={false}
            value={text}
            aria-invalid={problem ? 'true' : 'false'}
            aria-describedby="definition-error"
            onInput={(e) => setText(e.currentTarget.value)}
          />
          <div id="definition-error" class="field-error" role={problem ? 'alert' : undefined}>
            {problem ? (
              <>
                {problem.field ? (
                  <strong class="mono" data-testid="error-field">
                    {problem.field}
                    {problem.line ? ` (line ${problem.line})` : ''}
                  </strong>
                ) : null}
                <span>{problem.message}</span>
              </>
            ) : null}
          </div>
        </div>
        <div>
          <button type="submit">Save</button> {saved ? <span role="status">Saved.</span> : null}
        </div>
      </form>
    </Section>
  );
}
