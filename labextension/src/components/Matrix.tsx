/**
 * The run matrix (as in Databricks' job view): one row per task, one column per recent run (headed by its id,
 * start time and duration), each cell a bar of the task's duration in that run, coloured by its status (the
 * colours of src/status.ts), as long as the task's longest duration in the matrix makes the full width.
 * Tooltips give the numbers. Clicking a cell opens the run.
 */
import React from 'react';

import type { TaskRunDocument, RunStatus } from '../api';
import { statusClass } from '../status';
import { formatSeconds, Limited, middleEllipsis, RunCell } from './common';

/** Characters of a task key the matrix's narrow first column shows (cut in the middle; the title has it all). */
export const MATRIX_LABEL_CHARS = 16;

/** What the matrix needs of a run: a full run document (task_runs) or a list result (task_statuses). */
export interface IMatrixRun {
  run_id: number;
  status: RunStatus | string;
  start_time?: string;
  duration_seconds?: number | null;
  task_runs?: (Pick<TaskRunDocument, 'task_key' | 'status'> & { duration_seconds?: number | null })[];
  task_statuses?: Record<string, string>;
  task_duration_seconds?: Record<string, number | null>;
}

/** A task's duration (seconds) in a run, from either form of run; null when unknown or unfinished. */
export function taskDurationInRun(run: IMatrixRun, taskKey: string): number | null {
  const taskRun = run.task_runs?.find(t => t.task_key === taskKey);
  const seconds = taskRun ? taskRun.duration_seconds : run.task_duration_seconds?.[taskKey];
  return typeof seconds === 'number' && Number.isFinite(seconds) ? seconds : null;
}

/** Each task's longest duration over the runs (seconds); tasks with none are absent. */
export function maxTaskDurations(taskKeys: string[], runs: IMatrixRun[]): Map<string, number> {
  const result = new Map<string, number>();
  for (const key of taskKeys) {
    for (const run of runs) {
      const seconds = taskDurationInRun(run, key);
      if (seconds !== null && seconds > (result.get(key) ?? 0)) {
        result.set(key, seconds);
      }
    }
  }
  return result;
}

/** The bar's length as a percentage of the cell: `seconds / max`, at least 8 % so a short task stays visible. */
export function barPercent(seconds: number | null, max: number | undefined): number {
  if (seconds === null || !max) {
    return 0;
  }
  return Math.round(Math.max(8, Math.min(100, (seconds / max) * 100)));
}

