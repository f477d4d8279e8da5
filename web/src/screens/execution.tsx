import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiFailure } from '../api/client.js';
import type { Delivery, Execution, Step } from '../api/types.js';
import { useApp } from '../app-context.js';
import { ErrorNote, JsonBlock, Section, StatusBadge, Unavailable } from '../components/common.js';
import { useLoad } from '../components/use-load.js';
import { describeTrigger, formatDuration, formatTime, spanMs } from '../format.js';
import { followExecution } from '../live/execution-stream.js';
import { Link, navigate, paths } from '../router.js';

const path = (id: string) => `/executions/${encodeURIComponent(id)}`;

function mergeStep(steps: Step[] | undefined, step: Step): Step[] {
  const list = [...(steps ?? [])];
  const at = list.findIndex((s) => s.index === step.index);
  if (at === -1) list.push(step);
  else list[at] = { ...list[at], ...step };
  return list.sort((a, b) => a.index - b.index);
}

export function ExecutionScreen({ id }: { id: string }) {
  const { api, refreshWorkspace } = useApp();
  const [execution, setExecution] = useState<Execution | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [round, setRound] = useState(0);
  const reload = useCallback(() => setRound((r) => r + 1), []);

  useEffect(() => {
    const controller = new AbortController();
    api.get<Execution>(`${path(id)}?include_step_results=true`, controller.signal).then(
      (value) => !controller.signal.aborted && (setExecution(value), setError(null)),
      (failure: unknown) => !controller.signal.aborted && setError(failure),
    );
    return () => controller.abort();
  }, [api, id, round]);

  // Live while it runs: steps and status from the event stream, then one full reload.
  const running = execution?.status === 'running';
  useEffect(() => {
    if (!running) return;
    const controller = new AbortController();
    void followExecution(api, id, controller.signal, {
      onExecution: (next) => {
        setExecution((current) => ({ ...(current ?? next), ...next, steps: current?.steps ?? next.steps }));
        // It ended: this effect is about to close the stream; read the final state once.
        if (next.status !== 'running') reload();
      },
      onStep: (step) => {
        setExecution((current) => (current ? { ...current, steps: mergeStep(current.steps, step) } : current));
        // A waiting approval shows on the execution, not on the step frame.
        if (step.type === 'approval') reload();
      },
      onEnd: reload,
    });
    return () => controller.abort();
  }, [api, id, running, reload]);

  const act = async (method: 'POST', url: string, body?: unknown): Promise<unknown> => {
    setActionError(null);
    try {
      const result = await api.send<unknown>(method, url, body);
      reload();
      refreshWorkspace();
      return result;
    } catch (failure) {
      setActionError(failure instanceof ApiFailure && failure.routeMissing ? new Error('This server does not offer that action.') : failure);
      return null;
    }
  };

  if (error) {
    return (
      <>
        <h1>Execution</h1>
        <ErrorNote error={error} />
      </>
    );
  }
  if (!execution) return <p class="muted">Loading…</p>;

  return (
    <>
      <h1>
        Execution <span class="mono">{execution.execution_id}</span>
      </h1>
      <dl class="facts">
        <dt>Status</dt>
        <dd data-testid="execution-status">
          <StatusBadge status={execution.status} />
        </dd>
        <dt>Workflow</dt>
        <dd>
          <Link href={paths.workflow(execution.workflow_id)}>{execution.workflow_name}</Link>
        </dd>
        <dt>Trigger</dt>
        <dd>{describeTrigger(execution.trigger)}</dd>
        <dt>Started</dt>
        <dd>{formatTime(execution.started_at)}</dd>
        <dt>Completed</dt>
        <dd>{formatTime(execution.completed_at)}</dd>
        <dt>Duration</dt>
        <dd>{execution.status === 'running' ? 'running' : formatDuration(spanMs(execution.started_at, execution.completed_at))}</dd>
        {execution.retry_of ? (
          <>
            <dt>Retry of</dt>
            <dd>
              <Link href={paths.execution(execution.retry_of)} class="mono">
                {execution.retry_of}
              </Link>
            </dd>
          </>
        ) : null}
        {execution.error ? (
          <>
            <dt>Error</dt>
            <dd class="error-text">
              {execution.error}
              {execution.error_code ? ` (${execution.error_code})` : ''}
            </dd>
          </>
        ) : null}
      </dl>
      <Actions execution={execution} act={act} />
      <ErrorNote error={actionError} />
      {execution.waiting_for?.type === 'approval' ? <Approval execution={execution} act={act} /> : null}
      <JsonBlock label="Input" value={execution.input} />
      <Section title="Steps">
        <ol class="timeline">
          {(execution.steps ?? []).map((step) => (
            <StepItem key={step.index} step={step} />
          ))}
        </ol>
      </Section>
      <Deliveries executionId={execution.execution_id} status={execution.status} />
    </>
  );
}

type Act = (method: 'POST', url: string, body?: unknown) => Promise<unknown>;

