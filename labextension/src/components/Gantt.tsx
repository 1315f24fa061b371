/**
 * The run's timeline: one row per task run, one bar per attempt from its start to its end (running attempts end
 * now), coloured by the attempt's status, on an axis of seconds since the run started. Each bar shows its
 * phases apart (as the attempt records them): queued (the task run waited for a slot, from `queued_time`),
 * kernel start (from the attempt's start until `kernel_ready_time`; none when the kernel was started ahead of
 * need) and execution.
 */
import React, { useEffect, useRef, useState } from 'react';

import type { AttemptDocument, TaskRunDocument } from '../api';
import { formatSeconds, middleEllipsis } from './common';
import { statusClass } from '../status';

/** One attempt's bar; `start` and `end` are seconds since the run's start. */
export interface IGanttBar {
  taskKey: string;
  row: number;
  attemptNumber: number;
  repairNumber: number;
  status: string;
  /** When the attempt started (the kernel-start phase begins). */
  start: number;
  end: number;
  running: boolean;
  /** When its task run was queued for it (the queued phase runs from here to `start`); null if not recorded. */
  queued: number | null;
  /** When execution began: the kernel was ready (`start` when it was ready before, or not recorded). */
  executing: number;
}

/** The phases of a bar in seconds: queued, kernel start and execution (0 when a phase did not happen). */
export function barPhases(bar: IGanttBar): { queued: number; kernel: number; execution: number } {
  return {
    queued: bar.queued === null ? 0 : Math.max(0, bar.start - bar.queued),
    kernel: Math.max(0, bar.executing - bar.start),
    execution: Math.max(0, bar.end - bar.executing)
  };
}

export interface IGanttData {
  /** Task keys, one row each, in the run's task order. */
  rows: string[];
  bars: IGanttBar[];
  /** Seconds the axis spans (at least 1). */
  total: number;
}

export interface IGanttTick {
  seconds: number;
  x: number;
  label: string;
}

export interface IGanttLayout {
  width: number;
  height: number;
  labelWidth: number;
  /** The plot spans x0..x1. */
  x0: number;
  x1: number;
  ticks: IGanttTick[];
  rows: { key: string; label: string; y: number; hasBars: boolean }[];
  bars: (IGanttBar & {
    x: number;
    y: number;
    width: number;
    height: number;
    /** The queued phase's x (from here to `x`) and the execution phase's x (the kernel start is `x` to it). */
    queuedX: number;
    executingX: number;
  })[];
}

/** Sizes of the timeline, in pixels. */
export const GANTT_SIZES = {
  rowHeight: 18,
  barHeight: 12,
  axisHeight: 16,
  minBarWidth: 2,
  charWidth: 6,
  minWidth: 160
};