/** A run's start as the column shows it: `14:05` today, `12-01 14:05` on an earlier day (local time). */
export function formatStart(iso: string | undefined, now: Date = new Date()): string {
  const date = iso ? new Date(iso.replace(/(\.\d{3})\d+/, '$1')) : null;
  if (!date || Number.isNaN(date.getTime())) {
    return '';
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return date.toDateString() === now.toDateString()
    ? time
    : `${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}

/** The runs as matrix columns: one per run id, oldest on the left, newest on the right (`newestFirst` reverses). */
export function matrixColumns<T extends { run_id: number }>(runs: T[], newestFirst = false): T[] {
  const byId = new Map<number, T>();
  for (const run of runs) {
    if (!byId.has(run.run_id)) {
      byId.set(run.run_id, run);
    }
  }
  const columns = [...byId.values()].sort((a, b) => a.run_id - b.run_id);
  return newestFirst ? columns.reverse() : columns;
}

/** A task's status in a run, from its task runs (full document) or its task statuses (list result); null if absent. */
export function taskStatusInRun(run: IMatrixRun, taskKey: string): string | null {
  const taskRun = run.task_runs?.find(t => t.task_key === taskKey);
  if (taskRun) {
    return taskRun.status;
  }
  return run.task_statuses?.[taskKey] ?? null;
}

/** The matrix rows: the job's tasks in job order, then tasks that only older runs had (newest run first). */
export function matrixTaskKeys(jobTaskKeys: string[], runs: IMatrixRun[]): string[] {
  const keys = [...jobTaskKeys];
  const seen = new Set(keys);
  for (const run of matrixColumns(runs, true)) {
    const runKeys = run.task_runs ? run.task_runs.map(t => t.task_key) : Object.keys(run.task_statuses ?? {});
    for (const key of runKeys) {
      if (!seen.has(key)) {
        seen.add(key);
        keys.push(key);
      }
    }
  }
  return keys;
}

/** The run matrix: rows are `taskKeys`, columns the given runs (oldest left, newest right). */
export function Matrix(props: {
  taskKeys: string[];
  runs: IMatrixRun[];
  selectedRunId?: number | null;
  onOpenRun: (runId: number) => void;
}): JSX.Element {
  const columns = matrixColumns(props.runs);
  if (columns.length === 0) {
    return (
      <div className="jo-matrix-scroll jo-muted" data-testid="jo-matrix">
        No runs yet.
      </div>
    );
  }
  const selectedClass = (run: IMatrixRun) => (run.run_id === props.selectedRunId ? 'jo-selected' : undefined);
  const longest = maxTaskDurations(props.taskKeys, columns);
  return (
    <div className="jo-matrix-scroll" data-testid="jo-matrix">
      <table className="jo-table jo-matrix">
        <thead>
          <tr>
            <th className="jo-matrix-task">task</th>
            {columns.map(run => (
              <th
                key={run.run_id}
                className={selectedClass(run)}
                data-run-id={run.run_id}
                title={`run ${run.run_id}: ${run.status}, started ${run.start_time ?? '?'}${
                  run.duration_seconds ? `, ${formatSeconds(run.duration_seconds)}` : ''
                }`}
              >
                <div>{run.run_id}</div>
                <div className="jo-matrix-start" data-start>
                  {formatStart(run.start_time)}
                </div>
              </th>
            ))}
          </tr>
          <tr className="jo-matrix-run-row">
            <th className="jo-matrix-task jo-muted">run</th>
            {columns.map(run => (
              <td key={run.run_id} className={selectedClass(run)}>
                <RunCell runId={run.run_id} status={run.status} onClick={() => props.onOpenRun(run.run_id)} />
              </td>
            ))}
          </tr>
        </thead>
        <tbody>
          <Limited
            items={props.taskKeys}
            render={key => (
              <tr key={key} data-task-key={key}>
                <td className="jo-matrix-task" title={key}>
                  {middleEllipsis(key, MATRIX_LABEL_CHARS)}
                </td>
                {columns.map(run => {
                  const status = taskStatusInRun(run, key);
                  return (
                    <td key={run.run_id} className={selectedClass(run)}>
                      {status === null ? (
                        <span
                          className="jo-cell jo-cell-empty"
                          data-run-id={run.run_id}
                          title={`${key}: not in run ${run.run_id}`}
                        />
                      ) : (
                        <DurationCell
                          taskKey={key}
                          runId={run.run_id}
                          status={status}
                          seconds={taskDurationInRun(run, key)}
                          max={longest.get(key)}
                          onClick={() => props.onOpenRun(run.run_id)}
                        />
                      )}
                    </td>
                  );
                })}
              </tr>
            )}
            wrapButton={button => (
              <tr>
                <td colSpan={columns.length + 1}>{button}</td>
              </tr>
            )}
          />
        </tbody>
      </table>
    </div>
  );
}

/** A matrix cell: the task's status colour as a bar of its duration relative to `max` (a plain status cell when
 * the duration is unknown, e.g. running or skipped). */
function DurationCell(props: {
  taskKey: string;
  runId: number;
  status: string;
  seconds: number | null;
  max: number | undefined;
  onClick: () => void;
}): JSX.Element {
  const percent = barPercent(props.seconds, props.max);
  const title =
    `${props.taskKey} in run ${props.runId}: ${props.status.replace(/_/g, ' ')}` +
    (props.seconds !== null ? `, ${formatSeconds(props.seconds)}` : '');
  return (
    <span
      className="jo-matrix-cell"
      data-run-id={props.runId}
      data-status={props.status}
      data-seconds={props.seconds ?? undefined}
      title={title}
      onClick={props.onClick}
    >
      <span
        className={`jo-matrix-bar ${statusClass(props.status)}`}
        style={{ width: percent ? `${percent}%` : undefined }}
      />
    </span>
  );
}
