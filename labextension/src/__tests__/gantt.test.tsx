/** The run timeline (src/components/Gantt.tsx): time parsing, bars relative to the run start, scale and ticks. */
import React from 'react';
import { describe, expect, it } from 'vitest';

import type { AttemptDocument, TaskRunDocument } from '../api';
import {
  barPhases,
  formatTick,
  Gantt,
  ganttData,
  ganttLayout,
  ganttScale,
  ganttTicks,
  niceStep,
  parseTime
} from '../components/Gantt';
import { render } from './render';

const T0 = '2026-11-22T00:00:00.000000+00:00';
const at = (seconds: number) => new Date(Date.parse('2026-11-22T00:00:00Z') + seconds * 1000).toISOString();

function attempt(
  attempt_number: number,
  start: number | null,
  end: number | null,
  status: AttemptDocument['status'],
  repair_number = 0
): AttemptDocument {
  return {
    attempt_number,
    repair_number,
    status,
    start_time: start === null ? null : at(start),
    end_time: end === null ? null : at(end),
    duration_seconds: start !== null && end !== null ? end - start : null,
    executed_notebook: null,
    executed_notebook_path: null,
    log: null,
    parameters: {},
    cells_completed: null,
    cells_total: null,
    error: null
  };
}

function taskRun(task_key: string, attempts: AttemptDocument[]): TaskRunDocument {
  return {
    task_key,
    notebook: `${task_key}.ipynb`,
    depends_on: [],
    status: attempts.length ? attempts[attempts.length - 1].status : 'pending',
    status_reason: null,
    attempt_count: attempts.length,
    duration_seconds: null,
    executed_notebook: null,
    error: null,
    task_values: {},
    attempts
  };
}

describe('parseTime', () => {
  it('reads the server ISO times, microseconds included', () => {
    expect(parseTime('2026-11-22T00:56:01.123456+00:00')).toBe(Date.parse('2026-11-22T00:56:01.123Z'));
    expect(parseTime('2026-11-22T02:56:01+02:00')).toBe(Date.parse('2026-11-22T00:56:01Z'));
  });
  it('is null for missing or invalid times', () => {
    expect(parseTime(null)).toBeNull();
    expect(parseTime(undefined)).toBeNull();
    expect(parseTime('')).toBeNull();
    expect(parseTime('yesterday')).toBeNull();
  });
});

describe('ganttData', () => {
  it('places each attempt at seconds since the run start, one row per task run in order', () => {
    const run = {
      start_time: T0,
      end_time: at(10),
      task_runs: [
        taskRun('extract', [attempt(1, 0.5, 2, 'succeeded')]),
        taskRun('validate', [attempt(1, 2, 3, 'failed'), attempt(2, 6, 8, 'succeeded', 1)]),
        taskRun('publish', [])
      ]
    };
    const data = ganttData(run, Date.parse(at(100)));
    expect(data.rows).toEqual(['extract', 'validate', 'publish']);
    expect(data.total).toBeCloseTo(10);
    expect(
      data.bars.map(b => [b.taskKey, b.row, b.attemptNumber, b.repairNumber, b.status, b.start, b.end, b.running])
    ).toEqual([
      ['extract', 0, 1, 0, 'succeeded', 0.5, 2, false],
      ['validate', 1, 1, 0, 'failed', 2, 3, false],
      ['validate', 1, 2, 1, 'succeeded', 6, 8, false]
    ]);
  });

  it('ends running attempts now and stretches the axis to now', () => {
    const run = {
      start_time: T0,
      end_time: null,
      task_runs: [taskRun('a', [attempt(1, 1, null, 'running')]), taskRun('b', [attempt(1, null, null, 'pending')])]
    };
    const data = ganttData(run, Date.parse(at(7)));
    expect(data.bars).toHaveLength(1); // an attempt that has not started has no bar
    expect(data.bars[0]).toMatchObject({ taskKey: 'a', start: 1, end: 7, running: true });
    expect(data.total).toBeCloseTo(7);
  });

  it('spans at least one second, also for an empty run', () => {
    expect(ganttData({ start_time: T0, end_time: at(0.2), task_runs: [] }).total).toBe(1);
    expect(ganttData({ start_time: T0 }).rows).toEqual([]);
  });
});

