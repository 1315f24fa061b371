/**
 * One task run of a run: status, attempts, live progress, parameters, task values, and for a failure the failing
 * cell, the error, the traceback (ANSI colours rendered) and a button to open the executed notebook at that cell.
 */
import React, { useEffect, useState } from 'react';
import { Button, caretDownIcon, caretRightIcon } from '@jupyterlab/ui-components';

import type { IActions } from '../actions';
import type { AttemptDocument, AttemptEnvironment, AttemptError, RunDocument, TaskRunDocument } from '../api';
import type { IProgress } from '../model';
import { isErrored, isUnsuccessful } from '../status';
import { stripAnsi, tracebackToHtml } from './ansi';
import { cellLabel, countOf, formatSeconds, iterationCounts, Limited, StatusBadge } from './common';
import { LiveKernel } from './LiveKernel';

/** The task run's latest attempt (highest repair, then attempt number), or null before the first. */
export function lastAttempt(taskRun: Pick<TaskRunDocument, 'attempts'>): AttemptDocument | null {
  const attempts = taskRun.attempts ?? [];
  if (attempts.length === 0) {
    return null;
  }
  return attempts.reduce((latest, a) =>
    a.repair_number > latest.repair_number ||
    (a.repair_number === latest.repair_number && a.attempt_number >= latest.attempt_number)
      ? a
      : latest
  );
}

/**
 * The live progress of a running task: the model's progress event if any, else the last attempt's
 * cells_completed / cells_total; null when unknown.
 */
export function taskProgress(live: IProgress | undefined | null, attempt: AttemptDocument | null): IProgress | null {
  if (live) {
    return live;
  }
  if (attempt && attempt.cells_total !== null && attempt.cells_total !== undefined) {
    return { cell: attempt.cells_completed ?? 0, total: attempt.cells_total };
  }
  return null;
}

/** `code cell 2 of 5`: progress counts code cells (`code_cell_progress` in models.py); see `cellLabel`. */
export function progressText(progress: IProgress): string {
  return `code cell ${progress.cell} of ${progress.total}`;
}

const ERROR_KINDS: Record<string, string> = {
  cell_error: 'Cell error',
  kernel_died: 'Kernel died',
  timeout: 'Timed out',
  canceled: 'Canceled',
  early_exit: 'Exited early',
  launch_error: 'Kernel failed to start',
  parameter_error: 'Parameter error',
  orchestrator_died: 'Orchestrator died',
  child_run_failed: 'Job run failed',
  internal: 'Internal error'
};

/** A readable title for an error kind (`kernel_died` → `Kernel died`). */
export function errorKindLabel(kind: string): string {
  return ERROR_KINDS[kind] ?? kind.replace(/_/g, ' ');
}

/** A parameter or task value as one line: strings quoted, everything else as JSON. */
export function formatValue(value: unknown): string {
  const json = JSON.stringify(value);
  return json === undefined ? String(value) : json;
}

function Parameters(props: { values: Record<string, unknown>; testid: string }): JSX.Element | null {
  const entries = Object.entries(props.values);
  if (entries.length === 0) {
    return null;
  }
  return (
    <ul className="jo-params" data-testid={props.testid}>
      {entries.map(([name, value]) => (
        <li key={name}>
          <code>{name}</code> = <code>{formatValue(value)}</code>
        </li>
      ))}
    </ul>
  );
}

/** The run a task run belongs to, for the executed notebooks' titles. */
export type RunContext = Pick<RunDocument, 'run_id' | 'job'>;

/**
 * Open an attempt's executed notebook: read-only, titled by its run, when the run is known; else as a
 * notebook at that cell.
 */
export function openAttempt(
  actions: IActions,
  path: string,
  cellIndex: number | null,
  run: RunContext | undefined,
  taskKey: string,
  attempt: AttemptDocument | null
): Promise<void> {
  if (run && attempt) {
    return actions.openExecuted({
      path,
      cellIndex,
      job: run.job,
      runId: run.run_id,
      taskKey,
      attemptNumber: attempt.attempt_number,
      repairNumber: attempt.repair_number
    });
  }
  return actions.openNotebook(path, cellIndex);
}

