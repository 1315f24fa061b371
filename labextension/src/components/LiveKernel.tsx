/**
 * The kept kernel of a failed task run (`task_run.kept_kernel`): "Debug in live kernel" (a JupyterLab console on
 * it, through the server's kernel API), "Resume from cell N" (a repair that re-executes from the failed cell in
 * that kernel), when the server shuts it down, and the terminal command that attaches a console to it.
 */
import React, { useState } from 'react';
import { Button } from '@jupyterlab/ui-components';

import type { IActions } from '../actions';
import type { KeptKernelDocument } from '../api';

/** `HH:MM` of an ISO time, in the browser's time zone (empty for an unparsable time). */
export function clockTime(iso: string): string {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) {
    return '';
  }
  return `${String(when.getHours()).padStart(2, '0')}:${String(when.getMinutes()).padStart(2, '0')}`;
}

/** `Resume from cell 3` for the 0-based failed cell index 2 (the label of the cell, as the notebook shows it). */
export function resumeLabel(cellIndex: number | null): string {
  return cellIndex === null ? 'Resume from the failed cell' : `Resume from cell ${cellIndex + 1}`;
}

export function LiveKernel(props: {
  kept: KeptKernelDocument;
  runId: number;
  taskKey: string;
  actions: IActions;
}): JSX.Element {
  const { kept, runId, taskKey, actions } = props;
  const [copied, setCopied] = useState(false);
  const [busy, setBusy] = useState(false);
  const inUse = kept.status === 'in_use';
  const until = clockTime(kept.expires_time);
  const act = async (what: () => Promise<void>) => {
    setBusy(true);
    try {
      await what();
    } finally {
      setBusy(false);
    }
  };
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(kept.console_command);
      setCopied(true);
    } catch {
      setCopied(false); // no clipboard (insecure context): the command stays selectable
    }
  };
  return (
    <div className="jo-live-kernel" data-testid="jo-live-kernel" data-status={kept.status}>
      <div className="jo-row jo-wrap">
        <span className="jo-section-title">Live kernel</span>
        <span className="jo-muted" data-testid="jo-kept-until" title={`Kept until ${kept.expires_time}`}>
          {inUse ? 'resuming in it…' : until ? `kept until ${until}` : 'kept'}
        </span>
      </div>
      <div className="jo-row jo-wrap">
        <Button
          small
          className="jp-mod-styled jp-mod-accept"
          data-testid="jo-debug-kernel"
          disabled={busy || inUse}
          title="Open a console on the failed attempt's kernel: its variables and the exception are there"
          onClick={() => void act(() => actions.debugKernel(runId, taskKey))}
        >
          Debug in live kernel
        </Button>
        <Button
          small
          className="jp-mod-styled"
          data-testid="jo-resume"
          disabled={busy || inUse}
          title="Re-execute from the failed cell in this kernel (the notebook as it is now), then the downstream tasks"
          onClick={() => void act(() => actions.resumeTask(runId, taskKey))}
        >
          {resumeLabel(kept.cell_index)}
        </Button>
      </div>
      <div className="jo-row jo-wrap">
        <code className="jo-code jo-console-command" data-testid="jo-console-command">
          {kept.console_command}
        </code>
        <button className="jo-link" data-testid="jo-copy-command" title="Copy the command" onClick={() => void copy()}>
          {copied ? 'copied' : 'copy'}
        </button>
      </div>
    </div>
  );
}