describe('scale and ticks', () => {
  it('niceStep picks a round interval giving at most maxTicks intervals', () => {
    expect(niceStep(10, 5)).toBe(2);
    expect(niceStep(7, 5)).toBe(2);
    expect(niceStep(100, 5)).toBe(30);
    expect(niceStep(0.3, 5)).toBe(0.1);
    expect(niceStep(3600, 4)).toBe(900);
    for (const total of [1, 3, 17, 95, 610, 5000]) {
      expect(total / niceStep(total, 5)).toBeLessThanOrEqual(5);
    }
  });

  it('ganttTicks starts at 0 and never passes the total', () => {
    expect(ganttTicks(10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(ganttTicks(9.5, 5)).toEqual([0, 2, 4, 6, 8]);
    expect(ganttTicks(1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  });

  it('formatTick uses seconds, minutes and hours', () => {
    expect(formatTick(0)).toBe('0');
    expect(formatTick(0.2)).toBe('0.2s');
    expect(formatTick(45)).toBe('45s');
    expect(formatTick(150)).toBe('2.5m');
    expect(formatTick(7200)).toBe('2h');
  });

  it('ganttScale maps [0, total] linearly onto [x0, x1] and clamps outside', () => {
    const scale = ganttScale(20, 100, 300);
    expect(scale(0)).toBe(100);
    expect(scale(10)).toBe(200);
    expect(scale(20)).toBe(300);
    expect(scale(-5)).toBe(100);
    expect(scale(40)).toBe(300);
    expect(ganttScale(0, 0, 50)(1)).toBe(50); // a zero span does not divide by zero
  });

  it('ganttLayout keeps every bar inside the plot, in its row, at least minBarWidth wide', () => {
    const run = {
      start_time: T0,
      end_time: at(60),
      task_runs: [
        taskRun('a_very_long_task_key_for_the_label', [attempt(1, 0, 0, 'succeeded')]),
        taskRun('b', [attempt(1, 30, 60, 'failed')])
      ]
    };
    const layout = ganttLayout(ganttData(run), 400);
    expect(layout.width).toBe(400);
    for (const bar of layout.bars) {
      expect(bar.x).toBeGreaterThanOrEqual(layout.x0);
      expect(bar.x + bar.width).toBeLessThanOrEqual(layout.x1 + 2);
      expect(bar.width).toBeGreaterThanOrEqual(2);
    }
    const [a, b] = layout.bars;
    expect(b.y).toBeGreaterThan(a.y);
    expect(b.x).toBeCloseTo((layout.x0 + layout.x1) / 2);
    expect(b.x + b.width).toBeCloseTo(layout.x1);
    expect(layout.rows[0].label).toContain('…');
    expect(layout.rows[0].label.endsWith('label')).toBe(true); // the end is kept: twins stay apart
    expect(layout.rows[0].label.length).toBeLessThan('a_very_long_task_key_for_the_label'.length);
    expect(layout.ticks[0]).toMatchObject({ seconds: 0, x: layout.x0, label: '0' });
    expect(layout.ticks[layout.ticks.length - 1].seconds).toBeLessThanOrEqual(60);
    // a narrow panel is not laid out narrower than the minimum
    expect(ganttLayout(ganttData(run), 50).width).toBe(160);
  });
});

describe('<Gantt>', () => {
  it('draws one bar per attempt with its task, attempt and status', () => {
    const run = {
      start_time: T0,
      end_time: at(8),
      task_runs: [
        taskRun('extract', [attempt(1, 0, 2, 'succeeded')]),
        taskRun('validate', [attempt(1, 2, 3, 'failed'), attempt(2, 5, 8, 'succeeded', 1)])
      ]
    };
    const { container, unmount } = render(<Gantt run={run} />);
    expect(container.querySelector('[data-testid=jo-gantt]')).not.toBeNull();
    const bars = [...container.querySelectorAll('rect.jo-bar')].map(b => [
      b.getAttribute('data-task-key'),
      b.getAttribute('data-attempt'),
      b.getAttribute('data-status')
    ]);
    expect(bars).toEqual([
      ['extract', '1', 'succeeded'],
      ['validate', '1', 'failed'],
      ['validate', '2', 'succeeded']
    ]);
    unmount();
  });
});

describe('attempt phases', () => {
  const phased = (
    queued: number | null,
    start: number,
    ready: number | null,
    end: number | null,
    status = 'succeeded'
  ) => ({
    ...attempt(1, start, end, status as AttemptDocument['status']),
    queued_time: queued === null ? null : at(queued),
    kernel_ready_time: ready === null ? null : at(ready)
  });

  it('splits each bar into queued, kernel start and execution', () => {
    const run = {
      start_time: T0,
      end_time: at(10),
      task_runs: [
        taskRun('cold', [phased(0, 1, 3, 6)]),
        taskRun('warm', [phased(2, 2.5, 1, 9)]), // kernel started ahead of need: no kernel phase
        taskRun('old', [phased(null, 1, null, 2)]) // a record from before the phases were recorded
      ]
    };
    const [cold, warm, old] = ganttData(run).bars;
    expect(cold).toMatchObject({ queued: 0, start: 1, executing: 3, end: 6 });
    expect(barPhases(cold)).toEqual({ queued: 1, kernel: 2, execution: 3 });
    expect(barPhases(warm)).toEqual({ queued: 0.5, kernel: 0, execution: 6.5 });
    expect(barPhases(old)).toEqual({ queued: 0, kernel: 0, execution: 1 });
    // a running attempt whose kernel is not ready yet is still starting its kernel, until now
    const starting = ganttData(
      { start_time: T0, task_runs: [taskRun('a', [phased(0, 1, null, null, 'running')])] },
      Date.parse(at(4))
    );
    expect(barPhases(starting.bars[0])).toEqual({ queued: 1, kernel: 3, execution: 0 });
  });

  it('draws the queued line before the bar and the kernel start over its beginning, with the phases in the tooltip', () => {
    const run = {
      start_time: T0,
      end_time: at(10),
      task_runs: [taskRun('cold', [phased(0, 2, 4, 10)]), taskRun('warm', [phased(null, 0, null, 10)])]
    };
    const { container, unmount } = render(<Gantt run={run} />);
    const group = (key: string) => container.querySelector(`g.jo-gantt-attempt[data-task-key="${key}"]`)!;
    const cold = group('cold');
    const queued = cold.querySelector('[data-phase=queued]')!;
    const kernel = cold.querySelector('[data-phase=kernel]')!;
    const bar = cold.querySelector('rect.jo-bar')!;
    const x = (e: Element, a = 'x') => Number(e.getAttribute(a));
    expect(x(queued) + x(queued, 'width')).toBeCloseTo(x(bar));
    expect(x(kernel)).toBeCloseTo(x(bar));
    expect(x(kernel, 'width')).toBeCloseTo(x(bar, 'width') / 4); // 2 s of the bar's 8 s
    expect(bar.querySelector('title')?.textContent).toContain('queued 2.0 s, kernel start 2.0 s, execution 6.0 s');
    expect(group('warm').querySelector('[data-phase]')).toBeNull();
    unmount();
  });
});
