/** Task runs and failures (src/components/TaskDetail.tsx), run helpers (RunView.tsx) and job helpers (JobView.tsx). */
import React from 'react';
import { describe, expect, it } from 'vitest';

import type { AttemptDocument, AttemptError, TaskRunDocument } from '../api';
import { formatNotebookParameter, problemText, runTaskStatuses, selectRunId } from '../components/JobView';
import { canCancel, canRepair, runDuration } from '../components/RunView';
import {
  errorKindLabel,
  Failure,
  formatValue,
  lastAttempt,
  progressText,
  TaskDetail,
  taskProgress
} from '../components/TaskDetail';
import { cellLabel } from '../components/common';
import { isUnsuccessful } from '../status';
import { interact, render } from './render';
import { fakeActions } from './fakes';

const ERROR: AttemptError = {
  kind: 'cell_error',
  ename: 'ValueError',
  evalue: 'threshold is not set: repair this run',
  traceback: [
    '\u001b[0;31m---------------------------------------------------------------------------\u001b[0m',
    '\u001b[0;31mValueError\u001b[0m                                Traceback (most recent call last)',
    'Cell \u001b[0;32mIn[3], line 2\u001b[0m\n\u001b[1;32m      1\u001b[0m \u001b[38;5;28;01mif\u001b[39;00m threshold <b>',
    '\u001b[0;31mValueError\u001b[0m: threshold is not set: repair this run'
  ],
  cell_index: 3,
  executed_cell_index: 5,
  cell_source: 'if threshold is None:\n    raise ValueError("threshold is not set")',
  execution_count: 3
};

function attempt(n: number, repair: number, extra: Partial<AttemptDocument> = {}): AttemptDocument {
  return {
    attempt_number: n,
    repair_number: repair,
    status: 'failed',
    start_time: null,
    end_time: null,
    duration_seconds: 0.5,
    executed_notebook: `/srv/orchestrate_runs/runs/2/validate/attempt-${n}.ipynb`,
    executed_notebook_path: `orchestrate_runs/runs/2/validate/attempt-${n}.ipynb`,
    log: null,
    parameters: {},
    cells_completed: 2,
    cells_total: 4,
    error: null,
    ...extra
  };
}

function taskRun(extra: Partial<TaskRunDocument> = {}): TaskRunDocument {
  return {
    task_key: 'validate',
    notebook: 'validate.ipynb',
    depends_on: ['extract'],
    status: 'failed',
    status_reason: 'ValueError: threshold is not set',
    attempt_count: 1,
    duration_seconds: 0.5,
    executed_notebook: null,
    error: ERROR,
    task_values: {},
    attempts: [attempt(1, 0, { error: ERROR })],
    ...extra
  };
}

const actions = fakeActions;

describe('task run helpers', () => {
  it('isUnsuccessful: what a repair re-executes', () => {
    for (const s of ['failed', 'timed_out', 'upstream_failed', 'canceled']) {
      expect(isUnsuccessful(s)).toBe(true);
    }
    for (const s of ['succeeded', 'skipped', 'running', 'pending']) {
      expect(isUnsuccessful(s)).toBe(false);
    }
  });

  it('lastAttempt is the latest repair, then the highest attempt number', () => {
    expect(lastAttempt({ attempts: [] })).toBeNull();
    const attempts = [attempt(1, 0), attempt(3, 1), attempt(2, 0)];
    expect(lastAttempt({ attempts })?.attempt_number).toBe(3);
    expect(lastAttempt({ attempts: [attempt(2, 0), attempt(1, 0)] })?.attempt_number).toBe(2);
    expect(lastAttempt({ attempts: [attempt(5, 0), attempt(1, 2)] })?.repair_number).toBe(2);
  });

  it('taskProgress prefers the live event, then the attempt counters', () => {
    expect(taskProgress({ cell: 3, total: 7 }, attempt(1, 0))).toEqual({ cell: 3, total: 7 });
    expect(taskProgress(undefined, attempt(1, 0))).toEqual({ cell: 2, total: 4 });
    expect(taskProgress(undefined, attempt(1, 0, { cells_total: null }))).toBeNull();
    expect(taskProgress(null, null)).toBeNull();
    expect(progressText({ cell: 2, total: 5 })).toBe('code cell 2 of 5');
  });

  it('errorKindLabel and formatValue', () => {
    expect(errorKindLabel('kernel_died')).toBe('Kernel died');
    expect(errorKindLabel('something_new')).toBe('something new');
    expect(formatValue('NL,DE')).toBe('"NL,DE"');
    expect(formatValue(0.5)).toBe('0.5');
    expect(formatValue(null)).toBe('null');
    expect(formatValue([1, 'a'])).toBe('[1,"a"]');
    expect(formatValue(undefined)).toBe('undefined');
  });
});

