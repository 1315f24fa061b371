/**
 * The narrow-sidebar and failures-first behaviour (issue 13): the run view puts the failed task runs first with
 * their cell and error and collapses succeeded ones; counts use the plural rule; long names ellipsize with a title;
 * the stale banner; the empty state's example is a valid job; one notification per run.
 */
import React from 'react';
import { afterEach, describe, expect, it, vi } from 'vitest';

import type { AttemptError, JobDocument, RunDocument, TaskRunDocument } from '../api';
import { countOf, middleEllipsis } from '../components/common';
import { EmptyJobs, JobsList } from '../components/JobsList';
import { Matrix } from '../components/Matrix';
import { orderTaskRuns, RunView } from '../components/RunView';
import { Panel, StaleBanner } from '../components/Sidebar';
import { TaskDetail } from '../components/TaskDetail';
import { OrchestrateModel } from '../model';
import { INotifier, RunNotifications, runFinishedText } from '../notifications';
import { interact, render } from './render';
import { fakeActions } from './fakes';

const ERROR: AttemptError = {
  kind: 'cell_error',
  ename: 'ValueError',
  evalue: 'threshold is not set',
  traceback: ['ValueError: threshold is not set'],
  cell_index: 3,
  executed_cell_index: 5,
  cell_source: 'if threshold is None:\n    raise ValueError("threshold is not set")',
  execution_count: 3
};

function taskRun(task_key: string, status: string, extra: Partial<TaskRunDocument> = {}): TaskRunDocument {
  const failed = status === 'failed';
  return {
    task_key,
    notebook: `${task_key}.ipynb`,
    depends_on: [],
    status: status as TaskRunDocument['status'],
    status_reason: status === 'upstream_failed' ? 'run_if all_success not met (validate=failed)' : null,
    attempt_count: status === 'upstream_failed' ? 0 : 1,
    duration_seconds: 0.5,
    executed_notebook: null,
    error: failed ? ERROR : null,
    task_values: {},
    attempts:
      status === 'upstream_failed'
        ? []
        : [
            {
              attempt_number: 1,
              repair_number: 0,
              status: status as TaskRunDocument['status'],
              start_time: '2026-11-22T00:00:01+00:00',
              end_time: '2026-11-22T00:00:02+00:00',
              duration_seconds: 1,
              executed_notebook: null,
              executed_notebook_path: `orchestrate_runs/runs/2/${task_key}/attempt-1.ipynb`,
              log: null,
              parameters: {},
              cells_completed: 4,
              cells_total: 4,
              error: failed ? ERROR : null
            }
          ],
    ...extra
  };
}

function failedRun(): RunDocument {
  return {
    run_id: 2,
    job: 'repair_demo',
    job_id: 'example_notebooks/repair_demo',
    job_path: '/srv/example_notebooks/repair_demo',
    status: 'failed',
    status_reason: 'validate failed in cell 4: ValueError: threshold is not set; not run: publish',
    start_time: '2026-11-22T00:00:00+00:00',
    end_time: '2026-11-22T00:00:03+00:00',
    duration_seconds: 3,
    parameters: {},
    repair_count: 0,
    task_runs: [taskRun('extract', 'succeeded'), taskRun('validate', 'failed'), taskRun('publish', 'upstream_failed')],
    repairs: []
  };
}

const actions = fakeActions;

function job(extra: Partial<JobDocument> = {}): JobDocument {
  return {
    job_id: 'finance/month_end/reconciliation_with_a_very_long_folder_name_that_does_not_fit',
    name: 'month_end_reconciliation_of_intercompany_balances',
    path: '/srv/finance/month_end',
    valid: true,
    problems: [],
    schedules: [],
    recent_runs: [],
    tasks: [],
    ...extra
  };
}

const models: OrchestrateModel[] = [];
function model(): OrchestrateModel {
  const m = new OrchestrateModel({ subscribe: false });
  models.push(m);
  return m;
}
afterEach(() => {
  models.splice(0).forEach(m => m.dispose());
});

const cards = (root: Element) =>
  [...root.querySelectorAll<HTMLElement>('[data-testid=jo-task]')].map(el => [
    el.dataset.taskKey,
    el.dataset.collapsed
  ]);

