/** The run matrix (src/components/Matrix.tsx): column order, row order and cell statuses. */
import React from 'react';
import { describe, expect, it, vi } from 'vitest';

import type { TaskRunStatus } from '../documents';
import { IMatrixRun, Matrix, matrixColumns, matrixTaskKeys, taskStatusInRun } from '../components/Matrix';
import { interact, render } from './render';

const listed = (run_id: number, status: string, task_statuses: Record<string, string>): IMatrixRun => ({
  run_id,
  status,
  task_statuses
});
const full = (run_id: number, status: string, tasks: [string, string][]): IMatrixRun => ({
  run_id,
  status,
  task_runs: tasks.map(([task_key, s]) => ({ task_key, status: s as TaskRunStatus }))
});

describe('matrixColumns', () => {
  it('orders runs oldest to newest (or newest first), one column per run id', () => {
    const runs = [
      listed(5, 'failed', {}),
      listed(3, 'succeeded', {}),
      full(5, 'succeeded', []),
      listed(9, 'running', {})
    ];
    expect(matrixColumns(runs).map(r => r.run_id)).toEqual([3, 5, 9]);
    expect(matrixColumns(runs, true).map(r => r.run_id)).toEqual([9, 5, 3]);
    expect(matrixColumns(runs)[1].status).toBe('failed'); // the first document of a run wins
    expect(matrixColumns([])).toEqual([]);
  });
});

describe('taskStatusInRun', () => {
  it('reads full run documents and list results, null for tasks not in the run', () => {
    expect(taskStatusInRun(full(1, 'failed', [['a', 'failed']]), 'a')).toBe('failed');
    expect(taskStatusInRun(listed(2, 'succeeded', { a: 'succeeded' }), 'a')).toBe('succeeded');
    expect(taskStatusInRun(listed(2, 'succeeded', { a: 'succeeded' }), 'b')).toBeNull();
    expect(taskStatusInRun({ run_id: 3, status: 'queued' }, 'a')).toBeNull();
  });
});

describe('matrixTaskKeys', () => {
  it("keeps the job's task order, then adds tasks only older runs had, newest run first", () => {
    const runs = [
      listed(1, 'succeeded', { a: 'succeeded', old_one: 'succeeded' }),
      full(2, 'failed', [
        ['a', 'failed'],
        ['renamed', 'failed']
      ]),
      listed(3, 'succeeded', { b: 'succeeded', a: 'succeeded' })
    ];
    expect(matrixTaskKeys(['b', 'a'], runs)).toEqual(['b', 'a', 'renamed', 'old_one']);
    expect(matrixTaskKeys(['a'], [])).toEqual(['a']);
  });
});

describe('<Matrix>', () => {
  it('renders a row per task and a cell per run with its status; clicking a cell opens the run', () => {
    const onOpenRun = vi.fn();
    const runs = [
      listed(2, 'failed', { extract: 'succeeded', validate: 'failed' }),
      listed(1, 'succeeded', { extract: 'succeeded' })
    ];
    const { container, unmount } = render(
      <Matrix taskKeys={['extract', 'validate']} runs={runs} selectedRunId={2} onOpenRun={onOpenRun} />
    );
    const matrix = container.querySelector('[data-testid=jo-matrix]')!;
    expect([...matrix.querySelectorAll('thead th[data-run-id]')].map(th => th.textContent)).toEqual(['1', '2']);
    const row = (key: string) =>
      [...matrix.querySelectorAll(`tbody tr[data-task-key="${key}"] td > span`)].map(
        c => c.getAttribute('data-status') ?? 'empty'
      );
    expect(row('extract')).toEqual(['succeeded', 'succeeded']);
    expect(row('validate')).toEqual(['empty', 'failed']);
    expect(matrix.querySelector('th.jo-selected')?.getAttribute('data-run-id')).toBe('2');
    const failedCell = matrix.querySelector('tbody tr[data-task-key="validate"] [data-status=failed]') as HTMLElement;
    interact(() => failedCell.click());
    expect(onOpenRun).toHaveBeenCalledWith(2);
    unmount();
  });

  it('says so when there are no runs', () => {
    const { container, unmount } = render(<Matrix taskKeys={['a']} runs={[]} onOpenRun={() => undefined} />);
    expect(container.querySelector('[data-testid=jo-matrix]')?.textContent).toBe('No runs yet.');
    unmount();
  });
});