function Actions({ execution, act }: { execution: Execution; act: Act }) {
  const [from, setFrom] = useState<'failed_step' | 'start'>('failed_step');
  const retryable = execution.status === 'failed' || execution.status === 'stopped';
  const retry = async () => {
    const started = (await act('POST', `${path(execution.execution_id)}/retry`, { from })) as { execution_id?: string } | null;
    if (started?.execution_id) navigate(paths.execution(started.execution_id));
  };
  return (
    <div class="actions">
      {execution.status === 'running' ? (
        <button type="button" onClick={() => void act('POST', `${path(execution.execution_id)}/stop`)}>
          Stop
        </button>
      ) : null}
      {retryable ? (
        <>
          <div class="field">
            <label for="retry-from">Retry from</label>
            <select id="retry-from" value={from} onChange={(e) => setFrom(e.currentTarget.value as typeof from)}>
              <option value="failed_step">the failed step</option>
              <option value="start">the start</option>
            </select>
          </div>
          <button type="button" onClick={() => void retry()}>
            Retry
          </button>
        </>
      ) : null}
    </div>
  );
}

function Approval({ execution, act }: { execution: Execution; act: Act }) {
  const waiting = execution.waiting_for!;
  const [comment, setComment] = useState('');
  const url = (decision: string) => `${path(execution.execution_id)}/steps/${waiting.step_index}/${decision}`;
  const body = comment ? { comment } : {};
  return (
    <section class="approval" aria-label="Waiting for approval">
      <h2>Waiting for approval</h2>
      <p>{waiting.message ?? ''}</p>
      <p class="muted">Step {waiting.step_index} · expires {formatTime(waiting.expires_at)}</p>
      <label for="approval-comment">Comment</label>
      <textarea id="approval-comment" rows={2} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
      <div class="actions">
        <button type="button" onClick={() => void act('POST', url('approve'), body)}>
          Approve
        </button>
        <button type="button" onClick={() => void act('POST', url('reject'), body)}>
          Reject
        </button>
      </div>
    </section>
  );
}

function StepItem({ step }: { step: Step }) {
  const duration = step.duration_ms ?? spanMs(step.started_at, step.completed_at);
  return (
    <li class={`step step-${step.status.replace(/[^a-z_]/g, '')}`} data-step-index={step.index}>
      <div class="step-head">
        <span class="step-index">{step.index}</span>
        <strong>{step.name ?? step.type}</strong>
        <span class="muted">{step.type}</span>
        <StatusBadge status={step.status} />
        {step.reused ? <span class="tag">reused</span> : null}
      </div>
      <div class="step-facts muted">
        attempts {step.attempts} · duration {step.status === 'pending' ? '—' : formatDuration(duration)}
        {step.progress ? ` · ${step.progress.completed}/${step.progress.total} items` : ''}
      </div>
      {step.error ? (
        <p class="error-text">
          {step.error}
          {step.error_code ? ` (${step.error_code})` : ''}
        </p>
      ) : null}
      {step.status === 'completed' || step.result !== null ? <JsonBlock label={`Result of step ${step.index}`} value={step.result} /> : null}
    </li>
  );
}

function Deliveries({ executionId, status }: { executionId: string; status: string }) {
  const { api } = useApp();
  const [note, setNote] = useState<unknown>(null);
  const list = useLoad((signal) => api.get<{ deliveries: Delivery[] }>(`${path(executionId)}/deliveries`, signal), [api, executionId, status]);
  const redeliver = async (deliveryId: string) => {
    setNote(null);
    try {
      await api.send('POST', `/deliveries/${encodeURIComponent(deliveryId)}/redeliver`);
      list.reload();
    } catch (failure) {
      setNote(failure);
    }
  };
  return (
    <Section title="Deliveries">
      {list.missing ? <Unavailable what="Notifications" /> : null}
      <ErrorNote error={list.error ?? note} />
      {list.value && list.value.deliveries.length === 0 ? <p class="muted">No notifications were sent for this execution.</p> : null}
      {list.value && list.value.deliveries.length > 0 ? (
        <table aria-label="Deliveries">
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">Endpoint</th>
              <th scope="col">Status</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last answer</th>
              <th scope="col">Next attempt</th>
              <th scope="col">Delivered</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.value.deliveries.map((d) => (
              <tr key={d.delivery_id} data-delivery-id={d.delivery_id}>
                <td>{d.event}</td>
                <td class="mono">{d.endpoint_id}</td>
                <td>
                  <StatusBadge status={d.status} />
                </td>
                <td>{d.attempts}</td>
                <td>{d.last_status_code ?? d.last_error ?? '—'}</td>
                <td>{formatTime(d.next_attempt_at)}</td>
                <td>{formatTime(d.delivered_at)}</td>
                <td>
                  <button type="button" onClick={() => void redeliver(d.delivery_id)}>
                    Redeliver
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}
