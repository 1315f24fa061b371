/**
 * The Run view: header (status, times, Cancel / Repair run), the timeline of attempts, every task run with its
 * failure details, and the repairs history. Reads the run from the model, which the event stream keeps fresh.
 */
import React, { useEffect, useRef, useState } from 'react';
import { Clipboard, Notification } from '@jupyterlab/apputils';
import { Button, linkIcon } from '@jupyterlab/ui-components';

import { IActions } from '../actions';
import { RepairDocument, RunDocument, RunStatus, TaskRunDocument } from '../api';
import { isActive, isErrored, isTerminal, isUnsuccessful } from '../status';
import { OrchestrateModel } from '../model';
import { runLink } from '../restore';
import { ErrorText, formatSeconds, Limited, StatusBadge } from './common';
import { Gantt, parseTime, useNow } from './Gantt';
import { formatValue, TaskDetail } from './TaskDetail';

/** True while a run can be canceled (queued, running or already canceling). */
export function canCancel(status: RunStatus | string): boolean {
  return isActive(status);
}

/** True when a run is finished and some task run is unsuccessful (failed, timed_out, upstream_failed, canceled). */
export function canRepair(run: Pick<RunDocument, 'status' | 'task_runs'>): boolean {
  return isTerminal(run.status) && (run.task_runs ?? []).some(t => isUnsuccessful(t.status));
}

/** How early a task run's card comes in the run view: its own failure first, then other unsuccessful ones, then
 * what is in progress, then what waits, then what is done. */
function taskRank(status: string): number {
  if (isErrored(status)) {
    return 0;
  }
  if (isUnsuccessful(status)) {
    return 1;
  }
  if (isActive(status) || status === 'up_for_retry') {
    return 2;
  }
  return status === 'pending' ? 3 : 4;
}

/**
 * The run view's task runs, failures first: `failed` are the task runs whose own attempt failed or timed out
 * (shown at the top with their cell and error), `others` the rest ordered by `taskRank`; the run's order is kept
 * within a rank.
 */
export function orderTaskRuns<T extends Pick<TaskRunDocument, 'status'>>(taskRuns: T[]): { failed: T[]; others: T[] } {
  const ranked = taskRuns.map((t, i) => ({ t, i, rank: taskRank(t.status) }));
  ranked.sort((a, b) => a.rank - b.rank || a.i - b.i);
  return {
    failed: ranked.filter(r => r.rank === 0).map(r => r.t),
    others: ranked.filter(r => r.rank !== 0).map(r => r.t)
  };
}

/** A server time in the browser's locale, or '' when missing. */
export function formatTime(iso: string | null | undefined): string {
  const ms = parseTime(iso);
  return ms === null ? '' : new Date(ms).toLocaleString();
}

/** The run's duration in seconds: its recorded duration, else (still running) the time since its start. */
export function runDuration(
  run: Pick<RunDocument, 'start_time' | 'duration_seconds' | 'status'>,
  now: number = Date.now()
): number | null {
  if (run.duration_seconds !== null && run.duration_seconds !== undefined) {
    return run.duration_seconds;
  }
  const start = parseTime(run.start_time);
  return start === null || isTerminal(run.status) ? null : Math.max(0, (now - start) / 1000);
}