describe('failures first', () => {
  it('orderTaskRuns: own failures first, then other unsuccessful, running, pending, done (stable)', () => {
    const runs = [
      { key: 'a', status: 'succeeded' },
      { key: 'b', status: 'pending' },
      { key: 'c', status: 'upstream_failed' },
      { key: 'd', status: 'timed_out' },
      { key: 'e', status: 'running' },
      { key: 'f', status: 'failed' },
      { key: 'g', status: 'succeeded' }
    ];
    const { failed, others } = orderTaskRuns(runs);
    expect(failed.map(r => r.key)).toEqual(['d', 'f']);
    expect(others.map(r => r.key)).toEqual(['c', 'e', 'b', 'a', 'g']);
  });

  it('the run view shows the failed task, its cell and error before the timeline, succeeded cards collapsed', () => {
    const m = model();
    m.runs.set(2, failedRun());
    const { container, unmount } = render(<RunView model={m} runId={2} actions={actions()} />);
    const view = container.querySelector('[data-testid=jo-run-view]')!;
    expect(view.querySelector('[data-testid=jo-run-reason]')?.textContent).toContain('validate failed in cell 4');
    expect(cards(view)).toEqual([
      ['validate', 'false'],
      ['publish', 'false'],
      ['extract', 'true']
    ]);
    // the failed section comes before the timeline in the document
    const failedSection = view.querySelector('[data-testid=jo-failed-tasks]')!;
    const gantt = view.querySelector('[data-testid=jo-gantt]')!;
    expect(failedSection.compareDocumentPosition(gantt) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
    const failure = failedSection.querySelector('[data-testid=jo-failure]')!;
    expect(failure.querySelector('[data-testid=jo-failure-cell]')?.textContent).toContain('cell 4');
    expect(failure.querySelector('[data-testid=jo-failure-error]')?.textContent).toBe(
      'ValueError: threshold is not set'
    );
    // a collapsed card shows only its header line
    const extract = view.querySelector<HTMLElement>('[data-testid=jo-task][data-task-key=extract]')!;
    expect(extract.querySelector('[data-testid=jo-attempts]')).toBeNull();
    expect(extract.querySelector('[data-testid=jo-task-header]')?.getAttribute('aria-expanded')).toBe('false');
    unmount();
  });

  it('a succeeded card expands on click and collapses again', () => {
    const { container, unmount } = render(
      <TaskDetail taskRun={taskRun('extract', 'succeeded')} actions={actions()} defaultCollapsed={true} />
    );
    const card = () => container.querySelector<HTMLElement>('[data-testid=jo-task]')!;
    const header = () => container.querySelector<HTMLElement>('[data-testid=jo-task-header]')!;
    expect(card().dataset.collapsed).toBe('true');
    interact(() => header().click());
    expect(card().dataset.collapsed).toBe('false');
    expect(card().querySelector('[data-testid=jo-attempts]')).not.toBeNull();
    expect(header().getAttribute('aria-expanded')).toBe('true');
    interact(() => header().dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true })));
    expect(card().dataset.collapsed).toBe('true');
    unmount();
  });

  it('a selected card (timeline click) expands', () => {
    const props = { taskRun: taskRun('extract', 'succeeded'), actions: actions(), defaultCollapsed: true };
    const { container, rerender, unmount } = render(<TaskDetail {...props} selected={false} />);
    expect(container.querySelector<HTMLElement>('[data-testid=jo-task]')!.dataset.collapsed).toBe('true');
    rerender(<TaskDetail {...props} selected={true} />);
    expect(container.querySelector<HTMLElement>('[data-testid=jo-task]')!.dataset.collapsed).toBe('false');
    unmount();
  });

  it('a succeeded run has no failed section and every card collapsed', () => {
    const m = model();
    const run = { ...failedRun(), status: 'succeeded' as const, status_reason: null };
    run.task_runs = [taskRun('extract', 'succeeded'), taskRun('validate', 'succeeded')];
    m.runs.set(2, run);
    const { container, unmount } = render(<RunView model={m} runId={2} actions={actions()} />);
    expect(container.querySelector('[data-testid=jo-failed-tasks]')).toBeNull();
    expect(cards(container)).toEqual([
      ['extract', 'true'],
      ['validate', 'true']
    ]);
    unmount();
  });
});

