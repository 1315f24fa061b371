/**
 * OrchestrateModel: the sidebar's state (jobs, the open job or run, live progress) fed by the REST API and
 * the server's run events on jupyter_server's event bus (./channel). Views subscribe to `changed`; nothing polls in a tight loop (a slow 30 s
 * refresh reconciles anything an event stream reconnect missed).
 */
import type { Event } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { api, JobDocument, RunDocument, StreamEvent } from './api';
import { subscribeRunEvents } from './channel';
import { isTerminal } from './status';

export type View =
  | { kind: 'jobs' }
  | { kind: 'runs' }
  | { kind: 'job'; jobId: string }
  | { kind: 'trends'; jobId: string }
  | { kind: 'run'; runId: number };

export interface IProgress {
  cell: number;
  total: number;
}

export class OrchestrateModel {
  jobs: JobDocument[] | null = null;
  jobsError: string | null = null;
  view: View = { kind: 'jobs' };
  /** The view shown before the current one (a run opened from All runs goes back there). */
  previous: View | null = null;
  /** Runs by id, as last fetched (full documents). */
  runs = new Map<number, RunDocument>();
  /** Live cell progress by `${runId}/${taskKey}`. */
  progress = new Map<string, IProgress>();
  /** Runs started or repaired from this browser: notify when they finish. */
  watched = new Set<number>();

  /**
   * @param options.events JupyterLab's event manager (`app.serviceManager.events`): live run events
   * @param options.subscribe false: neither events nor the slow refresh (tests)
   */
  constructor(options: { subscribe?: boolean; events?: Event.IManager } = {}) {
    if (options.subscribe !== false) {
      if (options.events) {
        this._unsubscribe = subscribeRunEvents(options.events, event => this.onEvent(event));
      }
      this._timer = window.setInterval(() => void this.refresh(), 30000);
    }
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted when a watched run reaches a terminal status. */
  get runFinished(): ISignal<this, RunDocument> {
    return this._runFinished;
  }

  dispose(): void {
    this._unsubscribe?.();
    if (this._timer) {
      window.clearInterval(this._timer);
    }
  }

  show(view: View): void {
    this.previous = this.view;
    this.view = view;
    this._changed.emit();
    void this.refresh();
  }

  job(jobId: string): JobDocument | undefined {
    return this.jobs?.find(j => j.job_id === jobId);
  }

  async refresh(): Promise<void> {
    try {
      this.jobs = await api.listJobs();
      this.jobsError = null;
    } catch (error) {
      this.jobsError = String((error as Error).message || error);
    }
    if (this.view.kind === 'run') {
      await this.loadRun(this.view.runId);
    }
    this._changed.emit();
  }

  async loadRun(runId: number): Promise<RunDocument | undefined> {
    try {
      const run = await api.getRun(runId);
      this.runs.set(runId, run);
      this._changed.emit();
      return run;
    } catch {
      return undefined;
    }
  }

  async startRun(jobId: string, parameters: Record<string, unknown> = {}): Promise<RunDocument> {
    const run = await api.startRun(jobId, parameters);
    this.watched.add(run.run_id);
    this.runs.set(run.run_id, run);
    await this.refresh();
    return run;
  }

  async repair(runId: number, request: Parameters<typeof api.repair>[1]): Promise<RunDocument> {
    const run = await api.repair(runId, request);
    this.watched.add(runId);
    this.runs.set(runId, run);
    this._changed.emit();
    return run;
  }

  async cancel(runId: number): Promise<void> {
    await api.cancel(runId);
    await this.loadRun(runId);
  }

  /** Whether the jobs list (each job's recent runs) has the run. */
  private _listed(runId: number): boolean {
    return (this.jobs ?? []).some(j => (j.recent_runs ?? []).some(r => r.run_id === runId));
  }

  /** Apply one event of the server's stream. */
  onEvent(event: StreamEvent): void {
    if (event.type === 'progress') {
      this.progress.set(`${event.run_id}/${event.task_key}`, { cell: event.cell, total: event.total ?? 0 });
      this._changed.emit();
      return;
    }
    const run = this.runs.get(event.run_id);
    if (event.type === 'run_status' && !isTerminal(event.status) && !run && !this._listed(event.run_id)) {
      // a run this sidebar has not seen: started by the CLI, a notebook or a scheduler on the same state home
      void this.refresh();
      return;
    }
    if (event.type === 'task_status' && run) {
      const taskRun = run.task_runs.find(t => t.task_key === event.task_key);
      if (taskRun) {
        taskRun.status = event.status;
      }
    }
    if (event.type === 'run_status') {
      if (run) {
        run.status = event.status;
      }
      if (isTerminal(event.status)) {
        void this.loadRun(event.run_id).then(full => {
          if (full && this.watched.delete(event.run_id)) {
            this._runFinished.emit(full);
          }
        });
        void this.refresh();
        return;
      }
    }
    // task status changes: refetch the run shown (attempts, errors, durations) without blocking the stream
    if (this.view.kind === 'run' && this.view.runId === event.run_id) {
      this._debouncedLoad(event.run_id);
    } else if (this.view.kind === 'job') {
      this._changed.emit();
    }
  }

  private _debouncedLoad(runId: number): void {
    if (this._pending) {
      return;
    }
    this._pending = window.setTimeout(() => {
      this._pending = 0;
      void this.loadRun(runId);
    }, 250);
  }

  private _changed = new Signal<this, void>(this);
  private _runFinished = new Signal<this, RunDocument>(this);
  private _unsubscribe: (() => void) | null = null;
  private _timer = 0;
  private _pending = 0;
}
