/**
 * The run matrix (as in Databricks' job view): one row per task, one column per recent run, each cell the
 * task's status in that run. Clicking a cell opens the run.
 */
import React from 'react';

import type { TaskRunDocument, RunStatus } from '../api';
import { middleEllipsis, RunCell } from './common';

/** Characters of a task key the matrix's narrow first column shows (cut in the middle; the title has it all). */
export const MATRIX_LABEL_CHARS = 16;

/** What the matrix needs of a run: a full run document (task_runs) or a list result (task_statuses). */
export interface IMatrixRun {
  run_id: number;
  status: RunStatus | string;
  start_time?: string;
  task_runs?: Pick<TaskRunDocument, 'task_key' | 'status'>[];
  task_statuses?: Record<string, string>;
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
  return (
    <div className="jo-matrix-scroll" data-testid="jo-matrix">
      <table className="jo-table jo-matrix">
        <thead>
          <tr>
            <th className="jo-matrix-task">task</th>
            {columns.map(run => (
              <th key={run.run_id} className={selectedClass(run)} data-run-id={run.run_id} title={run.start_time ?? ''}>
                {run.run_id}
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
          {props.taskKeys.map(key => (
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
                      <RunCell
                        runId={run.run_id}
                        status={status}
                        title={`${key} in run ${run.run_id}: ${status.replace(/_/g, ' ')}`}
                        onClick={() => props.onOpenRun(run.run_id)}
                      />
                    )}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
