/**
 * The schedules of a job (job.yaml `schedules:`) in the Job view: each schedule's rule and timezone, its next fire
 * time (browser's local time and relative), a "paused" badge, its latest fires as status cells, and buttons to
 * pause/resume it and to trigger a run now.
 */
import React, { useState } from 'react';
import { Button } from '@jupyterlab/ui-components';

import { api, FireDocument, ScheduleDocument } from '../api';
import { OrchestrateModel } from '../model';
import { ErrorText } from './common';
import { parseTime, useNow } from './Gantt';
import { formatTime } from './RunView';
import { formatValue } from './TaskDetail';

/** How often relative times ("in 5 min") are recomputed. */
const NOW_INTERVAL_MS = 15000;

/** A schedule's rule: `cron 30 6 * * *` or `every 15 minutes` (what job.yaml says, `every` prefixed once). */
export function describeRule(schedule: Pick<ScheduleDocument, 'cron' | 'every'>): string {
  if (schedule.cron) {
    return `cron ${schedule.cron.trim()}`;
  }
  if (schedule.every) {
    const rule = schedule.every.trim();
    return /^every\b/i.test(rule) ? rule : `every ${rule}`;
  }
  return 'no rule';
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/**
 * How far `iso` is from `now` (ms), in words: `in 45 s`, `in 5 min`, `in 3 h 10 min`, `in 2 days`, `5 min ago`;
 * `now` within 5 seconds; '' for a missing or invalid time.
 */
export function relativeTime(iso: string | null | undefined, now: number = Date.now()): string {
  const ms = parseTime(iso);
  if (ms === null) {
    return '';
  }
  const seconds = Math.round((ms - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 5) {
    return 'now';
  }
  let amount: string;
  if (abs < 60) {
    amount = `${abs} s`;
  } else if (abs < 3600) {
    amount = `${Math.round(abs / 60)} min`;
  } else if (abs < 86400) {
    const minutes = Math.round(abs / 60);
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    amount = rest && hours < 10 ? `${hours} h ${rest} min` : `${Math.round(minutes / 60)} h`;
  } else {
    amount = plural(Math.round(abs / 86400), 'day');
  }
  return seconds > 0 ? `in ${amount}` : `${amount} ago`;
}

/** A time in the browser's locale with its relative form: `22/11/2026, 07:30:00 (in 5 min)`; '' when missing. */
export function formatWhen(iso: string | null | undefined, now: number = Date.now()): string {
  const local = formatTime(iso);
  if (!local) {
    return '';
  }
  const relative = relativeTime(iso, now);
  return relative ? `${local} (${relative})` : local;
}

/** What a fire's status means, for its tooltip. */
const FIRE_STATUS_TEXT: Record<FireDocument['status'], string> = {
  started: 'started',
  queued: 'queued (max_concurrent_runs reached)',
  skipped: 'skipped',
  failed: 'failed to start',
  firing: 'firing'
};

/** A fire's tooltip: scheduled time, status, run and reason (one line each). */
export function fireTitle(fire: FireDocument): string {
  const lines = [
    `${formatTime(fire.scheduled_time) || fire.scheduled_time}: ${FIRE_STATUS_TEXT[fire.status] ?? fire.status}`
  ];
  if (fire.run_id !== null && fire.run_id !== undefined) {
    lines.push(`run ${fire.run_id} (click to open)`);
  }
  if (fire.reason) {
    lines.push(fire.reason);
  }
  return lines.join('\n');
}

/** The fires to show as cells, oldest left (the server sends them newest first). */
export function fireCells(fires: FireDocument[] | null | undefined): FireDocument[] {
  return [...(fires ?? [])].reverse();
}

/** `max_concurrent_runs` and `queue` of the job in words; '' when the job document lacks them. */
export function concurrencyText(
  maxConcurrentRuns: number | null | undefined,
  queue: boolean | null | undefined
): string {
  if (!maxConcurrentRuns) {
    return '';
  }
  const limit = `at most ${plural(maxConcurrentRuns, 'run')} at once`;
  if (queue === undefined || queue === null) {
    return limit;
  }
  return `${limit}; fires beyond that are ${queue ? 'queued' : 'skipped'}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function FireCell(props: { fire: FireDocument; onOpenRun: (runId: number) => void }): JSX.Element {
  const { fire } = props;
  const runId = fire.run_id;
  const open = runId !== null && runId !== undefined ? () => props.onOpenRun(runId) : undefined;
  return (
    <span
      className={`jo-cell jo-fire jo-fire-${fire.status}${open ? '' : ' jo-fire-norun'}`}
      data-testid="jo-fire"
      data-status={fire.status}
      data-run-id={runId ?? undefined}
      title={fireTitle(fire)}
      role={open ? 'button' : undefined}
      tabIndex={open ? 0 : undefined}
      onClick={open}
      onKeyDown={
        open
          ? event => {
              if (event.key === 'Enter' || event.key === ' ') {
                event.preventDefault();
                open();
              }
            }
          : undefined
      }
    />
  );
}

interface IScheduleRowProps {
  model: OrchestrateModel;
  jobId: string;
  schedule: ScheduleDocument;
  now: number;
  onSchedules: (schedules: ScheduleDocument[]) => void;
}

/** One schedule: name, rule, timezone, next fire, paused badge, latest fires and its buttons. */
function ScheduleRow(props: IScheduleRowProps): JSX.Element {
  const { model, jobId, schedule, now } = props;
  const [busy, setBusy] = useState<'toggle' | 'trigger' | null>(null);
  const [error, setError] = useState<string | null>(null);

  const toggle = async () => {
    setBusy('toggle');
    setError(null);
    try {
      const call = schedule.paused ? api.resumeSchedule : api.pauseSchedule;
      props.onSchedules(await call(jobId, schedule.name));
    } catch (e) {
      setError(`Cannot ${schedule.paused ? 'resume' : 'pause'} ${schedule.name}: ${errorMessage(e)}`);
    } finally {
      setBusy(null);
    }
  };

  const trigger = async () => {
    setBusy('trigger');
    setError(null);
    try {
      const run = await api.triggerSchedule(jobId, schedule.name);
      model.watched.add(run.run_id);
      model.runs.set(run.run_id, run);
      model.show({ kind: 'run', runId: run.run_id });
    } catch (e) {
      setError(`Cannot run ${schedule.name} now: ${errorMessage(e)}`);
    } finally {
      setBusy(null);
    }
  };

  const parameters = Object.entries(schedule.parameters ?? {});
  const fires = fireCells(schedule.recent_fires);
  let next: JSX.Element;
  if (schedule.paused) {
    next = <span className="jo-muted">no fires while paused</span>;
  } else if (schedule.next_fire_time) {
    next = (
      <span title={`${schedule.next_fire_time} (UTC)`}>
        next <span data-testid="jo-schedule-next">{formatWhen(schedule.next_fire_time, now)}</span>
      </span>
    );
  } else {
    next = <span className="jo-muted">next fire not computed yet (is a scheduler running?)</span>;
  }
  return (
    <div
      className={`jo-schedule${schedule.paused ? ' jo-schedule-paused' : ''}`}
      data-testid="jo-schedule"
      data-schedule-name={schedule.name}
      data-paused={String(schedule.paused)}
    >
      <div className="jo-row jo-wrap">
        <span className="jo-schedule-name">{schedule.name}</span>
        {schedule.paused && (
          <span className="jo-badge jo-schedule-paused-badge" data-testid="jo-schedule-paused">
            paused
          </span>
        )}
        <span className="jo-schedule-actions">
          <Button
            small
            minimal
            data-testid="jo-schedule-toggle"
            disabled={busy !== null}
            title={
              schedule.paused
                ? `Resume ${schedule.name}: fire on its rule again`
                : `Pause ${schedule.name}: no fires until resumed`
            }
            onClick={() => void toggle()}
          >
            {schedule.paused ? 'Resume' : 'Pause'}
          </Button>
          <Button
            small
            className="jp-mod-styled jp-mod-accept"
            data-testid="jo-schedule-trigger"
            disabled={busy !== null}
            title={`Start a run now with the parameters of ${schedule.name}`}
            onClick={() => void trigger()}
          >
            Run now
          </Button>
        </span>
      </div>
      <div className="jo-muted">
        <code data-testid="jo-schedule-rule">{describeRule(schedule)}</code> ·{' '}
        <span data-testid="jo-schedule-timezone">{schedule.timezone}</span>
        {schedule.catchup ? ` · catch-up ${schedule.catchup}` : ''}
      </div>
      <div className="jo-schedule-next">{next}</div>
      {parameters.length > 0 && (
        <div className="jo-muted jo-schedule-parameters">
          parameters <code>{parameters.map(([name, value]) => `${name}=${formatValue(value)}`).join(', ')}</code>
        </div>
      )}
      {fires.length > 0 && (
        <div
          className="jo-row"
          title={schedule.last_fire_time ? `last fire ${formatWhen(schedule.last_fire_time, now)}` : undefined}
        >
          <span className="jo-muted">last fires</span>
          <span className="jo-cells" data-testid="jo-schedule-fires">
            {fires.map((fire, i) => (
              <FireCell
                key={`${fire.scheduled_time}-${i}`}
                fire={fire}
                onOpenRun={runId => model.show({ kind: 'run', runId })}
              />
            ))}
          </span>
        </div>
      )}
      <ErrorText error={error} />
    </div>
  );
}

export interface ISchedulesProps {
  model: OrchestrateModel;
  jobId: string;
  schedules: ScheduleDocument[] | null | undefined;
  maxConcurrentRuns?: number | null;
  queue?: boolean | null;
  /** Called with the schedules a pause/resume answered (the Job view keeps its job document current). */
  onSchedulesChanged?: (schedules: ScheduleDocument[]) => void;
  /** The current time (ms) for relative times; default: the clock, updated every 15 s. */
  now?: number;
}

/** The "Schedules" section of the Job view; nothing when the job has no schedules. */
export function Schedules(props: ISchedulesProps): JSX.Element | null {
  const clock = useNow(props.now === undefined, NOW_INTERVAL_MS);
  const now = props.now ?? clock;
  // the schedules a pause/resume answered, until the next job document arrives (new `schedules` array)
  const [updated, setUpdated] = useState<{
    from: ScheduleDocument[] | null | undefined;
    schedules: ScheduleDocument[];
  } | null>(null);
  const schedules = updated && updated.from === props.schedules ? updated.schedules : (props.schedules ?? []);
  if (schedules.length === 0) {
    return null;
  }
  const onSchedules = (next: ScheduleDocument[]) => {
    setUpdated({ from: props.schedules, schedules: next });
    props.onSchedulesChanged?.(next);
  };
  const concurrency = concurrencyText(props.maxConcurrentRuns, props.queue);
  return (
    <div className="jo-schedules" data-testid="jo-schedules">
      <div className="jo-section-title">Schedules</div>
      {concurrency && <div className="jo-muted jo-schedules-concurrency">{concurrency}</div>}
      {schedules.map(schedule => (
        <ScheduleRow
          key={schedule.name}
          model={props.model}
          jobId={props.jobId}
          schedule={schedule}
          now={now}
          onSchedules={onSchedules}
        />
      ))}
    </div>
  );
}
