/** The run matrix (src/components/Matrix.tsx): column order, row order and cell statuses. */
import React from 'react';
import { describe, expect, it, vi } from 'vitest';

import type { TaskRunStatus } from '../documents';
import {
  barPercent,
  formatStart,
  IMatrixRun,
  Matrix,
  matrixColumns,
  matrixTaskKeys,
  maxTaskDurations,
  taskDurationInRun,
  taskStatusInRun
} from '../components/Matrix';
import { Limited, LIST_LIMIT } from '../components/common';
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

describe('durations as bars', () => {
  const timed = (
    run_id: number,
    statuses: Record<string, string>,
    durations: Record<string, number | null>,
    start_time?: string
  ): IMatrixRun => ({
    run_id,
    status: 'succeeded',
    task_statuses: statuses,
    task_duration_seconds: durations,
    start_time
  });

  it('reads durations from both forms of run and takes each task’s longest', () => {
    const runs = [
      timed(1, { a: 'succeeded', b: 'failed' }, { a: 10, b: 2 }),
      timed(2, { a: 'succeeded', b: 'running' }, { a: 40, b: null }),
      {
        run_id: 3,
        status: 'failed',
        task_runs: [{ task_key: 'a', status: 'failed' as TaskRunStatus, duration_seconds: 20 }]
      }
    ];
    expect(taskDurationInRun(runs[2], 'a')).toBe(20);
    expect(taskDurationInRun(runs[1], 'b')).toBeNull();
    expect(taskDurationInRun(listed(4, 'queued', { a: 'queued' }), 'a')).toBeNull();
    expect([...maxTaskDurations(['a', 'b', 'c'], runs)]).toEqual([
      ['a', 40],
      ['b', 2]
    ]);
    expect(barPercent(40, 40)).toBe(100);
    expect(barPercent(10, 40)).toBe(25);
    expect(barPercent(0.1, 40)).toBe(8); // a short task stays visible
    expect(barPercent(null, 40)).toBe(0);
    expect(barPercent(5, undefined)).toBe(0);
  });

  it('draws each cell as a bar proportional to the task’s longest, with status colour, tooltip and start time', () => {
    const now = new Date();
    const today = new Date(now.getFullYear(), now.getMonth(), now.getDate(), 9, 5).toISOString();
    const runs = [
      timed(1, { extract: 'succeeded', load: 'failed' }, { extract: 30, load: 4 }, today),
      timed(2, { extract: 'succeeded', load: 'succeeded' }, { extract: 15, load: 8 }, '2025-03-04T10:20:00Z')
    ];
    const { container, unmount } = render(
      <Matrix taskKeys={['extract', 'load']} runs={runs} onOpenRun={() => undefined} />
    );
    const bar = (key: string, runId: number) =>
      container.querySelector(
        `tbody tr[data-task-key="${key}"] .jo-matrix-cell[data-run-id="${runId}"]`
      ) as HTMLElement;
    expect((bar('extract', 1).firstElementChild as HTMLElement).style.width).toBe('100%');
    expect((bar('extract', 2).firstElementChild as HTMLElement).style.width).toBe('50%');
    expect((bar('load', 2).firstElementChild as HTMLElement).style.width).toBe('100%');
    expect(bar('load', 1).firstElementChild?.className).toBe('jo-matrix-bar jo-status-failed');
    expect(bar('load', 1).getAttribute('title')).toBe('load in run 1: failed, 4.0 s');
    expect(bar('extract', 1).getAttribute('data-seconds')).toBe('30');
    const starts = [...container.querySelectorAll('thead [data-start]')].map(s => s.textContent);
    expect(starts[0]).toBe('09:05');
    expect(starts[1]).toBe(formatStart('2025-03-04T10:20:00Z'));
    expect(starts[1]).toMatch(/^03-0[45] \d\d:\d\d$/);
    unmount();
  });
});

describe('Matrix of a large job', () => {
  it('shows the first LIST_LIMIT task rows and the rest after "Show all", in a row of its own', () => {
    const keys = Array.from({ length: LIST_LIMIT + 25 }, (_, i) => `t${i}`);
    const run = full(
      1,
      'succeeded',
      keys.map(k => [k, 'succeeded'])
    );
    const view = render(<Matrix taskKeys={keys} runs={[run]} onOpenRun={() => undefined} />);
    const rows = () => view.container.querySelectorAll('tbody tr[data-task-key]');
    expect(rows()).toHaveLength(LIST_LIMIT);
    const button = view.container.querySelector<HTMLButtonElement>('tbody td [data-testid=jo-show-all]');
    expect(button?.textContent).toBe(`Show all ${keys.length}`);
    interact(() => button?.click());
    expect(rows()).toHaveLength(keys.length);
    expect(view.container.querySelector('[data-testid=jo-show-all]')).toBeNull();
    view.unmount();
  });
});

describe('Limited', () => {
  it('renders every item of a short list, and the kept ones beyond the limit of a long one', () => {
    const item = (n: number) => <span key={n} className="item" data-n={n} />;
    const short = render(<Limited items={[1, 2, 3]} render={item} limit={3} />);
    expect(short.container.querySelectorAll('.item')).toHaveLength(3);
    expect(short.container.querySelector('[data-testid=jo-show-all]')).toBeNull();
    short.unmount();
    const items = Array.from({ length: 10 }, (_, i) => i);
    const long = render(<Limited items={items} render={item} limit={3} keep={n => n === 8} />);
    const shown = [...long.container.querySelectorAll<HTMLElement>('.item')].map(e => Number(e.dataset.n));
    expect(shown).toEqual([0, 1, 2, 8]);
    expect(long.container.querySelector('[data-testid=jo-show-all]')?.textContent).toBe('Show all 10');
    long.unmount();
  });
});
