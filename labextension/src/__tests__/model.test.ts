/** OrchestrateModel (src/model.ts): applying the server's events, and notifying about watched runs. */
import { afterEach, beforeEach, describe, expect, it, MockInstance, vi } from 'vitest';

import { api, JobDocument, RunDocument, RunStatus, StreamEvent, TaskRunDocument } from '../api';
import { OrchestrateModel } from '../model';

function taskRun(task_key: string, status: TaskRunDocument['status'] = 'pending'): TaskRunDocument {
  return {
    task_key,
    notebook: `${task_key}.ipynb`,
    depends_on: [],
    status,
    status_reason: null,
    attempt_count: 0,
    duration_seconds: null,
    executed_notebook: null,
    error: null,
    task_values: {},
    attempts: []
  };
}

function run(run_id: number, status: RunStatus = 'running', tasks = ['extract', 'validate']): RunDocument {
  return {
    run_id,
    job: 'repair_demo',
    job_id: 'example_notebooks/repair_demo',
    job_path: '/srv/example_notebooks/repair_demo',
    status,
    status_reason: null,
    start_time: '2026-11-22T00:00:00+00:00',
    end_time: null,
    duration_seconds: null,
    parameters: {},
    repair_count: 0,
    task_runs: tasks.map(t => taskRun(t)),
    repairs: []
  };
}

/** A message of the event stream without its `id` (Omit of each member of the union). */
type Unnumbered<E> = E extends StreamEvent ? Omit<E, 'id'> : never;

let seq = 0;
function event(e: Unnumbered<StreamEvent>): StreamEvent {
  return { id: ++seq, ...e };
}

/** Let pending promise callbacks run. */
const flush = () => new Promise(resolve => setTimeout(resolve, 0));

let getRun: MockInstance<typeof api.getRun>;
let listJobs: MockInstance<typeof api.listJobs>;