describe('<Failure>', () => {
  it('shows the failing cell and the error, and the traceback (colours rendered, HTML escaped) on demand', () => {
    const { container, unmount } = render(
      <Failure error={ERROR} attempt={attempt(1, 0, { error: ERROR })} actions={actions()} />
    );
    const failure = container.querySelector('[data-testid=jo-failure]')!;
    expect(failure.querySelector('[data-testid=jo-failure-cell]')?.textContent).toContain(
      'raise ValueError("threshold is not set")'
    );
    expect(failure.querySelector('[data-testid=jo-failure-cell]')?.textContent).toContain('cell 4 · In [3]');
    expect(failure.querySelector('[data-testid=jo-failure-error]')?.textContent).toBe(
      'ValueError: threshold is not set: repair this run'
    );
    expect(failure.querySelector('[data-testid=jo-traceback]')).toBeNull();
    interact(() => (failure.querySelector('[data-testid=jo-traceback-toggle]') as HTMLElement).click());
    const traceback = failure.querySelector('[data-testid=jo-traceback]')!;
    expect(traceback.textContent).toContain('ValueError: threshold is not set');
    expect(traceback.textContent).not.toContain('\u001b');
    expect(traceback.querySelector('.ansi-red-fg')).not.toBeNull();
    expect(traceback.querySelector('b')).toBeNull(); // `<b>` in the traceback text stays text
    expect(traceback.textContent).toContain('threshold <b>');
    interact(() => (failure.querySelector('[data-testid=jo-traceback-toggle]') as HTMLElement).click());
    expect(failure.querySelector('[data-testid=jo-traceback]')).toBeNull();
    unmount();
  });

  it('opens the executed notebook at the failing cell of the executed notebook', () => {
    const a = actions();
    const { container, unmount } = render(
      <Failure error={ERROR} attempt={attempt(1, 0, { error: ERROR })} actions={a} />
    );
    interact(() => (container.querySelector('[data-testid=jo-open-notebook]') as HTMLElement).click());
    expect(a.openNotebook).toHaveBeenCalledWith('orchestrate_runs/runs/2/validate/attempt-1.ipynb', 5);
    unmount();
  });

  it('cannot open a notebook outside the server root', () => {
    const a = actions();
    const { container, unmount } = render(
      <Failure
        error={{ ...ERROR, cell_index: null, cell_source: null }}
        attempt={attempt(1, 0, { executed_notebook_path: null })}
        actions={a}
      />
    );
    expect(container.querySelector('[data-testid=jo-failure-cell]')).toBeNull();
    const button = container.querySelector('[data-testid=jo-open-notebook]') as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    interact(() => button.click());
    expect(a.openNotebook).not.toHaveBeenCalled();
    unmount();
  });
});

describe('<TaskDetail>', () => {
  it('shows live progress only while running', () => {
    const running = taskRun({ status: 'running', error: null, attempts: [attempt(1, 0, { status: 'running' })] });
    const { container, rerender, unmount } = render(
      <TaskDetail taskRun={running} progress={{ cell: 3, total: 4 }} actions={actions()} />
    );
    const task = container.querySelector('[data-testid=jo-task]')!;
    expect(task.getAttribute('data-task-key')).toBe('validate');
    expect(task.getAttribute('data-status')).toBe('running');
    expect(container.querySelector('[data-testid=jo-progress]')?.textContent).toContain('cell 3 of 4');
    expect(container.querySelector('[data-testid=jo-failure]')).toBeNull();
    rerender(<TaskDetail taskRun={taskRun()} actions={actions()} />);
    expect(container.querySelector('[data-testid=jo-progress]')).toBeNull();
    expect(container.querySelector('[data-testid=jo-task]')?.getAttribute('data-status')).toBe('failed');
    expect(container.querySelector('[data-testid=jo-failure]')).not.toBeNull();
    unmount();
  });

  it('names cells as the CLI does: cell N counts every input cell from 1', () => {
    expect(cellLabel(0)).toBe('cell 1');
    expect(cellLabel(6)).toBe('cell 7');
    expect(cellLabel(null)).toBe('the injected-parameters cell');
  });

  it('shows the warnings validation gave for the task', () => {
    const warned = taskRun({
      status: 'succeeded',
      error: null,
      attempts: [attempt(1, 0, { status: 'succeeded' })],
      warnings: [
        "parameters cell: the notebook has no cell tagged 'parameters': papermill injects msg in a new first cell"
      ]
    });
    const { container, unmount } = render(<TaskDetail taskRun={warned} actions={actions()} />);
    const lines = Array.from(container.querySelectorAll('[data-testid=jo-task-warning]')).map(e => e.textContent);
    expect(lines).toEqual([
      "warning: parameters cell: the notebook has no cell tagged 'parameters': papermill injects msg in a new first cell"
    ]);
    unmount();
    const plain = render(<TaskDetail taskRun={taskRun()} actions={actions()} />);
    expect(plain.container.querySelector('[data-testid=jo-task-warning]')).toBeNull();
    plain.unmount();
  });

  it('shows why a task whose notebook cannot be read failed without an attempt', () => {
    const broken = taskRun({
      task_key: 'broken',
      status: 'failed',
      status_reason:
        'reading the notebook: not valid JSON (a truncated or unsaved file?): line 40 column 1: Expecting value',
      error: null,
      attempts: [],
      attempt_count: 0
    });
    const { container, unmount } = render(<TaskDetail taskRun={broken} actions={actions()} />);
    expect(container.querySelector('[data-testid=jo-status-reason]')?.textContent).toContain(
      'reading the notebook: not valid JSON'
    );
    expect(container.querySelector('[data-testid=jo-failure]')).toBeNull();
    unmount();
  });

  it('shows why an upstream-failed task did not run, and no failure block', () => {
    const skipped = taskRun({
      task_key: 'publish',
      status: 'upstream_failed',
      status_reason: 'run_if all_success not met (validate=failed)',
      error: null,
      attempts: [],
      attempt_count: 0
    });
    const { container, unmount } = render(<TaskDetail taskRun={skipped} actions={actions()} />);
    expect(container.querySelector('[data-testid=jo-status-reason]')?.textContent).toContain('validate=failed');
    expect(container.querySelector('[data-testid=jo-failure]')).toBeNull();
    unmount();
  });
});