describe('counts and long names', () => {
  it('countOf: singular for exactly one', () => {
    expect(countOf(1, 'task')).toBe('1 task');
    expect(countOf(0, 'task')).toBe('0 tasks');
    expect(countOf(2, 'attempt')).toBe('2 attempts');
    expect(countOf(1, 'repair')).toBe('1 repair');
  });

  it('middleEllipsis keeps the start and the end within maxChars', () => {
    expect(middleEllipsis('short', 10)).toBe('short');
    const cut = middleEllipsis('reconcile_intercompany_balances_eu', 16);
    expect(cut).toHaveLength(16);
    expect(cut).toMatch(/^reconcile.*….*_eu$/);
  });

  it('the matrix tells twins apart: labels cut in the middle, full keys in titles', () => {
    const twins = ['reconcile_intercompany_balances_eu', 'reconcile_intercompany_balances_us'];
    const { container, unmount } = render(
      <Matrix
        taskKeys={twins}
        runs={[{ run_id: 1, status: 'succeeded', task_statuses: { [twins[0]]: 'succeeded', [twins[1]]: 'failed' } }]}
        onOpenRun={() => undefined}
      />
    );
    const labels = [...container.querySelectorAll<HTMLElement>('tbody td.jo-matrix-task')];
    expect(labels.map(l => l.title)).toEqual(twins);
    expect(labels[0].textContent).not.toBe(labels[1].textContent);
    expect(labels[0].textContent).toMatch(/^reconcile.*….*_eu$/);
    unmount();
  });

  it('the jobs list says "1 task", ellipsizes names with their full text in a title, and disables Run', () => {
    const m = model();
    const long = job({
      tasks: [
        {
          task_key: 'a',
          depends_on: []
        } as unknown as NonNullable<JobDocument['tasks']>[number]
      ]
    });
    m.jobs = [long, job({ job_id: 'broken', name: 'broken', valid: false, problems: [] })];
    const onRun = vi.fn();
    const { container, unmount } = render(<JobsList model={m} onRun={onRun} />);
    const [first, second] = [...container.querySelectorAll<HTMLElement>('.jo-job')];
    const name = first.querySelector<HTMLElement>('.jo-job-name')!;
    expect(name.classList.contains('jo-ellipsis')).toBe(true);
    expect(name.title).toBe(long.name);
    const path = first.querySelector<HTMLElement>('.jo-path')!;
    expect(path.textContent).toBe(`${long.job_id} · 1 task`);
    expect(path.title).toBe(long.job_id);
    expect(second.querySelector('.jo-path')?.textContent).toContain('0 tasks');
    const run = first.querySelector<HTMLElement>('.jo-run-button')!;
    expect(run.textContent).toBe('Run');
    expect(run.getAttribute('aria-disabled')).toBe('false');
    expect(run.querySelector('svg')).not.toBeNull(); // runIcon
    interact(() => run.click());
    expect(onRun).toHaveBeenCalledWith(long);
    const disabled = second.querySelector<HTMLElement>('.jo-run-button')!;
    expect(disabled.getAttribute('aria-disabled')).toBe('true');
    expect(disabled.title).toBe('Fix the problems first');
    interact(() => disabled.click());
    expect(onRun).toHaveBeenCalledTimes(1);
    unmount();
  });

  it("the empty state's example is a valid job: every depends_on names a task of the example", () => {
    const { container, unmount } = render(<EmptyJobs />);
    const items = [...container.querySelectorAll('[data-testid=jo-empty-example] li')];
    expect(items.length).toBeGreaterThanOrEqual(2);
    const tasks = new Map<string, { depends_on?: string[] }>();
    for (const item of items) {
      const [path, metadata] = [...item.querySelectorAll('code')].map(c => c.textContent ?? '');
      const key = path
        .split('/')
        .pop()!
        .replace(/\.ipynb$/, '');
      tasks.set(key, (JSON.parse(`{${metadata}}`) as { orchestrate: { depends_on?: string[] } }).orchestrate);
      expect(path.split('/')[0]).toBe('sales'); // one folder: one job
    }
    const dependencies = [...tasks.values()].flatMap(t => t.depends_on ?? []);
    expect(dependencies.length).toBeGreaterThan(0);
    for (const dependency of dependencies) {
      expect(tasks.has(dependency)).toBe(true);
    }
    unmount();
  });
});

