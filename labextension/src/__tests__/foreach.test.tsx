/** For-each tasks in the sidebar: iteration counts (common.tsx), the DAG box, the task detail's iterations, the Gantt rows. */
import React from 'react';
import { describe, expect, it } from 'vitest';

import type { AttemptDocument, RunDocument, TaskRunDocument } from '../api';
import { iterationCounts } from '../components/common';
import { Dag } from '../components/Dag';
import { ganttData } from '../components/Gantt';
import { runIterationCounts } from '../components/JobView';
import { TaskDetail } from '../components/TaskDetail';
import { render } from './render';
import { fakeActions } from './fakes';

function attempt(status: AttemptDocument['status'], path: string): AttemptDocument {
  return {
    attempt_number: 1,
    repair_number: 0,
    status,
    start_time: '2026-11-22T00:00:01.000000+00:00',
    end_time: '2026-11-22T00:00:02.000000+00:00',
    duration_seconds: 1,
    executed_notebook: `/srv/${path}`,
    executed_notebook_path: path,
    log: null,
    parameters: {},
    cells_completed: null,
    cells_total: null,
    error: null
  };
}

function iteration(index: number, input: string, status: TaskRunDocument['status']): TaskRunDocument {
  return {
    task_key: `load[${index}]`,
    notebook: 'load.ipynb',
    depends_on: [],
    status,
    status_reason: null,
    attempt_count: 1,
    duration_seconds: 1,
    executed_notebook: null,
    error: null,
    task_values: {},
    attempts: [attempt(status, `runs/1/load/${index}/attempt-1.ipynb`)],
    map_index: index,
    input,
    iterations: []
  } as TaskRunDocument;
}

const LOAD: TaskRunDocument = {
  ...iteration(0, '', 'failed'),
  task_key: 'load',
  map_index: null,
  input: null,
  attempts: [],
  attempt_count: 0,
  status_reason: 'for_each: 3/5 succeeded · 2 failed',
  iterations: [
    iteration(0, 'a.csv', 'succeeded'),
    iteration(1, 'b.csv', 'succeeded'),
    iteration(2, 'bad.csv', 'failed'),
    iteration(3, 'c.csv', 'succeeded'),
    iteration(4, 'bad2.csv', 'failed')
  ]
} as TaskRunDocument;

const actions = fakeActions;

describe('iterationCounts', () => {
  it('counts as show counts: succeeded of all, then failures, then those not finished', () => {
    expect(iterationCounts(['succeeded', 'succeeded'])).toBe('2/2');
    expect(iterationCounts(LOAD.iterations.map(i => i.status))).toBe('3/5 · 2 failed');
    expect(iterationCounts(['succeeded', 'running', 'queued', 'timed_out'])).toBe('1/4 · 1 failed · 2 running');
  });

  it('runIterationCounts: only for-each task runs', () => {
    const run = { task_runs: [LOAD, { ...iteration(0, '', 'succeeded'), task_key: 'total', iterations: [] }] };
    expect(runIterationCounts(run as unknown as RunDocument)).toEqual({ load: '3/5 · 2 failed' });
    expect(runIterationCounts(null)).toEqual({});
  });
});

describe('for-each in the views', () => {
  it('the DAG box of a for-each task shows its counts', () => {
    const tasks = [
      { task_key: 'list_files', depends_on: [] },
      { task_key: 'load', depends_on: ['list_files'] }
    ];
    const { container, unmount } = render(
      <Dag
        tasks={tasks}
        statuses={{ list_files: 'succeeded', load: 'failed' }}
        counts={{ load: '3/5 · 2 failed' }}
        selected={null}
        onSelect={() => undefined}
      />
    );
    const load = container.querySelector('.jo-node[data-task-key=load]');
    expect(load?.getAttribute('data-counts')).toBe('3/5 · 2 failed');
    expect(load?.querySelector('text')?.textContent).toBe('load 3/5 · 2 failed');
    expect(container.querySelector('.jo-node[data-task-key=list_files] text')?.textContent).toBe('list_files');
    unmount();
  });

  it('the task detail lists the iterations, failures first and expanded, with their inputs', () => {
    const { container, unmount } = render(<TaskDetail taskRun={LOAD} actions={actions()} />);
    expect(container.querySelector('[data-testid=jo-task-header] .jo-task-facts')?.textContent).toBe(
      '3/5 · 2 failed iterations · 1.0 s'
    );
    const cards = [...container.querySelectorAll('[data-testid=jo-iterations] [data-testid=jo-task]')];
    expect(cards.map(c => [c.getAttribute('data-task-key'), c.getAttribute('data-collapsed')])).toEqual([
      ['load[2]', 'false'],
      ['load[4]', 'false'],
      ['load[0]', 'true'],
      ['load[1]', 'true'],
      ['load[3]', 'true']
    ]);
    expect(cards[0].querySelector('[data-testid=jo-iteration-input]')?.textContent).toBe('"bad.csv"');
    unmount();
  });

  it('the Gantt gives each iteration a row under its task', () => {
    const data = ganttData({ start_time: '2026-11-22T00:00:00.000000+00:00', task_runs: [LOAD] }, 0);
    expect(data.rows).toEqual(['load', 'load[0]', 'load[1]', 'load[2]', 'load[3]', 'load[4]']);
    expect(data.bars.map(b => b.row)).toEqual([1, 2, 3, 4, 5]);
  });
});
