/**
 * The sidebar's notifications about runs and its confirmations: one notification per run at a time (a repair's
 * "succeeded" replaces the run's earlier "failed"), and Cancel run asks before it stops anything.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';

import type { RunDocument } from './api';

/** What a notification about a finished run says: `Run 3 of repair_demo failed: validate: ValueError: …`. */
export function runFinishedText(run: Pick<RunDocument, 'run_id' | 'job' | 'status' | 'task_runs'>): string {
  const text = `Run ${run.run_id} of ${run.job} ${run.status}`;
  if (run.status === 'succeeded') {
    return text;
  }
  const failed = run.task_runs.find(t => t.error);
  return failed?.error ? `${text}: ${failed.task_key}: ${failed.error.ename}: ${failed.error.evalue}` : text;
}

/** The subset of JupyterLab's `Notification` this uses (a test passes its own). */
export interface INotifier {
  success: typeof Notification.success;
  error: typeof Notification.error;
  dismiss: typeof Notification.dismiss;
}

/** Shows one notification per run: a newer one about the same run dismisses the earlier (`Notification.dismiss`). */
export class RunNotifications {
  constructor(private readonly notifier: INotifier = Notification) {}

  /**
   * Notify that `run` finished; `onOpen` is the notification's "Open run" action. Succeeded runs' notices close
   * by themselves after 5 s, failures stay until dismissed. Returns the notification's id.
   */
  finished(run: RunDocument, onOpen: () => void): string {
    this.dismiss(run.run_id);
    const options = {
      autoClose: run.status === 'succeeded' ? 5000 : (false as const),
      actions: [{ label: 'Open run', callback: onOpen }]
    };
    const text = runFinishedText(run);
    const id = run.status === 'succeeded' ? this.notifier.success(text, options) : this.notifier.error(text, options);
    this._ids.set(run.run_id, id);
    return id;
  }

  /** Dismiss the notification shown about `runId`, if any (e.g. when the run is repaired). */
  dismiss(runId: number): void {
    const id = this._ids.get(runId);
    if (id !== undefined) {
      this.notifier.dismiss(id);
      this._ids.delete(runId);
    }
  }

  private _ids = new Map<number, string>();
}

/**
 * Ask before canceling run `runId` of `job` (JupyterLab's dialog, a warn button); true to cancel. The dialog's
 * Cancel button (and Escape) keeps the run running.
 */
export async function confirmCancelRun(runId: number, job?: string): Promise<boolean> {
  const result = await showDialog({
    title: `Cancel run ${runId}?`,
    body:
      `Canceling stops the running attempts of run ${runId}${job ? ` of ${job}` : ''} (their kernels are ` +
      'killed) and marks the task runs that did not finish as canceled. A repair can run them again later.',
    buttons: [Dialog.cancelButton({ label: 'Cancel' }), Dialog.warnButton({ label: 'Cancel run' })],
    defaultButton: 0
  });
  return result.button.accept;
}
