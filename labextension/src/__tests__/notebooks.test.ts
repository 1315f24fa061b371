/** Task settings without writing behind the user's back (src/taskSettings.ts) and executed notebooks
 * (src/executed.ts, TaskDetail's openAttempt): the pure parts. */
import { describe, expect, it, vi } from 'vitest';

import type { IActions } from '../actions';
import type { AttemptDocument, JobDocument, TaskDocument } from '../api';
import { openAttempt } from '../components/TaskDetail';
import { settingsChanges } from '../dialogs';
import { clampCell, errorOutputIndex, executedTitle, NO_KERNEL } from '../executed';
import { changedSettings, fieldErrors, taskLocation } from '../taskSettings';

function task(task_key: string, extra: Partial<TaskDocument> = {}): TaskDocument {
  return {
    task_key,
    notebook: `${task_key}.ipynb`,
    notebook_path: `jobs/etl/${task_key}.ipynb`,
    depends_on: [],
    run_if: 'all_success',
    parameters: {},
    environment: { kernel_name: null, env: { REGION: 'eu' }, cwd: null },
    kernel_name: 'python3',
    max_retries: 0,
    min_retry_interval_seconds: 0,
    max_retry_interval_seconds: 0,
    retry_on_timeout: false,
    timeout_seconds: 300,
    description: null,
    notifications: null,
    notebook_parameters: [],
    problem: null,
    warnings: [],
    ...extra
  } as TaskDocument;
}

function job(job_id: string, tasks: TaskDocument[]): JobDocument {
  return {
    job_id,
    name: job_id,
    path: `/srv/${job_id}`,
    valid: true,
    problems: [],
    schedules: [],
    recent_runs: [],
    tasks
  };
}

describe('taskLocation', () => {
  it('finds the job whose task the notebook is, also in a subfolder of the job', () => {
    const nested = task('clean', { notebook_path: 'jobs/etl/nbs/clean.ipynb' });
    const jobs = [job('jobs/other', [task('x', { notebook_path: 'jobs/other/x.ipynb' })]), job('jobs/etl', [nested])];
    expect(taskLocation('jobs/etl/nbs/clean.ipynb', jobs, {})).toEqual({
      jobId: 'jobs/etl',
      notebook: 'nbs/clean.ipynb',
      taskKey: 'clean'
    });
  });

  it('takes a plain notebook as a task of its own folder, keyed by its task_key or file name', () => {
    expect(taskLocation('scratch/My Notebook.ipynb', [], null)).toEqual({
      jobId: 'scratch',
      notebook: 'My Notebook.ipynb',
      taskKey: 'My Notebook'
    });
    expect(taskLocation('a/b/c.ipynb', [], { task_key: 'renamed' })?.taskKey).toBe('renamed');
  });

  it('has no job for a notebook at the server root', () => {
    expect(taskLocation('top.ipynb', [], null)).toBeNull();
  });
});

describe('changedSettings', () => {
  const current = task('report', { depends_on: ['gold'], max_retries: 1 });
  const form = {
    depends_on: ['gold'],
    run_if: 'all_success',
    kernel_name: '',
    max_retries: '1',
    timeout_seconds: '300'
  };

  it('sends nothing when the form is untouched (Save on a plain notebook only tags it)', () => {
    expect(changedSettings(current, settingsChanges(current, form), null)).toEqual({});
  });

  it('sends only the fields the user changed', () => {
    const changes = settingsChanges(current, { ...form, max_retries: '3', timeout_seconds: '' });
    expect(changedSettings(current, changes, {})).toEqual({ max_retries: 3, timeout_seconds: null });
  });

  it("puts a kernel into the notebook's own environment, not the merged one", () => {
    const changes = settingsChanges(current, { ...form, kernel_name: 'python3' });
    expect(changedSettings(current, changes, { environment: { cwd: 'data' } })).toEqual({
      environment: { cwd: 'data', kernel_name: 'python3' }
    });
    const withKernel = { ...current, environment: { kernel_name: 'python3', env: {}, cwd: null } };
    const cleared = settingsChanges(withKernel, { ...form, kernel_name: '' });
    expect(changedSettings(withKernel, cleared, { environment: { kernel_name: 'python3' } })).toEqual({
      environment: null
    });
  });
});

describe('fieldErrors', () => {
  it('puts each problem under the form field it names', () => {
    expect(
      fieldErrors(
        [
          { path: '', field: 'timeout_seconds', message: 'must be at least 1' },
          { path: 'etl/a.ipynb', field: 'metadata.orchestrate.max_retries', message: 'must be ≥ 0' }
        ],
        'invalid'
      )
    ).toEqual({ timeout_seconds: 'must be at least 1', max_retries: 'must be ≥ 0' });
  });

  it('shows a cycle or an unknown task under depends_on, and a bare message there too', () => {
    expect(fieldErrors([{ path: '', field: '', message: 'dependency cycle: a -> b -> a' }], 'x')).toEqual({
      depends_on: 'dependency cycle: a -> b -> a'
    });
    expect(fieldErrors([], 'job.yaml sets timeout_seconds')).toEqual({ depends_on: 'job.yaml sets timeout_seconds' });
  });
});

describe('executed notebooks', () => {
  it('are titled by job, run, task and attempt', () => {
    const executed = { path: 'p', job: 'repair_demo', runId: 7, taskKey: 'validate', attemptNumber: 2 };
    expect(executedTitle(executed)).toBe('repair_demo #7 validate attempt 2');
    expect(executedTitle({ ...executed, repairNumber: 1 })).toBe('repair_demo #7 validate attempt 2 (repair 1)');
  });

  it('start no kernel', () => {
    expect(NO_KERNEL).toEqual({ shouldStart: false, canStart: false, autoStartDefault: false });
  });

  it('find the error output and clamp the cell', () => {
    expect(errorOutputIndex([{ output_type: 'stream' }, { output_type: 'error' }])).toBe(1);
    expect(errorOutputIndex([{ output_type: 'stream' }])).toBe(-1);
    expect([clampCell(9, 4), clampCell(-2, 4), clampCell(2, 4)]).toEqual([3, 0, 2]);
  });

  it('open read-only from a run, as a notebook without one', async () => {
    const actions = {
      openNotebook: vi.fn(() => Promise.resolve()),
      openExecuted: vi.fn(() => Promise.resolve())
    } as unknown as IActions;
    const attempt = { attempt_number: 2, repair_number: 1 } as AttemptDocument;
    await openAttempt(actions, 'runs/7/validate/attempt-2.ipynb', 5, { run_id: 7, job: 'demo' }, 'validate', attempt);
    expect(actions.openExecuted).toHaveBeenCalledWith({
      path: 'runs/7/validate/attempt-2.ipynb',
      cellIndex: 5,
      job: 'demo',
      runId: 7,
      taskKey: 'validate',
      attemptNumber: 2,
      repairNumber: 1
    });
    await openAttempt(actions, 'x.ipynb', null, undefined, 'validate', attempt);
    expect(actions.openNotebook).toHaveBeenCalledWith('x.ipynb', null);
  });
});
