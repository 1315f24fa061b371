/**
 * The one client module: every request of the sidebar to the jupyter-orchestrate REST API goes through here
 * (see docs/api.md). Requests are authenticated by the JupyterLab session (ServerConnection settings).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const API_PATH = 'jupyter-orchestrate/api';

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceling' | 'canceled';
export type TaskRunStatus =
  | 'pending'
  | 'queued'
  | 'running'
  | 'up_for_retry'
  | 'succeeded'
  | 'failed'
  | 'upstream_failed'
  | 'skipped'
  | 'canceled'
  | 'timed_out';

export interface INotebookParameter {
  name: string;
  default: string | null;
  inferred_type: string | null;
  help: string;
}

export interface IEnvironment {
  kernel_name: string | null;
  env: Record<string, string>;
  cwd: string | null;
}

export interface ITask {
  task_key: string;
  notebook: string;
  notebook_path: string | null;
  depends_on: string[];
  run_if: string;
  parameters: Record<string, unknown>;
  environment: IEnvironment;
  kernel_name: string;
  max_retries: number;
  min_retry_interval_seconds: number;
  retry_on_timeout: boolean;
  timeout_seconds: number | null;
  notebook_parameters: INotebookParameter[];
  /** Why the task cannot execute (its runs fail at once), or null. */
  problem?: { stage: string; message: string } | null;
  warnings?: string[];
}

export interface IProblem {
  path: string;
  field: string;
  message: string;
  text?: string;
  /** Set when the problem is one task's: the job still runs, that task fails at once. */
  task_key?: string | null;
  /** `warning`s never stop anything. */
  severity?: 'error' | 'warning';
}

export interface IRunSummary {
  run_id: number;
  status: RunStatus;
  start_time: string;
}

/** A fire of a schedule (its 5 latest are in `ISchedule.recent_fires`, newest first). */
export interface IFire {
  /** The fire time the rule gave (ISO, UTC). */
  scheduled_time: string;
  /** When the scheduler handled it (ISO, UTC). */
  fire_time: string | null;
  status: 'started' | 'queued' | 'skipped' | 'failed' | 'firing';
  run_id: number | null;
  reason: string | null;
}

export type CatchupPolicy = 'none' | 'latest' | 'all';

/** A schedule of a job (job.yaml `schedules:`) with its state, as the job document returns it. */
export interface ISchedule {
  name: string;
  /** Exactly one of `cron` and `every` is set. */
  cron: string | null;
  every: string | null;
  timezone: string;
  paused: boolean;
  parameters: Record<string, unknown>;
  catchup: CatchupPolicy;
  max_catchup_runs: number;
  /** ISO UTC; null while paused (or before the scheduler computed it). */
  next_fire_time: string | null;
  last_fire_time: string | null;
  recent_fires: IFire[];
}

export interface IJob {
  job_id: string;
  name: string;
  path: string;
  valid: boolean;
  problems: IProblem[];
  schedules: ISchedule[];
  recent_runs: IRunSummary[];
  description?: string | null;
  parameters?: Record<string, unknown>;
  max_parallel_tasks?: number | null;
  max_concurrent_runs?: number;
  queue?: boolean;
  edges?: { upstream: string; downstream: string }[];
  tasks?: ITask[];
}

export interface IAttemptError {
  kind: string;
  ename: string;
  evalue: string;
  traceback: string[];
  cell_index: number | null;
  executed_cell_index: number | null;
  cell_source: string | null;
  execution_count: number | null;
}

export interface IAttempt {
  attempt_number: number;
  repair_number: number;
  status: TaskRunStatus;
  start_time: string | null;
  end_time: string | null;
  duration_seconds: number | null;
  executed_notebook: string | null;
  executed_notebook_path: string | null;
  log: string | null;
  parameters: Record<string, unknown>;
  cells_completed: number | null;
  cells_total: number | null;
  environment?: IAttemptEnvironment;
  error: IAttemptError | null;
}

/** What an attempt ran in (variable names only, never values). */
export interface IAttemptEnvironment {
  kernel_name?: string | null;
  python?: string | null;
  package_hash?: string;
  freeze?: string[];
  requirements?: string[];
  env_names?: string[];
  built_now?: boolean;
}

export interface ITaskRun {
  task_key: string;
  notebook: string;
  depends_on: string[];
  status: TaskRunStatus;
  status_reason: string | null;
  attempt_count: number;
  duration_seconds: number | null;
  executed_notebook: string | null;
  error: IAttemptError | null;
  task_values: Record<string, unknown>;
  /** What validation warned about for this task when the run started (no parameters cell, no kernelspec ...). */
  warnings?: string[];
  attempts: IAttempt[];
}

export interface IRepair {
  repair_number: number;
  repair_time: string;
  task_keys: string[];
  reused_task_keys: string[];
  parameters: Record<string, unknown>;
}

export interface IRun {
  run_id: number;
  job: string;
  job_id: string | null;
  job_path: string;
  status: RunStatus;
  status_reason: string | null;
  start_time: string;
  end_time: string | null;
  duration_seconds: number | null;
  parameters: Record<string, unknown>;
  repair_count: number;
  task_runs: ITaskRun[];
  repairs: IRepair[];
  task_statuses?: Record<string, TaskRunStatus>;
}

export interface IRepairPlan {
  run_id: number;
  task_keys: string[];
  reused_task_keys: string[];
  parameters: Record<string, unknown>;
}

