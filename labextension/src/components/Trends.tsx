/**
 * A job's trends (as in Databricks' job run history): run duration over the last N runs as SVG bars coloured
 * by status (with the median as a line), per-task p50/p90 duration and failure rate, and each task's slowest
 * cells, from `GET jobs/{job}/trends` (docs/api.md; the same numbers as the history views).
 */
import React, { useEffect, useState } from 'react';
import { HTMLSelect } from '@jupyterlab/ui-components';

import { api, TaskTrendDocument, TrendRunDocument, TrendsDocument } from '../api';
import { OrchestrateModel } from '../model';
import { statusClass } from '../status';
import { cellLabel, ErrorText, formatSeconds } from './common';

/** The choices of how many runs to show (the API allows 1..500). */
export const TREND_LIMITS = [20, 50, 100, 200, 500];
export const DEFAULT_TREND_LIMIT = 50;

/** One bar of the run-duration chart, in SVG user units. */
export interface IDurationBar {
  run: TrendRunDocument;
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Lay out the run-duration bars: one per run in the given (oldest first) order across `width`, heights scaled
 * to the longest run into `height`. Unfinished runs (no duration) get a 1-unit stub so they can be hovered.
 */
export function durationBars(runs: TrendRunDocument[], width: number, height: number): IDurationBar[] {
  if (runs.length === 0) {
    return [];
  }
  const longest = Math.max(...runs.map(r => r.duration_seconds ?? 0));
  const slot = width / runs.length;
  const gap = slot > 4 ? Math.min(2, slot * 0.2) : 0;
  return runs.map((run, i) => {
    const barHeight = longest > 0 && run.duration_seconds ? Math.max(1, (run.duration_seconds / longest) * height) : 1;
    return { run, x: i * slot + gap / 2, y: height - barHeight, width: slot - gap, height: barHeight };
  });
}

/** The median of the finished runs' durations, or null. */
export function medianDuration(runs: TrendRunDocument[]): number | null {
  const values = runs
    .map(r => r.duration_seconds)
    .filter((d): d is number => d !== null && d !== undefined)
    .sort((a, b) => a - b);
  if (values.length === 0) {
    return null;
  }
  const middle = Math.floor(values.length / 2);
  return values.length % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

/** A cell's duration: `320 ms` under a second, else as {@link formatSeconds}. */
export function formatCellSeconds(seconds: number): string {
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : formatSeconds(seconds);
}

/** `25 %`; an em dash when nothing ran. */
export function formatRate(rate: number | null | undefined): string {
  return rate === null || rate === undefined ? '—' : `${Math.round(rate * 100)} %`;
}

/** The tooltip of a run's bar. */
export function barTitle(run: TrendRunDocument): string {
  const duration = run.duration_seconds === null ? 'not finished' : formatSeconds(run.duration_seconds);
  return `run ${run.run_id} · ${run.status.replace(/_/g, ' ')} · ${duration} · ${run.trigger} · started ${run.start_time}`;
}

const CHART_WIDTH = 280;
const CHART_HEIGHT = 80;

/** Run duration over the runs, oldest left: a bar per run (click opens it) and the median as a dashed line. */
export function DurationChart(props: { runs: TrendRunDocument[]; onOpenRun: (runId: number) => void }): JSX.Element {
  const bars = durationBars(props.runs, CHART_WIDTH, CHART_HEIGHT);
  const longest = Math.max(0, ...props.runs.map(r => r.duration_seconds ?? 0));
  const median = medianDuration(props.runs);
  const medianY = median !== null && longest > 0 ? CHART_HEIGHT - (median / longest) * CHART_HEIGHT : null;
  return (
    <div className="jo-trends-chart">
      <svg
        viewBox={`0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`}
        preserveAspectRatio="none"
        role="img"
        aria-label="run duration over the last runs"
        data-testid="jo-trends-runs"
      >
        {bars.map(bar => (
          <rect
            key={bar.run.run_id}
            className={`jo-trend-bar ${statusClass(bar.run.status)}`}
            data-run-id={bar.run.run_id}
            data-status={bar.run.status}
            x={bar.x}
            y={bar.y}
            width={bar.width}
            height={bar.height}
            onClick={() => props.onOpenRun(bar.run.run_id)}
          >
            <title>{barTitle(bar.run)}</title>
          </rect>
        ))}
        {medianY !== null && (
          <line className="jo-trend-median" x1={0} x2={CHART_WIDTH} y1={medianY} y2={medianY}>
            <title>median run duration {formatSeconds(median)}</title>
          </line>
        )}
      </svg>
      <div className="jo-trends-axis jo-muted">
        <span>run {props.runs[0]?.run_id}</span>
        <span>
          longest {formatSeconds(longest)}
          {median !== null ? ` · median ${formatSeconds(median)}` : ''}
        </span>
        <span>run {props.runs[props.runs.length - 1]?.run_id}</span>
      </div>
    </div>
  );
}

/** One task's row: p50 and p90 as bars against the slowest task's p90, and its failure rate. */
function TaskRow(props: { task: TaskTrendDocument; scale: number }): JSX.Element {
  const { task, scale } = props;
  const width = (seconds: number | null) => (seconds && scale > 0 ? `${(seconds / scale) * 100}%` : '0');
  const failing = (task.failure_rate ?? 0) > 0;
  return (
    <tr data-task-key={task.task_key}>
      <td className="jo-trends-task" title={task.task_key}>
        {task.task_key}
      </td>
      <td
        className="jo-trends-durations"
        title={`${task.task_key}: p50 ${formatSeconds(task.p50_duration_seconds) || '—'}, p90 ${
          formatSeconds(task.p90_duration_seconds) || '—'
        } over ${task.succeeded} succeeded task run${task.succeeded === 1 ? '' : 's'}`}
      >
        <div className="jo-trends-track">
          <div className="jo-trends-p90" style={{ width: width(task.p90_duration_seconds) }} />
          <div
            className={`jo-trends-p50 ${statusClass('succeeded')}`}
            style={{ width: width(task.p50_duration_seconds) }}
          />
        </div>
        <span data-testid="jo-trends-p50">{formatSeconds(task.p50_duration_seconds) || '—'}</span>
        <span className="jo-muted"> / {formatSeconds(task.p90_duration_seconds) || '—'}</span>
      </td>
      <td
        className={failing ? `jo-trends-rate ${statusClass('failed')}` : 'jo-trends-rate'}
        data-testid="jo-trends-failure-rate"
        title={`${task.failed} of ${task.ran} task run${task.ran === 1 ? '' : 's'} that ran failed or timed out`}
      >
        {formatRate(task.failure_rate)}
      </td>
    </tr>
  );
}

/** The trends of a job, fetched for the last `limit` runs and again when one of its runs ends. */
export function Trends(props: {
  model: OrchestrateModel;
  jobId: string;
  onOpenRun: (runId: number) => void;
}): JSX.Element {
  const { model, jobId } = props;
  const [limit, setLimit] = useState(DEFAULT_TREND_LIMIT);
  const [trends, setTrends] = useState<TrendsDocument | null>(null);
  const [error, setError] = useState<string | null>(null);
  // refetch when the job's recent runs change (a run started or ended)
  const recent = JSON.stringify((model.job(jobId)?.recent_runs ?? []).map(r => [r.run_id, r.status]));
  useEffect(() => {
    let live = true;
    api.jobTrends(jobId, limit).then(
      result => {
        if (live) {
          setTrends(result);
          setError(null);
        }
      },
      reason => live && setError(String((reason as Error).message || reason))
    );
    return () => {
      live = false;
    };
  }, [jobId, limit, recent]);

  const scale = Math.max(0, ...(trends?.tasks ?? []).map(t => t.p90_duration_seconds ?? 0));
  return (
    <div className="jo-body jo-trends" data-testid="jo-trends" data-job-id={jobId}>
      <div className="jo-row">
        <span className="jo-section-title">Run duration</span>
        <HTMLSelect
          aria-label="runs shown"
          data-testid="jo-trends-limit"
          value={limit}
          onChange={event => setLimit(Number(event.currentTarget.value))}
          options={TREND_LIMITS.map(n => ({ value: n, label: `last ${n} runs` }))}
        />
      </div>
      <ErrorText error={error && `Cannot load the trends of ${jobId}: ${error}`} />
      {!trends && !error && <div className="jo-muted">Loading…</div>}
      {trends && trends.runs.length === 0 && (
        <div className="jo-muted">No runs yet: run the job to see its trends.</div>
      )}
      {trends && trends.runs.length > 0 && (
        <>
          <DurationChart runs={trends.runs} onOpenRun={props.onOpenRun} />
          <div className="jo-section-title">Tasks</div>
          <table className="jo-table jo-trends-tasks" data-testid="jo-trends-tasks">
            <thead>
              <tr>
                <th>task</th>
                <th title="median / 90th percentile of succeeded task runs">p50 / p90</th>
                <th title="failed or timed out, of the task runs that ran">failures</th>
              </tr>
            </thead>
            <tbody>
              {trends.tasks.map(task => (
                <TaskRow key={task.task_key} task={task} scale={scale} />
              ))}
            </tbody>
          </table>
          <div className="jo-section-title">Slowest cells</div>
          {trends.tasks
            .filter(task => task.slowest_cells.length > 0)
            .map(task => (
              <div key={task.task_key} className="jo-trends-cells" data-task-key={task.task_key}>
                <div className="jo-trends-task" title={task.task_key}>
                  {task.task_key}
                </div>
                <ol>
                  {task.slowest_cells.map(cell => (
                    <li
                      key={String(cell.cell_index)}
                      data-cell-index={cell.cell_index ?? ''}
                      title={`${cellLabel(cell.cell_index)}: median ${formatCellSeconds(
                        cell.median_duration_seconds
                      )}, max ${formatCellSeconds(cell.max_duration_seconds)} over ${cell.executions} execution${
                        cell.executions === 1 ? '' : 's'
                      }${cell.source_first_line ? `\n${cell.source_first_line}` : ''}`}
                    >
                      <span className="jo-trends-cell-label">{cellLabel(cell.cell_index)}</span>
                      <span>{formatCellSeconds(cell.median_duration_seconds)}</span>
                      <span className="jo-muted">max {formatCellSeconds(cell.max_duration_seconds)}</span>
                      {cell.source_first_line && <code className="jo-trends-source">{cell.source_first_line}</code>}
                    </li>
                  ))}
                </ol>
              </div>
            ))}
        </>
      )}
    </div>
  );
}