/** The failure of a task run: failing cell, error, traceback, and "Open executed notebook". */
export function Failure(props: {
  error: AttemptError;
  attempt: AttemptDocument | null;
  actions: IActions;
  run?: RunContext;
  taskKey?: string;
}): JSX.Element {
  const { error, attempt } = props;
  const [showTraceback, setShowTraceback] = useState(false);
  const path = attempt?.executed_notebook_path ?? null;
  return (
    <div className="jo-failure" data-testid="jo-failure" data-kind={error.kind}>
      <div className="jo-failure-kind">{errorKindLabel(error.kind)}</div>
      {error.cell_index !== null && (
        <div className="jo-failure-cell" data-testid="jo-failure-cell">
          <div className="jo-muted">
            {cellLabel(error.cell_index)}
            {error.execution_count !== null ? ` · In [${error.execution_count}]` : ''}
          </div>
          {error.cell_source !== null && <pre className="jo-code">{error.cell_source}</pre>}
        </div>
      )}
      <div className="jo-failure-error" data-testid="jo-failure-error">
        <b>{error.ename}</b>
        {error.evalue ? `: ${stripAnsi(error.evalue)}` : ''}
      </div>
      <div className="jo-row jo-wrap">
        {error.traceback.length > 0 && (
          <Button
            small
            minimal
            data-testid="jo-traceback-toggle"
            aria-expanded={showTraceback}
            onClick={() => setShowTraceback(!showTraceback)}
          >
            {showTraceback ? 'Hide traceback' : 'Show traceback'}
          </Button>
        )}
        <Button
          small
          className="jp-mod-styled jp-mod-accept"
          data-testid="jo-open-notebook"
          disabled={path === null}
          title={path === null ? 'The executed notebook is outside the server root' : `Open ${path}`}
          onClick={() =>
            path !== null &&
            void openAttempt(props.actions, path, error.executed_cell_index, props.run, props.taskKey ?? '', attempt)
          }
        >
          Open executed notebook
        </Button>
      </div>
      {showTraceback && (
        <pre
          className="jo-code jo-traceback"
          data-testid="jo-traceback"
          dangerouslySetInnerHTML={{ __html: tracebackToHtml(error.traceback) }}
        />
      )}
    </div>
  );
}

/** Every attempt of a task run: number, status, duration, repair, and a link to its executed notebook. */
export function Attempts(props: {
  attempts: AttemptDocument[];
  actions: IActions;
  run?: RunContext;
  taskKey?: string;
}): JSX.Element | null {
  if (props.attempts.length === 0) {
    return null;
  }
  return (
    <div className="jo-attempts" data-testid="jo-attempts">
      {props.attempts.map(a => {
        const path = a.executed_notebook_path;
        return (
          <div
            key={`${a.repair_number}/${a.attempt_number}`}
            className="jo-attempt jo-row jo-wrap"
            data-attempt={a.attempt_number}
            data-status={a.status}
          >
            <span>attempt {a.attempt_number}</span>
            <StatusBadge status={a.status} />
            {a.duration_seconds !== null && <span>{formatSeconds(a.duration_seconds)}</span>}
            <span className="jo-muted">repair {a.repair_number}</span>
            {path !== null && (
              <button
                className="jo-link"
                data-testid="jo-open-attempt"
                title={`Open ${path}`}
                onClick={() =>
                  void openAttempt(
                    props.actions,
                    path,
                    a.error?.executed_cell_index ?? null,
                    props.run,
                    props.taskKey ?? '',
                    a
                  )
                }
              >
                open
              </button>
            )}
          </div>
        );
      })}
    </div>
  );
}

/**
 * One task run of a run, with its live progress (`progress`: the model's progress entry for it).
 * `defaultCollapsed`: show only the header line (key, status, attempts, duration) until the user expands it
 * (a click on the header) or selects it; the run view collapses succeeded task runs this way.
 * `run` names the executed notebooks it opens.
 */