/** Milliseconds since the epoch of a server ISO time (microseconds are cut to milliseconds); null if missing/invalid. */
export function parseTime(iso: string | null | undefined): number | null {
  if (!iso) {
    return null;
  }
  const ms = Date.parse(iso.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(ms) ? null : ms;
}

type GanttTaskRun = Pick<TaskRunDocument, 'task_key' | 'attempts'> & { iterations?: GanttTaskRun[] };

/**
 * The bars of a run's attempts, relative to the run's start; attempts without an end time end at `now` (ms).
 * A for-each task's iterations get a row each, under their task's.
 */
export function ganttData(
  run: { start_time: string; end_time?: string | null; task_runs?: GanttTaskRun[] },
  now: number = Date.now()
): IGanttData {
  const origin = parseTime(run.start_time) ?? now;
  const runEnd = parseTime(run.end_time);
  let total = runEnd === null ? 0 : (runEnd - origin) / 1000;
  const rows: string[] = [];
  const bars: IGanttBar[] = [];
  (run.task_runs ?? [])
    .flatMap(t => [t, ...(t.iterations ?? [])])
    .forEach((taskRun, row) => {
      rows.push(taskRun.task_key);
      for (const attempt of taskRun.attempts ?? []) {
        const bar = attemptBar(attempt, taskRun.task_key, row, origin, now);
        if (bar) {
          bars.push(bar);
          total = Math.max(total, bar.end);
        }
      }
    });
  return { rows, bars, total: Math.max(total, 1) };
}

function attemptBar(
  attempt: AttemptDocument,
  taskKey: string,
  row: number,
  origin: number,
  now: number
): IGanttBar | null {
  const startMs = parseTime(attempt.start_time);
  if (startMs === null) {
    return null;
  }
  const endMs = parseTime(attempt.end_time);
  const running = endMs === null && (attempt.status === 'running' || attempt.status === 'queued');
  const end = endMs ?? (running ? now : startMs + (attempt.duration_seconds ?? 0) * 1000);
  const start = Math.max(0, (startMs - origin) / 1000);
  const endSeconds = Math.max(start, (end - origin) / 1000);
  const queuedMs = parseTime(attempt.queued_time);
  const readyMs = parseTime(attempt.kernel_ready_time);
  const queued = queuedMs === null ? null : Math.min(start, Math.max(0, (queuedMs - origin) / 1000));
  // no ready time: a running attempt's kernel is still starting (until it runs a cell); a finished one's record
  // predates the field (no kernel phase shown)
  const readySeconds =
    readyMs !== null ? (readyMs - origin) / 1000 : running && !attempt.cells_completed ? endSeconds : start;
  const executing = Math.min(endSeconds, Math.max(start, readySeconds));
  return {
    taskKey,
    row,
    attemptNumber: attempt.attempt_number,
    repairNumber: attempt.repair_number,
    status: attempt.status,
    start,
    end: endSeconds,
    running,
    queued,
    executing
  };
}

const STEPS = [
  0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400
];

/** A round tick interval (seconds) giving at most about `maxTicks` intervals over `total` seconds. */
export function niceStep(total: number, maxTicks = 5): number {
  const raw = total / Math.max(1, maxTicks);
  for (const step of STEPS) {
    if (step >= raw) {
      return step;
    }
  }
  return Math.ceil(raw / 86400) * 86400;
}

/** Tick positions in seconds, from 0 to at most `total`. */
export function ganttTicks(total: number, maxTicks = 5): number[] {
  const step = niceStep(total, maxTicks);
  const ticks: number[] = [];
  for (let i = 0; i * step <= total + 1e-9; i++) {
    ticks.push(Number((i * step).toFixed(3)));
  }
  return ticks;
}

/** A tick label: `0`, `45s`, `2.5m`, `1h`. */
export function formatTick(seconds: number): string {
  if (seconds === 0) {
    return '0';
  }
  if (seconds < 60) {
    return `${Number(seconds.toFixed(1))}s`;
  }
  if (seconds < 3600) {
    return `${Number((seconds / 60).toFixed(1))}m`;
  }
  return `${Number((seconds / 3600).toFixed(1))}h`;
}

/** A linear scale from seconds [0, total] to pixels [x0, x1]. */
export function ganttScale(total: number, x0: number, x1: number): (seconds: number) => number {
  const span = total > 0 ? total : 1;
  return seconds => x0 + (Math.min(Math.max(seconds, 0), span) / span) * (x1 - x0);
}

/** The geometry of the timeline at a pixel width: label column, ticks, rows and bars. */
export function ganttLayout(data: IGanttData, width: number): IGanttLayout {
  const s = GANTT_SIZES;
  const w = Math.max(s.minWidth, Math.floor(width));
  const labelWidth = Math.round(Math.min(120, Math.max(60, w * 0.3)));
  const x0 = labelWidth + 6;
  const x1 = w - 10;
  const scale = ganttScale(data.total, x0, x1);
  const maxTicks = Math.max(2, Math.floor((x1 - x0) / 50));
  const ticks = ganttTicks(data.total, maxTicks).map(seconds => ({
    seconds,
    x: scale(seconds),
    label: formatTick(seconds)
  }));
  const maxChars = Math.max(3, Math.floor((labelWidth - 4) / s.charWidth));
  const rowY = (row: number) => s.axisHeight + row * s.rowHeight;
  const rows = data.rows.map((key, row) => ({
    key,
    label: middleEllipsis(key, maxChars),
    y: rowY(row),
    hasBars: data.bars.some(b => b.row === row)
  }));
  const bars = data.bars.map(bar => {
    const x = scale(bar.start);
    return {
      ...bar,
      queuedX: bar.queued === null ? x : scale(bar.queued),
      executingX: scale(bar.executing),
      x,
      y: rowY(bar.row) + (s.rowHeight - s.barHeight) / 2,
      width: Math.max(s.minBarWidth, scale(bar.end) - x),
      height: s.barHeight
    };
  });
  return { width: w, height: rowY(data.rows.length) + 4, labelWidth, x0, x1, ticks, rows, bars };
}

/** The current time (ms), re-read every `intervalMs` while `active` (for running runs). */
export function useNow(active: boolean, intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) {
      return;
    }
    setNow(Date.now());
    const timer = window.setInterval(() => setNow(Date.now()), intervalMs);
    return () => window.clearInterval(timer);
  }, [active, intervalMs]);
  return now;
}

/** The width of an element, following resizes (`fallback` until measured, e.g. in tests). */
function useWidth(ref: React.RefObject<HTMLElement>, fallback: number): number {
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const element = ref.current;
    if (!element) {
      return;
    }
    const update = () => {
      if (element.clientWidth > 0) {
        setWidth(element.clientWidth);
      }
    };
    update();
    if (typeof ResizeObserver === 'undefined') {
      return;
    }
    const observer = new ResizeObserver(update);
    observer.observe(element);
    return () => observer.disconnect();
  }, [ref]);
  return width;
}