beforeEach(() => {
  getRun = vi
    .spyOn(api, 'getRun')
    .mockImplementation(async (id: number) => ({ ...run(id, 'failed'), status_reason: 'from server' }));
  listJobs = vi.spyOn(api, 'listJobs').mockResolvedValue([]);
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('OrchestrateModel.onEvent', () => {
  it('records live progress per run and task and emits changed', () => {
    const model = new OrchestrateModel({ subscribe: false });
    const changed = vi.fn();
    model.changed.connect(changed);
    model.onEvent(event({ type: 'progress', run_id: 3, task_key: 'bronze', attempt_number: 1, cell: 2, total: 5 }));
    model.onEvent(event({ type: 'progress', run_id: 3, task_key: 'silver', attempt_number: 1, cell: 0, total: 4 }));
    model.onEvent(event({ type: 'progress', run_id: 3, task_key: 'bronze', attempt_number: 1, cell: 3, total: 5 }));
    expect(model.progress.get('3/bronze')).toEqual({ cell: 3, total: 5 });
    expect(model.progress.get('3/silver')).toEqual({ cell: 0, total: 4 });
    expect(model.progress.has('4/bronze')).toBe(false);
    expect(changed).toHaveBeenCalledTimes(3);
    expect(getRun).not.toHaveBeenCalled();
  });

  it('updates the status of a known task run', () => {
    const model = new OrchestrateModel({ subscribe: false });
    model.runs.set(2, run(2));
    model.onEvent(
      event({ type: 'task_status', run_id: 2, task_key: 'validate', status: 'running', attempt_number: 1 })
    );
    expect(model.runs.get(2)!.task_runs.map(t => [t.task_key, t.status])).toEqual([
      ['extract', 'pending'],
      ['validate', 'running']
    ]);
    // events of runs or tasks the model does not hold are ignored
    model.onEvent(event({ type: 'task_status', run_id: 9, task_key: 'validate', status: 'failed' }));
    model.onEvent(event({ type: 'task_status', run_id: 2, task_key: 'nope', status: 'failed' }));
    expect(model.runs.has(9)).toBe(false);
    expect(model.runs.get(2)!.task_runs.map(t => t.status)).toEqual(['pending', 'running']);
  });

  it('applies a non-terminal run status without refetching', () => {
    const model = new OrchestrateModel({ subscribe: false });
    model.runs.set(2, run(2, 'queued'));
    model.onEvent(event({ type: 'run_status', run_id: 2, status: 'running' }));
    expect(model.runs.get(2)!.status).toBe('running');
    expect(getRun).not.toHaveBeenCalled();
  });

  it('emits runFinished once, with the refetched run, when a watched run ends', async () => {
    const model = new OrchestrateModel({ subscribe: false });
    model.runs.set(2, run(2));
    model.watched.add(2);
    const finished = vi.fn();
    model.runFinished.connect((_, r) => finished(r));
    model.onEvent(event({ type: 'run_status', run_id: 2, status: 'failed', reason: 'leaf task(s) not successful' }));
    expect(model.runs.get(2)!.status).toBe('failed');
    await flush();
    expect(getRun).toHaveBeenCalledWith(2);
    expect(finished).toHaveBeenCalledTimes(1);
    expect(finished.mock.calls[0][0]).toMatchObject({ run_id: 2, status: 'failed', status_reason: 'from server' });
    expect(model.runs.get(2)!.status_reason).toBe('from server');
    expect(model.watched.has(2)).toBe(false);
    expect(listJobs).toHaveBeenCalled(); // the jobs list (recent runs) is refreshed
    // a duplicate terminal event (e.g. after a reconnect) does not notify again
    model.onEvent(event({ type: 'run_status', run_id: 2, status: 'failed' }));
    await flush();
    expect(finished).toHaveBeenCalledTimes(1);
  });

  it('does not notify about runs that were not started or repaired here', async () => {
    const model = new OrchestrateModel({ subscribe: false });
    const finished = vi.fn();
    model.runFinished.connect(finished);
    model.onEvent(event({ type: 'run_status', run_id: 5, status: 'succeeded' }));
    await flush();
    expect(getRun).toHaveBeenCalledWith(5);
    expect(finished).not.toHaveBeenCalled();
  });

  it('refreshes the jobs list when a run it does not list starts elsewhere (CLI, notebook), once', async () => {
    const model = new OrchestrateModel({ subscribe: false });
    listJobs.mockResolvedValue([
      { job_id: 'jobs/daily', recent_runs: [{ run_id: 4, status: 'running' }] } as unknown as JobDocument
    ]);
    model.onEvent(event({ type: 'run_status', run_id: 4, status: 'running' }));
    await flush();
    expect(listJobs).toHaveBeenCalledTimes(1);
    expect(model.job('jobs/daily')!.recent_runs[0].run_id).toBe(4);
    model.onEvent(event({ type: 'run_status', run_id: 4, status: 'running' })); // listed now: no second fetch
    model.onEvent(event({ type: 'task_status', run_id: 4, task_key: 'a', status: 'running' }));
    await flush();
    expect(listJobs).toHaveBeenCalledTimes(1);
    expect(getRun).not.toHaveBeenCalled();
  });

  it('notifies about runs started through startRun', async () => {
    vi.spyOn(api, 'startRun').mockResolvedValue(run(8));
    const model = new OrchestrateModel({ subscribe: false });
    const finished = vi.fn();
    model.runFinished.connect((_, r) => finished(r.run_id));
    const started = await model.startRun('example_notebooks/repair_demo', { threshold: 0.5 });
    expect(api.startRun).toHaveBeenCalledWith('example_notebooks/repair_demo', { threshold: 0.5 });
    expect(started.run_id).toBe(8);
    expect(model.watched.has(8)).toBe(true);
    expect(model.runs.get(8)!.status).toBe('running');
    model.onEvent(event({ type: 'run_status', run_id: 8, status: 'running' }));
    await flush();
    expect(finished).not.toHaveBeenCalled();
    model.onEvent(event({ type: 'run_status', run_id: 8, status: 'succeeded' }));
    await flush();
    expect(finished).toHaveBeenCalledWith(8);
  });

  it('refetches the shown run once per burst of task events (debounced)', async () => {
    vi.useFakeTimers();
    const model = new OrchestrateModel({ subscribe: false });
    model.view = { kind: 'run', runId: 2 };
    model.runs.set(2, run(2));
    // a burst: events 100 ms apart
    model.onEvent(event({ type: 'task_status', run_id: 2, task_key: 'extract', status: 'running' }));
    await vi.advanceTimersByTimeAsync(100);
    model.onEvent(event({ type: 'task_status', run_id: 2, task_key: 'extract', status: 'succeeded' }));
    await vi.advanceTimersByTimeAsync(100);
    model.onEvent(event({ type: 'task_status', run_id: 2, task_key: 'validate', status: 'running' }));
    // another run's events do not refetch the shown one
    model.onEvent(event({ type: 'task_status', run_id: 3, task_key: 'extract', status: 'running' }));
    expect(getRun).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(300);
    expect(getRun).toHaveBeenCalledTimes(1);
    expect(getRun).toHaveBeenCalledWith(2);
    model.onEvent(event({ type: 'task_status', run_id: 2, task_key: 'validate', status: 'failed' }));
    await vi.advanceTimersByTimeAsync(300);
    expect(getRun).toHaveBeenCalledTimes(2);
  });
});

describe('OrchestrateModel views', () => {
  it('show() switches the view, emits changed and refreshes the shown run', async () => {
    const model = new OrchestrateModel({ subscribe: false });
    const views: string[] = [];
    model.changed.connect(() => views.push(model.view.kind));
    model.show({ kind: 'run', runId: 4 });
    expect(views[0]).toBe('run');
    await flush();
    await flush();
    expect(listJobs).toHaveBeenCalled();
    expect(getRun).toHaveBeenCalledWith(4);
    expect(model.runs.get(4)?.run_id).toBe(4);
  });

  it('keeps the jobs-list error message when the server cannot be reached', async () => {
    listJobs.mockRejectedValue(new Error('cannot reach the server: TypeError'));
    const model = new OrchestrateModel({ subscribe: false });
    await model.refresh();
    expect(model.jobs).toBeNull();
    expect(model.jobsError).toBe('cannot reach the server: TypeError');
    listJobs.mockResolvedValue([]);
    await model.refresh();
    expect(model.jobs).toEqual([]);
    expect(model.jobsError).toBeNull();
  });
});
