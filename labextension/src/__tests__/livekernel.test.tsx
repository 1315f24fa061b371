/** The kept kernel of a failed task run in its card (src/components/LiveKernel.tsx, TaskDetail.tsx). */
import React, { act } from 'react';
import { describe, expect, it, vi } from 'vitest';

import type { IActions } from '../actions';
import type { KeptKernelDocument, TaskRunDocument } from '../api';
import { clockTime, LiveKernel, resumeLabel } from '../components/LiveKernel';
import { TaskDetail } from '../components/TaskDetail';
import { interact, render } from './render';
import { fakeActions } from './fakes';

const KEPT: KeptKernelDocument = {
  attempt_number: 1,
  cell_index: 2,
  kernel_pid: 4242,
  kernel_create_time: 1700000000.5,
  kept_time: '2026-12-02T14:00:00+00:00',
  expires_time: '2026-12-02T14:15:00+00:00',
  status: 'kept',
  connection_file: '/srv/orchestrate_runs/kernels/run-3-compute-1.json',
  console_command: 'jupyter console --existing /srv/orchestrate_runs/kernels/run-3-compute-1.json'
};

function actions(): IActions & {
  debugKernel: ReturnType<typeof vi.fn>;
  resumeTask: ReturnType<typeof vi.fn>;
} {
  return {
    ...fakeActions(),
    openExecuted: vi.fn(async () => undefined),
    debugKernel: vi.fn(async () => undefined),
    resumeTask: vi.fn(async () => undefined)
  };
}

function taskRun(kept: KeptKernelDocument | null): TaskRunDocument {
  return {
    task_key: 'compute',
    notebook: 'compute.ipynb',
    depends_on: [],
    status: 'failed',
    status_reason: 'AssertionError: fixed.flag is missing',
    attempt_count: 1,
    duration_seconds: 1.5,
    executed_notebook: null,
    error: null,
    task_values: {},
    attempts: [],
    kept_kernel: kept
  } as unknown as TaskRunDocument;
}

const byTestId = (root: HTMLElement, id: string) => root.querySelector<HTMLElement>(`[data-testid="${id}"]`);

describe('LiveKernel', () => {
  it('labels the cell as the notebook numbers it, and the expiry in local HH:MM', () => {
    expect(resumeLabel(2)).toBe('Resume from cell 3');
    expect(resumeLabel(null)).toBe('Resume from the failed cell');
    const local = new Date('2026-12-02T14:15:00+00:00');
    const hhmm = `${String(local.getHours()).padStart(2, '0')}:${String(local.getMinutes()).padStart(2, '0')}`;
    expect(clockTime('2026-12-02T14:15:00+00:00')).toBe(hhmm);
    expect(clockTime('not a time')).toBe('');
  });

  it('debugs, resumes and shows the command of a kept kernel', async () => {
    const a = actions();
    const view = render(<LiveKernel kept={KEPT} runId={3} taskKey="compute" actions={a} />);
    const root = view.container;
    expect(byTestId(root, 'jo-kept-until')?.textContent).toBe(`kept until ${clockTime(KEPT.expires_time)}`);
    expect(byTestId(root, 'jo-console-command')?.textContent).toBe(KEPT.console_command);
    expect(byTestId(root, 'jo-resume')?.textContent).toBe('Resume from cell 3');
    await act(async () => byTestId(root, 'jo-debug-kernel')?.click());
    expect(a.debugKernel).toHaveBeenCalledWith(3, 'compute');
    await act(async () => byTestId(root, 'jo-resume')?.click());
    expect(a.resumeTask).toHaveBeenCalledWith(3, 'compute');
    expect(root.textContent).not.toContain('"key"');
    view.unmount();
  });

  it('copies the console command', async () => {
    const writeText = vi.fn(async () => undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    const view = render(<LiveKernel kept={KEPT} runId={3} taskKey="compute" actions={actions()} />);
    const copy = byTestId(view.container, 'jo-copy-command');
    await act(async () => copy?.click());
    expect(copy?.textContent).toBe('copied');
    expect(writeText).toHaveBeenCalledWith(KEPT.console_command);
    view.unmount();
  });

  it('disables both buttons while a resume runs in the kernel', () => {
    const a = actions();
    const view = render(<LiveKernel kept={{ ...KEPT, status: 'in_use' }} runId={3} taskKey="compute" actions={a} />);
    const root = view.container;
    expect(byTestId(root, 'jo-kept-until')?.textContent).toBe('resuming in it…');
    expect(byTestId(root, 'jo-debug-kernel')?.hasAttribute('disabled')).toBe(true);
    expect(byTestId(root, 'jo-resume')?.hasAttribute('disabled')).toBe(true);
    interact(() => byTestId(root, 'jo-resume')?.click());
    expect(a.resumeTask).not.toHaveBeenCalled();
    view.unmount();
  });
});

describe('TaskDetail with a kept kernel', () => {
  const run = { run_id: 3, job: 'live' };

  it('shows the live kernel on the failed card while it is kept', () => {
    const view = render(<TaskDetail taskRun={taskRun(KEPT)} actions={actions()} run={run} />);
    expect(byTestId(view.container, 'jo-live-kernel')).not.toBeNull();
    view.rerender(<TaskDetail taskRun={taskRun(null)} actions={actions()} run={run} />);
    expect(byTestId(view.container, 'jo-live-kernel')).toBeNull();
    view.rerender(<TaskDetail taskRun={taskRun({ ...KEPT, status: 'ended' })} actions={actions()} run={run} />);
    expect(byTestId(view.container, 'jo-live-kernel')).toBeNull();
    view.unmount();
  });
});