/** The run's timeline (Gantt chart) of attempts. Clicking a row calls `onSelect` with its task key. */
export function Gantt(props: {
  run: { start_time: string; end_time?: string | null; task_runs?: TaskRunDocument[] };
  now?: number;
  selected?: string | null;
  onSelect?: (taskKey: string) => void;
}): JSX.Element {
  const ref = useRef<HTMLDivElement>(null);
  const width = useWidth(ref, 300);
  // not memoized: the model updates run documents in place, and this is cheap
  const data = ganttData(props.run, props.now);
  const layout = ganttLayout(data, width);
  const s = GANTT_SIZES;
  const plotBottom = layout.height - 4;
  return (
    <div className="jo-gantt" data-testid="jo-gantt" ref={ref}>
      {data.rows.length === 0 ? (
        <div className="jo-muted">No tasks.</div>
      ) : (
        <svg
          width={layout.width}
          height={layout.height}
          viewBox={`0 0 ${layout.width} ${layout.height}`}
          role="img"
          aria-label="Run timeline"
        >
          {layout.ticks.map(tick => (
            <g key={tick.seconds} className="jo-gantt-tick">
              <line className="jo-gantt-grid" x1={tick.x} x2={tick.x} y1={s.axisHeight - 3} y2={plotBottom} />
              <text x={tick.x} y={s.axisHeight - 5} textAnchor={tick.x > layout.x1 - 12 ? 'end' : 'middle'}>
                {tick.label}
              </text>
            </g>
          ))}
          {layout.rows.map(row => (
            <g
              key={row.key}
              className="jo-gantt-row-group"
              data-task-key={row.key}
              onClick={props.onSelect ? () => props.onSelect?.(row.key) : undefined}
            >
              <rect
                className={`jo-gantt-row${props.selected === row.key ? ' jo-selected' : ''}`}
                x={0}
                y={row.y}
                width={layout.width}
                height={s.rowHeight}
              />
              <text
                className={row.hasBars ? 'jo-gantt-label' : 'jo-gantt-label jo-gantt-label-idle'}
                x={layout.labelWidth}
                y={row.y + s.rowHeight / 2}
                textAnchor="end"
                dominantBaseline="central"
              >
                <title>{row.key}</title>
                {row.label}
              </text>
            </g>
          ))}
          {layout.bars.map(bar => {
            const phases = barPhases(bar);
            const key = `${bar.taskKey}/${bar.attemptNumber}`;
            const title =
              `${bar.taskKey} attempt ${bar.attemptNumber}${bar.repairNumber ? ` (repair ${bar.repairNumber})` : ''}: ` +
              `${bar.status.replace(/_/g, ' ')}, ${formatSeconds(bar.end - bar.start)} from ${formatTick(bar.start) || '0'}` +
              ` (queued ${formatSeconds(phases.queued)}, kernel start ${formatSeconds(phases.kernel)}, ` +
              `execution ${formatSeconds(phases.execution)})`;
            return (
              <g key={key} className="jo-gantt-attempt" data-task-key={bar.taskKey} data-attempt={bar.attemptNumber}>
                {bar.x - bar.queuedX >= 1 && (
                  <rect
                    className="jo-phase jo-phase-queued"
                    data-phase="queued"
                    x={bar.queuedX}
                    y={bar.y + bar.height / 2 - 1}
                    width={bar.x - bar.queuedX}
                    height={2}
                  >
                    <title>{title}</title>
                  </rect>
                )}
                <rect
                  className={`jo-bar ${statusClass(bar.status)}${bar.running ? ' jo-bar-running' : ''}`}
                  data-task-key={bar.taskKey}
                  data-attempt={bar.attemptNumber}
                  data-status={bar.status}
                  x={bar.x}
                  y={bar.y}
                  width={bar.width}
                  height={bar.height}
                  rx={2}
                  onClick={props.onSelect ? () => props.onSelect?.(bar.taskKey) : undefined}
                >
                  <title>{title}</title>
                </rect>
                {bar.executingX - bar.x >= 1 && (
                  <rect
                    className="jo-phase jo-phase-kernel"
                    data-phase="kernel"
                    x={bar.x}
                    y={bar.y}
                    width={Math.min(bar.executingX - bar.x, bar.width)}
                    height={bar.height}
                    rx={2}
                    onClick={props.onSelect ? () => props.onSelect?.(bar.taskKey) : undefined}
                  >
                    <title>{title}</title>
                  </rect>
                )}
              </g>
            );
          })}
        </svg>
      )}
    </div>
  );
}