function Repairs(props: { repairs: RepairDocument[] }): JSX.Element | null {
  if (props.repairs.length === 0) {
    return null;
  }
  return (
    <div>
      <div className="jo-section-title">Repairs</div>
      <table className="jo-table" data-testid="jo-repairs">
        <thead>
          <tr>
            <th>#</th>
            <th>time</th>
            <th>tasks</th>
            <th>parameters</th>
          </tr>
        </thead>
        <tbody>
          {props.repairs.map(r => (
            <tr key={r.repair_number} data-repair-number={r.repair_number}>
              <td>{r.repair_number}</td>
              <td>{formatTime(r.repair_time)}</td>
              <td>
                {r.task_keys.join(', ')}
                {r.reused_task_keys.length > 0 && (
                  <div className="jo-muted">reused: {r.reused_task_keys.join(', ')}</div>
                )}
              </td>
              <td>
                {Object.entries(r.parameters ?? {}).map(([name, value]) => (
                  <div key={name}>
                    <code>{name}</code>=<code>{formatValue(value)}</code>
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RunHeader(props: { model: OrchestrateModel; run: RunDocument; now: number; actions: IActions }): JSX.Element {
  const { model, run, actions } = props;
  const jobId = run.job_id;
  const parameters = Object.entries(run.parameters ?? {});
  return (
    <div className="jo-run-header">
      <div className="jo-row jo-wrap">
        <span className="jo-job-name jo-nowrap">Run {run.run_id}</span>
        <span data-testid="jo-run-status">
          <StatusBadge status={run.status} />
        </span>
        {canCancel(run.status) && (
          <Button
            small
            className="jp-mod-styled jp-mod-warn"
            data-testid="jo-cancel"
            onClick={() => void actions.cancelRun(run.run_id)}
          >
            Cancel
          </Button>
        )}
        <Button
          small
          minimal
          className="jo-copy-link"
          data-testid="jo-copy-link"
          data-link={runLink(run.run_id)}
          title="Copy a link that opens JupyterLab on this run"
          onClick={() => {
            Clipboard.copyToSystem(runLink(run.run_id));
            Notification.info(`Link to run ${run.run_id} copied`, { autoClose: 3000 });
          }}
        >
          <linkIcon.react tag="span" className="jo-inline-icon" />
          Copy link
        </Button>
        {canRepair(run) && (
          <Button
            small
            className="jp-mod-styled jp-mod-accept"
            data-testid="jo-repair"
            onClick={() => void actions.repairRun(run)}
          >
            Repair run
          </Button>
        )}
      </div>
      <div>
        Job{' '}
        {jobId ? (
          <button
            className="jo-link jo-path"
            data-testid="jo-job-link"
            title={jobId}
            onClick={() => model.show({ kind: 'job', jobId })}
          >
            {run.job}
          </button>
        ) : (
          <span className="jo-path" title={run.job_path}>
            {run.job}
          </span>
        )}
      </div>
      {run.parent_run_id !== null && run.parent_run_id !== undefined && (
        <div data-testid="jo-parent-run">
          Started by task <code>{run.parent_task_key}</code> of{' '}
          <button
            className="jo-link"
            data-testid="jo-parent-run-link"
            onClick={() => model.show({ kind: 'run', runId: run.parent_run_id as number })}
          >
            run {run.parent_run_id}
          </button>
        </div>
      )}
      {(run.child_runs ?? []).length > 0 && (
        <div data-testid="jo-child-runs">
          Runs started by its run-job tasks:{' '}
          {(run.child_runs ?? []).map(child => (
            <button
              key={child.run_id}
              className="jo-link"
              data-testid="jo-child-run-link"
              data-run-id={child.run_id}
              data-status={child.status}
              title={`${child.job_name}: ${child.status}`}
              onClick={() => model.show({ kind: 'run', runId: child.run_id })}
            >
              {child.task_key} → run {child.run_id} ({child.status})
            </button>
          ))}
        </div>
      )}
      {run.status_reason && (
        <div className={run.status === 'failed' ? 'jo-error-text' : 'jo-muted'} data-testid="jo-run-reason">
          {run.status_reason}
        </div>
      )}
      <dl className="jo-kv">
        <dt>started</dt>
        <dd>{formatTime(run.start_time)}</dd>
        <dt>duration</dt>
        <dd data-testid="jo-run-duration">{formatSeconds(runDuration(run, props.now)) || '–'}</dd>
        <dt>repairs</dt>
        <dd data-testid="jo-repair-count">{run.repair_count}</dd>
      </dl>
      {parameters.length > 0 && (
        <details className="jo-run-parameters" data-testid="jo-run-parameters">
          <summary>Parameters ({parameters.length})</summary>
          <ul className="jo-params">
            {parameters.map(([name, value]) => (
              <li key={name}>
                <code>{name}</code> = <code>{formatValue(value)}</code>
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}

/** The Run view: the run's status and actions, its timeline, its task runs and its repairs. */
export function RunView(props: { model: OrchestrateModel; runId: number; actions: IActions }): JSX.Element {
  const { model, runId, actions } = props;
  const run = model.runs.get(runId);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const viewRef = useRef<HTMLDivElement>(null);
  const loaded = run !== undefined;
  useEffect(() => {
    if (loaded) {
      return;
    }
    let live = true;
    setLoadError(null);
    void model.loadRun(runId).then(result => {
      if (live && !result) {
        setLoadError(`Cannot load run ${runId}.`);
      }
    });
    return () => {
      live = false;
    };
  }, [model, runId, loaded]);
  const now = useNow(run !== undefined && !isTerminal(run.status));

  if (!run) {
    return (
      <div className="jo-body" data-testid="jo-run-view">
        {loadError ? <ErrorText error={loadError} /> : <div className="jo-muted">Loading run {runId}…</div>}
      </div>
    );
  }
  const select = (taskKey: string) => {
    setSelected(taskKey);
    const items = viewRef.current?.querySelectorAll<HTMLElement>('[data-testid="jo-task"]') ?? [];
    const item = Array.from(items).find(el => el.dataset.taskKey === taskKey);
    item?.scrollIntoView?.({ block: 'nearest', behavior: 'smooth' });
  };
  const { failed, others } = orderTaskRuns(run.task_runs ?? []);
  const card = (taskRun: TaskRunDocument) => (
    <TaskDetail
      key={taskRun.task_key}
      taskRun={taskRun}
      progress={model.progress.get(`${run.run_id}/${taskRun.task_key}`)}
      actions={actions}
      selected={selected === taskRun.task_key}
      defaultCollapsed={taskRun.status === 'succeeded'}
      run={run}
    />
  );
  return (
    <div
      className="jo-body jo-run-view"
      data-testid="jo-run-view"
      data-run-status={run.status}
      data-run-id={run.run_id}
      ref={viewRef}
    >
      <RunHeader model={model} run={run} now={now} actions={actions} />
      {failed.length > 0 && (
        <div className="jo-tasks jo-failed-tasks" data-testid="jo-failed-tasks">
          <div className="jo-section-title jo-error-text">Failed</div>
          <Limited items={failed} render={card} keep={t => t.task_key === selected} />
        </div>
      )}
      <div>
        <div className="jo-section-title">Timeline</div>
        <Gantt run={run} now={now} selected={selected} onSelect={select} />
      </div>
      {others.length > 0 && (
        <div className="jo-tasks" data-testid="jo-other-tasks">
          <div className="jo-section-title">{failed.length > 0 ? 'Other tasks' : 'Tasks'}</div>
          <Limited items={others} render={card} keep={t => t.task_key === selected} />
        </div>
      )}
      <Repairs repairs={run.repairs ?? []} />
    </div>
  );
}