describe('run helpers', () => {
  it('canCancel while queued or running', () => {
    expect(['queued', 'running', 'canceling'].map(canCancel)).toEqual([true, true, true]);
    expect(['succeeded', 'failed', 'canceled'].map(canCancel)).toEqual([false, false, false]);
  });

  it('canRepair a finished run with an unsuccessful task run', () => {
    expect(canRepair({ status: 'failed', task_runs: [taskRun()] })).toBe(true);
    expect(canRepair({ status: 'running', task_runs: [taskRun()] })).toBe(false);
    expect(canRepair({ status: 'succeeded', task_runs: [taskRun({ status: 'succeeded' })] })).toBe(false);
    expect(canRepair({ status: 'canceled', task_runs: [taskRun({ status: 'canceled' })] })).toBe(true);
  });

  it('runDuration: recorded, else the time since the start while running', () => {
    const start = '2026-11-22T00:00:00.000000+00:00';
    const now = Date.parse('2026-11-22T00:00:42Z');
    expect(runDuration({ start_time: start, duration_seconds: 3.5, status: 'failed' }, now)).toBe(3.5);
    expect(runDuration({ start_time: start, duration_seconds: null, status: 'running' }, now)).toBe(42);
    expect(runDuration({ start_time: start, duration_seconds: null, status: 'failed' }, now)).toBeNull();
  });
});

describe('job helpers', () => {
  it('selectRunId keeps the chosen run while it is listed, else the newest', () => {
    expect(selectRunId(null, [])).toBeNull();
    expect(selectRunId(null, [3, 7, 5])).toBe(7);
    expect(selectRunId(5, [3, 7, 5])).toBe(5);
    expect(selectRunId(1, [3, 7, 5])).toBe(7);
  });

  it('runTaskStatuses reads full documents and list results', () => {
    expect(runTaskStatuses(null)).toBeNull();
    expect(runTaskStatuses({ run_id: 1, status: 'failed', task_runs: [{ task_key: 'a', status: 'failed' }] })).toEqual({
      a: 'failed'
    });
    expect(runTaskStatuses({ run_id: 1, status: 'failed', task_statuses: { a: 'succeeded' } })).toEqual({
      a: 'succeeded'
    });
    expect(runTaskStatuses({ run_id: 1, status: 'queued' })).toEqual({});
  });

  it('formatNotebookParameter and problemText', () => {
    expect(formatNotebookParameter({ name: 'threshold', default: 'None', inferred_type: null, help: '' })).toBe(
      'threshold = None: any'
    );
    expect(formatNotebookParameter({ name: 'n', default: null, inferred_type: 'int', help: '' })).toBe('n: int');
    expect(problemText({ path: 'job/job.yaml', field: 'tasks.x', message: 'unknown task' })).toBe(
      'job/job.yaml: tasks.x: unknown task'
    );
    expect(
      problemText({ path: '', field: 'depends_on', message: 'cycle', text: 'job: depends_on: cycle a -> b -> a' })
    ).toBe('job: depends_on: cycle a -> b -> a');
  });
});

describe('environmentLines', () => {
  it('describes an interpreter, packages and variable names, never values', async () => {
    const { environmentLines } = await import('../components/TaskDetail');
    expect(
      environmentLines({
        python: '/envs/ab/bin/python',
        package_hash: 'ab12',
        requirements: ['six==1.15.0'],
        freeze: ['six==1.15.0'],
        env_names: ['API_TOKEN']
      })
    ).toEqual(['python /envs/ab/bin/python', 'packages ab12: six==1.15.0 (1 installed)', 'variables: API_TOKEN']);
    expect(environmentLines({ kernel_name: 'python3' })).toEqual(['kernel python3']);
  });
  it('says where an attempt of the dask executor ran', async () => {
    const { environmentLines } = await import('../components/TaskDetail');
    expect(
      environmentLines({ kernel_name: 'python3', dask_worker: 'tcp://10.0.0.7:40123', host: 'gpu-node-1' })
    ).toEqual(['kernel python3', 'ran on gpu-node-1 (Dask worker tcp://10.0.0.7:40123)']);
  });
});
