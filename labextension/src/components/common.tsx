/** Small shared pieces: status badges, run cells, durations. */
import React, { useState } from 'react';
import { isTerminal, isUnsuccessful, statusClass } from '../status';

export function StatusBadge(props: { status: string }): JSX.Element {
  return <span className={`jo-badge ${statusClass(props.status)}`}>{props.status.replace('_', ' ')}</span>;
}

export function RunCell(props: {
  runId: number;
  status: string;
  onClick?: (event?: React.MouseEvent) => void;
  title?: string;
}): JSX.Element {
  return (
    <span
      className={`jo-cell ${statusClass(props.status)}`}
      title={props.title ?? `run ${props.runId}: ${props.status}`}
      data-run-id={props.runId}
      data-status={props.status}
      onClick={props.onClick}
    />
  );
}

/**
 * How the sidebar names a cell, as the CLI, the API's messages and the widget do (`cell_label` in
 * jupyter_orchestrate/models.py): `cell 7` is the notebook's 7th cell counting from 1, markdown cells included,
 * in the input notebook (`cell_index` 6); null is the cell papermill injected with the parameters.
 */
export function cellLabel(cellIndex: number | null): string {
  return cellIndex === null ? 'the injected-parameters cell' : `cell ${cellIndex + 1}`;
}

/** `1 task`, `2 tasks`, `0 attempts`: a count with its noun, plural unless the count is 1 (`plural` for irregulars). */
export function countOf(count: number, noun: string, plural = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : plural}`;
}

/**
 * A for-each task's iterations counted as `show` counts them (`iteration_counts` in models.py): `12/12`,
 * `10/12 · 2 failed`, `3/12 · 9 running` (succeeded of all, then failures, then those not finished).
 */
export function iterationCounts(statuses: string[]): string {
  const done = statuses.filter(s => s === 'succeeded').length;
  const failed = statuses.filter(s => isUnsuccessful(s)).length;
  const running = statuses.filter(s => !isTerminal(s)).length;
  return [
    `${done}/${statuses.length}`,
    ...(failed ? [`${failed} failed`] : []),
    ...(running ? [`${running} running`] : [])
  ].join(' · ');
}

/**
 * Shorten `text` to at most `maxChars` characters with an ellipsis in the middle, keeping its end: the end is
 * what tells `reconcile_intercompany_eu` from `reconcile_intercompany_us` (a tail cut would show both as
 * `reconcile_interco…`). The full text belongs in a title (hover) next to it.
 */
export function middleEllipsis(text: string, maxChars: number): string {
  if (text.length <= maxChars) {
    return text;
  }
  if (maxChars <= 1) {
    return text.slice(0, Math.max(0, maxChars));
  }
  const tail = Math.floor((maxChars - 1) * 0.4);
  const head = maxChars - 1 - tail;
  return `${text.slice(0, head)}…${tail > 0 ? text.slice(text.length - tail) : ''}`;
}

/** `12.3 s`, `4.1 min`; empty for null. */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) {
    return '';
  }
  return seconds < 120 ? `${seconds.toFixed(1)} s` : `${(seconds / 60).toFixed(1)} min`;
}

export function ErrorText(props: { error: string | null }): JSX.Element | null {
  return props.error ? <div className="jo-error-text">{props.error}</div> : null;
}

/** Rows a long list (tasks, matrix rows, task cards) shows before its "Show all" button: a 1,000-task job's
 * lists rendered whole took ~0.5 s (benchmarks/big_run.py). */
export const LIST_LIMIT = 50;

/**
 * The first `limit` of `items` (and any beyond it that `keep` asks for, e.g. the selected task), rendered with
 * `render`, then a "Show all N" button that renders the rest.
 */
export function Limited<T>(props: {
  items: T[];
  render: (item: T) => JSX.Element;
  limit?: number;
  keep?: (item: T) => boolean;
  /** Where the button goes, e.g. in a table row of its own inside a `tbody`. */
  wrapButton?: (button: JSX.Element) => JSX.Element;
}): JSX.Element {
  const [all, setAll] = useState(false);
  const limit = props.limit ?? LIST_LIMIT;
  const shown = all ? props.items : props.items.filter((item, i) => i < limit || (props.keep?.(item) ?? false));
  return (
    <>
      {shown.map(props.render)}
      {shown.length < props.items.length &&
        (props.wrapButton ?? (button => button))(
          <button className="jo-link jo-show-all" data-testid="jo-show-all" onClick={() => setAll(true)}>
            Show all {props.items.length}
          </button>
        )}
    </>
  );
}