describe('server unreachable', () => {
  it('StaleBanner shows the error with Retry, and nothing without an error', () => {
    const onRetry = vi.fn();
    const { container, rerender, unmount } = render(<StaleBanner error="cannot reach the server" onRetry={onRetry} />);
    const banner = container.querySelector('[data-testid=jo-stale-banner]')!;
    expect(banner.getAttribute('role')).toBe('alert');
    expect(banner.textContent).toContain('cannot reach the server');
    interact(() => container.querySelector<HTMLButtonElement>('[data-testid=jo-retry]')!.click());
    expect(onRetry).toHaveBeenCalledTimes(1);
    rerender(<StaleBanner error={null} onRetry={onRetry} />);
    expect(container.querySelector('[data-testid=jo-stale-banner]')).toBeNull();
    unmount();
  });

  it('the panel keeps the last jobs, marks them stale and retries through the model', () => {
    const m = model();
    m.jobs = [job()];
    m.jobsError = 'cannot reach the server: TypeError';
    const refresh = vi.spyOn(m, 'refresh').mockResolvedValue(undefined);
    const { container, rerender, unmount } = render(<Panel model={m} actions={actions()} />);
    const panel = container.querySelector<HTMLElement>('.jo-panel')!;
    expect(panel.dataset.stale).toBe('true');
    expect(container.querySelector('[data-testid=jo-stale-banner]')?.textContent).toContain('TypeError');
    expect(container.querySelectorAll('.jo-job')).toHaveLength(1); // still shown, greyed by the stale style
    interact(() => container.querySelector<HTMLButtonElement>('[data-testid=jo-retry]')!.click());
    expect(refresh).toHaveBeenCalled();
    m.jobsError = null;
    rerender(<Panel model={m} actions={actions()} />);
    expect(container.querySelector<HTMLElement>('.jo-panel')!.dataset.stale).toBe('false');
    expect(container.querySelector('[data-testid=jo-stale-banner]')).toBeNull();
    unmount();
  });
});

describe('notifications', () => {
  function notifier() {
    let n = 0;
    return {
      success: vi.fn(() => `n${++n}`),
      error: vi.fn(() => `n${++n}`),
      dismiss: vi.fn()
    };
  }

  it("a repaired run's success dismisses its earlier failure notification, other runs' stay", () => {
    const fake = notifier();
    const notes = new RunNotifications(fake as unknown as INotifier);
    const failed = failedRun();
    const other = { ...failedRun(), run_id: 3 };
    expect(notes.finished(failed, () => undefined)).toBe('n1');
    expect(notes.finished(other, () => undefined)).toBe('n2');
    expect(fake.error).toHaveBeenCalledTimes(2);
    expect(fake.dismiss).not.toHaveBeenCalled();
    const repaired = { ...failedRun(), status: 'succeeded' as const };
    expect(notes.finished(repaired, () => undefined)).toBe('n3');
    expect(fake.dismiss).toHaveBeenCalledWith('n1');
    expect(fake.dismiss).not.toHaveBeenCalledWith('n2');
    notes.dismiss(3);
    expect(fake.dismiss).toHaveBeenCalledWith('n2');
    notes.dismiss(3); // already gone: no second dismiss
    expect(fake.dismiss).toHaveBeenCalledTimes(2);
  });

  it('runFinishedText names the failing task and error', () => {
    expect(runFinishedText(failedRun())).toBe(
      'Run 2 of repair_demo failed: validate: ValueError: threshold is not set'
    );
    expect(runFinishedText({ ...failedRun(), status: 'succeeded' })).toBe('Run 2 of repair_demo succeeded');
  });
});