export interface IRepairRequest {
  task_keys?: string[] | null;
  rerun_dependents?: boolean;
  parameters?: Record<string, unknown>;
  dry_run?: boolean;
}

/** An event of the server's event stream (GET events). */
export interface IOrchestrateEvent {
  id: number;
  type: 'run_status' | 'task_status' | 'progress';
  run_id: number;
  task_key?: string;
  status?: string;
  reason?: string | null;
  attempt_number?: number;
  cell?: number;
  total?: number;
}

/** An error answer of the API, with the server's message and validation problems. */
export class OrchestrateApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: IProblem[] = []
  ) {
    super(message);
  }
}

/**
 * Call the REST API.
 *
 * @param endPoint path under `jupyter-orchestrate/api/`, e.g. `runs/3`
 * @param init fetch options (method, body)
 * @param settings server connection settings (default: the page's)
 * @returns the parsed JSON body (or text for non-JSON answers)
 * @throws OrchestrateApiError with the server's `message` for non-2xx answers
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_PATH, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new OrchestrateApiError(0, `cannot reach the server: ${error}`);
  }
  const text = await response.text();
  let data: any = text;
  if ((response.headers.get('Content-Type') || '').includes('json') && text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const message = (data && data.message) || response.statusText || `HTTP ${response.status}`;
    throw new OrchestrateApiError(response.status, message, (data && data.problems) || []);
  }
  return data as T;
}

function encodeJobId(jobId: string): string {
  return jobId
    .split('/')
    .map(part => encodeURIComponent(part))
    .join('/');
}

function post(body: unknown): RequestInit {
  return { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } };
}

function scheduleEndpoint(jobId: string, name: string, action: 'pause' | 'resume' | 'trigger'): string {
  return `jobs/${encodeJobId(jobId)}/schedules/${encodeURIComponent(name)}/${action}`;
}

/** Typed calls of every route of docs/api.md. */
export const api = {
  listJobs: () => requestAPI<{ jobs: IJob[] }>('jobs').then(r => r.jobs),
  getJob: (jobId: string) => requestAPI<IJob>(`jobs/${encodeJobId(jobId)}`),
  startRun: (jobId: string, parameters: Record<string, unknown> = {}) =>
    requestAPI<IRun>(`jobs/${encodeJobId(jobId)}/runs`, post({ parameters })),
  listRuns: (query: { job?: string; status?: string; limit?: number; before?: number } = {}) => {
    const params = new URLSearchParams();
    Object.entries(query).forEach(([k, v]) => v !== undefined && params.set(k, String(v)));
    const qs = params.toString();
    return requestAPI<{ runs: IRun[]; next_before: number | null }>(`runs${qs ? `?${qs}` : ''}`);
  },
  getRun: (runId: number) => requestAPI<IRun>(`runs/${runId}`),
  planRepair: (runId: number, request: IRepairRequest = {}) =>
    requestAPI<IRepairPlan>(`runs/${runId}/repair`, post({ ...request, dry_run: true })),
  repair: (runId: number, request: IRepairRequest = {}) =>
    requestAPI<IRun>(`runs/${runId}/repair`, post({ ...request, dry_run: false })),
  cancel: (runId: number) => requestAPI<IRun>(`runs/${runId}/cancel`, post({})),
  attemptLog: (runId: number, taskKey: string, attempt: number) =>
    requestAPI<string>(`runs/${runId}/tasks/${encodeURIComponent(taskKey)}/attempts/${attempt}/log`),
  updateTask: (jobId: string, taskKey: string, changes: Record<string, unknown>) =>
    requestAPI<IJob>(`jobs/${encodeJobId(jobId)}/tasks/${encodeURIComponent(taskKey)}`, {
      method: 'PUT',
      body: JSON.stringify(changes),
      headers: { 'Content-Type': 'application/json' }
    }),
  pauseSchedule: (jobId: string, name: string) =>
    requestAPI<{ schedules: ISchedule[] }>(scheduleEndpoint(jobId, name, 'pause'), post({})).then(r => r.schedules),
  resumeSchedule: (jobId: string, name: string) =>
    requestAPI<{ schedules: ISchedule[] }>(scheduleEndpoint(jobId, name, 'resume'), post({})).then(r => r.schedules),
  /** "Trigger now": a run with the schedule's parameters (201, the run). */
  triggerSchedule: (jobId: string, name: string) => requestAPI<IRun>(scheduleEndpoint(jobId, name, 'trigger'), post({}))
};

/**
 * Subscribe to the server's event stream (Server-Sent Events); reconnects on its own (EventSource).
 *
 * @returns a function that closes the stream
 */
export function subscribeEvents(
  onEvent: (event: IOrchestrateEvent) => void,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): () => void {
  const url = new URL(URLExt.join(settings.baseUrl, API_PATH, 'events'), window.location.href);
  const token = settings.token;
  if (token) {
    url.searchParams.set('token', token);
  }
  const source = new EventSource(url.toString(), { withCredentials: true });
  const handler = (message: MessageEvent) => {
    try {
      onEvent(JSON.parse(message.data) as IOrchestrateEvent);
    } catch {
      // a malformed event is skipped; the next refresh reconciles
    }
  };
  for (const type of ['run_status', 'task_status', 'progress']) {
    source.addEventListener(type, handler as EventListener);
  }
  return () => source.close();
}

/** True once a run can no longer change by itself. */
export function isTerminal(status: RunStatus | TaskRunStatus): boolean {
  return ['succeeded', 'failed', 'canceled', 'upstream_failed', 'skipped', 'timed_out'].includes(status);
}
