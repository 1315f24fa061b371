/**
 * The one owner of the sidebar's status rules: which run and task run statuses are terminal, unsuccessful
 * (repairable), active, and the CSS class that colours each (the colours themselves are style/base.css's
 * `.jo-status-<status>`). They follow the server's enums (jupyter_orchestrate/models.py: `is_terminal`,
 * `is_failure`).
 */
import type { RunStatus, TaskRunStatus, Trigger } from './documents';

export type Status = RunStatus | TaskRunStatus;

/** Every run status, in the order filters list them (the server's `RunStatus`). */
export const RUN_STATUSES: readonly RunStatus[] = ['queued', 'running', 'succeeded', 'failed', 'canceling', 'canceled'];

/** Every trigger of a run (the server's `Trigger`). */
export const TRIGGERS: readonly Trigger[] = ['manual', 'schedule', 'file_arrival', 'job_completion', 'api', 'run_job'];

/** Statuses a run or task run does not leave by itself (only a repair re-opens them). */
export const TERMINAL_STATUSES: readonly Status[] = [
  'succeeded',
  'failed',
  'canceled',
  'upstream_failed',
  'skipped',
  'timed_out'
];

/** Task run statuses that a repair re-executes (the server's `TaskRunStatus.is_failure`). */
export const UNSUCCESSFUL_STATUSES: readonly TaskRunStatus[] = ['failed', 'timed_out', 'upstream_failed', 'canceled'];

/** True once a run (or task run) can no longer change by itself. */
export function isTerminal(status: Status | string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** True for a task run status that is not a success and can be repaired. */
export function isUnsuccessful(status: Status | string): boolean {
  return (UNSUCCESSFUL_STATUSES as readonly string[]).includes(status);
}

/** True while a run can be canceled (queued, running or already canceling). */
export function isActive(status: Status | string): boolean {
  return status === 'queued' || status === 'running' || status === 'canceling';
}

/** True when the task's own attempt failed (an error or a timeout), not its upstream or a cancel. */
export function isErrored(status: Status | string): boolean {
  return status === 'failed' || status === 'timed_out';
}

/**
 * The status a task group is drawn with (its collapsed DAG box): one of its tasks still going (`running`),
 * else its worst failure (`failed`/`timed_out` as `failed`, then `upstream_failed`, then `canceled`), else
 * `succeeded` when one succeeded and the rest were skipped, else what they all are (`skipped`, `pending`);
 * `none` for no statuses (no run).
 */
export function groupStatus(statuses: string[]): string {
  if (statuses.length === 0 || statuses.every(s => s === 'none')) {
    return 'none';
  }
  if (statuses.some(s => !isTerminal(s) && s !== 'pending' && s !== 'none')) {
    return 'running';
  }
  for (const [found, shown] of [
    ['failed', 'failed'],
    ['timed_out', 'failed'],
    ['upstream_failed', 'upstream_failed'],
    ['canceled', 'canceled']
  ]) {
    if (statuses.includes(found)) {
      return shown;
    }
  }
  if (statuses.includes('pending') || statuses.includes('none')) {
    return statuses.some(s => s === 'succeeded') ? 'running' : 'pending';
  }
  return statuses.includes('succeeded') ? 'succeeded' : 'skipped';
}

/** The CSS class that colours `status` (badges, DAG nodes, Gantt bars, matrix cells). */
export function statusClass(status: Status | string): string {
  return `jo-status-${status}`;
}
