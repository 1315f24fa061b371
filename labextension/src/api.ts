/**
 * The one client module: every request of the sidebar to the jupyter-orchestrate REST API goes through here
 * (see docs/api.md). Requests are authenticated by the JupyterLab session (ServerConnection settings).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const API_PATH = 'jupyter-orchestrate/api';

import type {
  ErrorDocument,
  ErrorProblem,
  JobDocument,
  JobListDocument,
  LiveKernelDocument,
  RepairPlanDocument,
  RepairRequest,
  RunDocument,
  RunListDocument,
  RunStatus,
  SchedulesDocument,
  StartRunRequest,
  TaskSettingsCheckRequest,
  TaskSettingsDocument,
  TrendsDocument,
  Trigger
} from './documents';
import { isTerminal } from './status';

// The documents' types are generated from the server's models (src/documents.ts); re-exported for the views.
export type * from './documents';
export { isTerminal };

/** An error answer of the API, with the server's message and validation problems. */
export class OrchestrateApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: ErrorProblem[] = []
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
  let data: unknown = text;
  if ((response.headers.get('Content-Type') || '').includes('json') && text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const error = typeof data === 'object' && data !== null ? (data as Partial<ErrorDocument>) : {};
    const message = error.message || response.statusText || `HTTP ${response.status}`;
    throw new OrchestrateApiError(response.status, message, error.problems || []);
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

/** The filters and paging of `GET runs` (every field optional; absent or empty: not filtered). */
export interface IRunQuery {
  job?: string;
  status?: RunStatus;
  trigger?: Trigger;
  since?: string;
  until?: string;
  limit?: number;
  before?: number;
}

/** Typed calls of every route of docs/api.md. */
export const api = {
  listJobs: () => requestAPI<JobListDocument>('jobs').then(r => r.jobs),
  getJob: (jobId: string) => requestAPI<JobDocument>(`jobs/${encodeJobId(jobId)}`),
  /** The job's trends over its last `limit` runs (1..500). */
  jobTrends: (jobId: string, limit = 50) =>
    requestAPI<TrendsDocument>(`jobs/${encodeJobId(jobId)}/trends?limit=${encodeURIComponent(String(limit))}`),
  startRun: (jobId: string, parameters: Record<string, unknown> = {}) =>
    requestAPI<RunDocument>(`jobs/${encodeJobId(jobId)}/runs`, post({ parameters } satisfies StartRunRequest)),
  /** A page of runs newest first (`next_before` is the next page's `before`); `since`/`until` are ISO times. */
  listRuns: (query: IRunQuery = {}) => {
    const params = new URLSearchParams();
    Object.entries(query).forEach(([k, v]) => v !== undefined && v !== '' && params.set(k, String(v)));
    const qs = params.toString();
    return requestAPI<RunListDocument>(`runs${qs ? `?${qs}` : ''}`);
  },
  getRun: (runId: number) => requestAPI<RunDocument>(`runs/${runId}`),
  planRepair: (runId: number, request: RepairRequest = {}) =>
    requestAPI<RepairPlanDocument>(`runs/${runId}/repair`, post({ ...request, dry_run: true })),
  repair: (runId: number, request: RepairRequest = {}) =>
    requestAPI<RunDocument>(`runs/${runId}/repair`, post({ ...request, dry_run: false })),
  cancel: (runId: number) => requestAPI<RunDocument>(`runs/${runId}/cancel`, post({})),
  /** Register the task's kept kernel with the Jupyter server: its id in `/api/kernels` (409 when none is kept). */
  liveKernel: (runId: number, taskKey: string) =>
    requestAPI<LiveKernelDocument>(`runs/${runId}/tasks/${encodeURIComponent(taskKey)}/kernel`, post({})),
  attemptLog: (runId: number, taskKey: string, attempt: number) =>
    requestAPI<string>(`runs/${runId}/tasks/${encodeURIComponent(taskKey)}/attempts/${attempt}/log`),
  updateTask: (jobId: string, taskKey: string, changes: Record<string, unknown>) =>
    requestAPI<JobDocument>(`jobs/${encodeJobId(jobId)}/tasks/${encodeURIComponent(taskKey)}`, {
      method: 'PUT',
      body: JSON.stringify(changes),
      headers: { 'Content-Type': 'application/json' }
    }),
  /** Check a task settings change without writing it: the notebook's resulting `metadata.orchestrate`. */
  checkTaskSettings: (jobId: string, taskKey: string, request: TaskSettingsCheckRequest) =>
    requestAPI<TaskSettingsDocument>(
      `jobs/${encodeJobId(jobId)}/tasks/${encodeURIComponent(taskKey)}/validate`,
      post(request)
    ),
  pauseSchedule: (jobId: string, name: string) =>
    requestAPI<SchedulesDocument>(scheduleEndpoint(jobId, name, 'pause'), post({})).then(r => r.schedules),
  resumeSchedule: (jobId: string, name: string) =>
    requestAPI<SchedulesDocument>(scheduleEndpoint(jobId, name, 'resume'), post({})).then(r => r.schedules),
  /** "Trigger now": a run with the schedule's parameters (201, the run). */
  triggerSchedule: (jobId: string, name: string) =>
    requestAPI<RunDocument>(scheduleEndpoint(jobId, name, 'trigger'), post({}))
};