export function TaskDetail(props: {
  taskRun: TaskRunDocument;
  progress?: IProgress;
  actions: IActions;
  selected?: boolean;
  defaultCollapsed?: boolean;
  run?: RunContext;
}): JSX.Element {
  const { taskRun, actions } = props;
  // null: follow `defaultCollapsed` (a running card collapses when it succeeds); else the user's choice
  const [userCollapsed, setUserCollapsed] = useState<boolean | null>(null);
  useEffect(() => {
    if (props.selected) {
      setUserCollapsed(false); // selecting a task (timeline, DAG) shows it in full
    }
  }, [props.selected]);
  const collapsed = userCollapsed ?? props.defaultCollapsed ?? false;
  const attempt = lastAttempt(taskRun);
  const error = taskRun.error ?? attempt?.error ?? null;
  const failed = isErrored(taskRun.status);
  const progress = taskRun.status === 'running' ? taskProgress(props.progress, attempt) : null;
  const showReason =
    taskRun.status_reason &&
    (taskRun.status === 'upstream_failed' ||
      taskRun.status === 'skipped' ||
      (isUnsuccessful(taskRun.status) && !error));
  const classes = [
    'jo-task',
    failed ? 'jo-task-failed' : '',
    props.selected ? 'jo-selected' : '',
    collapsed ? 'jo-collapsed' : ''
  ]
    .filter(Boolean)
    .join(' ');
  const toggle = () => setUserCollapsed(!collapsed);
  const iterations = taskRun.iterations ?? [];
  const facts =
    (iterations.length
      ? `${iterationCounts(iterations.map(i => i.status))} iterations`
      : countOf(taskRun.attempt_count, 'attempt')) +
    (taskRun.duration_seconds !== null ? ` · ${formatSeconds(taskRun.duration_seconds)}` : '');
  const caret = collapsed ? caretRightIcon : caretDownIcon;
  const summary = (
    <div
      className="jo-row jo-task-header"
      data-testid="jo-task-header"
      role="button"
      tabIndex={0}
      aria-expanded={!collapsed}
      title={collapsed ? `Show ${taskRun.task_key}` : `Hide the details of ${taskRun.task_key}`}
      onClick={toggle}
      onKeyDown={event => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          toggle();
        }
      }}
    >
      <caret.react tag="span" className="jo-caret" />
      <b className="jo-task-key jo-ellipsis" title={taskRun.task_key}>
        {taskRun.task_key}
      </b>
      {taskRun.map_index !== null && taskRun.map_index !== undefined && (
        <span className="jo-muted jo-ellipsis" data-testid="jo-iteration-input" title={JSON.stringify(taskRun.input)}>
          {JSON.stringify(taskRun.input)}
        </span>
      )}
      <StatusBadge status={taskRun.status} />
      <span className="jo-muted jo-ellipsis jo-task-facts" title={facts}>
        {facts}
      </span>
    </div>
  );
  const card = {
    className: classes,
    'data-testid': 'jo-task',
    'data-task-key': taskRun.task_key,
    'data-status': taskRun.status,
    'data-collapsed': String(collapsed)
  };
  if (collapsed) {
    return <div {...card}>{summary}</div>;
  }
  return (
    <div {...card}>
      {summary}
      <div className="jo-muted jo-path" title={taskRun.notebook ?? undefined}>
        {taskRun.notebook ?? 'condition task (no notebook)'}
      </div>
      {(taskRun.warnings ?? []).map(warning => (
        <div key={warning} className="jo-warning" data-testid="jo-task-warning">
          warning: {warning}
        </div>
      ))}
      {taskRun.status === 'running' && (
        <div className="jo-progress" data-testid="jo-progress">
          {progress ? (
            <>
              <progress max={Math.max(progress.total, 1)} value={Math.min(progress.cell, progress.total)} />
              <span>{progressText(progress)}</span>
            </>
          ) : (
            <span>starting…</span>
          )}
        </div>
      )}
      {showReason && (
        <div className="jo-muted" data-testid="jo-status-reason">
          {taskRun.status_reason}
        </div>
      )}
      {/* the failure (cell, error) before the details of what ran: failures first */}
      {error && (
        <Failure error={error} attempt={attempt} actions={actions} run={props.run} taskKey={taskRun.task_key} />
      )}
      {taskRun.kept_kernel && taskRun.kept_kernel.status !== 'ended' && props.run && (
        <LiveKernel kept={taskRun.kept_kernel} runId={props.run.run_id} taskKey={taskRun.task_key} actions={actions} />
      )}
      {attempt && Object.keys(attempt.parameters ?? {}).length > 0 && (
        <div>
          <div className="jo-section-title">Parameters</div>
          <Parameters values={attempt.parameters} testid="jo-task-parameters" />
        </div>
      )}
      {attempt?.environment && Object.keys(attempt.environment).length > 0 && (
        <div data-testid="jo-task-environment">
          <div className="jo-section-title">Environment</div>
          <EnvironmentSummary environment={attempt.environment} />
        </div>
      )}
      {Object.keys(taskRun.task_values ?? {}).length > 0 && (
        <div>
          <div className="jo-section-title">Task values</div>
          <pre className="jo-code" data-testid="jo-task-values">
            {JSON.stringify(taskRun.task_values, null, 2)}
          </pre>
        </div>
      )}
      {iterations.length > 0 && (
        <div data-testid="jo-iterations">
          <div className="jo-section-title">Iterations</div>
          {/* failures first, as in the run view; each iteration is a task run of its own */}
          <Limited
            items={[...iterations].sort((a, b) => Number(isErrored(b.status)) - Number(isErrored(a.status)))}
            render={iteration => (
              <TaskDetail
                key={iteration.task_key}
                taskRun={iteration}
                actions={actions}
                run={props.run}
                defaultCollapsed={!isErrored(iteration.status)}
              />
            )}
          />
        </div>
      )}
      <Attempts attempts={taskRun.attempts ?? []} actions={actions} run={props.run} taskKey={taskRun.task_key} />
    </div>
  );
}

/** One line per fact of an attempt's environment: kernel or interpreter, packages, variable names, where it ran. */
export function environmentLines(environment: AttemptEnvironment): string[] {
  const lines: string[] = [];
  lines.push(environment.python ? `python ${environment.python}` : `kernel ${environment.kernel_name ?? 'default'}`);
  if (environment.package_hash) {
    lines.push(
      `packages ${environment.package_hash}: ${(environment.requirements ?? []).join(', ')} (${(environment.freeze ?? []).length} installed)`
    );
  }
  if (environment.env_names && environment.env_names.length > 0) {
    lines.push(`variables: ${environment.env_names.join(', ')}`);
  }
  if (environment.dask_worker) {
    lines.push(`ran on ${environment.host ?? 'a Dask worker'} (Dask worker ${environment.dask_worker})`);
  }
  return lines;
}

function EnvironmentSummary(props: { environment: AttemptEnvironment }): JSX.Element {
  const freeze = props.environment.freeze ?? [];
  return (
    <div className="jo-muted">
      {environmentLines(props.environment).map(line => (
        <div key={line}>{line}</div>
      ))}
      {freeze.length > 0 && (
        <details>
          <summary>pip freeze</summary>
          <pre className="jo-code">{freeze.join('\n')}</pre>
        </details>
      )}
    </div>
  );
}
