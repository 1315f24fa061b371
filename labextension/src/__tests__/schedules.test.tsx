/**
 * Schedules in the Job view (src/components/Schedules.tsx): rule and time helpers, the section's rendering, and
 * its calls (pause/resume, trigger now, opening a fire's run); plus the schedule routes of the client (api.ts).
 */
import React from 'react';
import { act } from 'react';
import { afterEach, describe, expect, it, MockInstance, vi } from 'vitest';
import { ServerConnection } from '@jupyterlab/services';

import type { IActions } from '../actions';
import { api, FireDocument, JobDocument, RunDocument, ScheduleDocument, OrchestrateApiError } from '../api';
import { JobView } from '../components/JobView';
import { OrchestrateModel } from '../model';
import {
  concurrencyText,
  describeRule,
  fireCells,
  fireTitle,
  formatWhen,
  relativeTime,
  Schedules
} from '../components/Schedules';
import { interact, render } from './render';

const NOW = Date.parse('2026-11-22T06:00:00Z');

function schedule(extra: Partial<ScheduleDocument> = {}): ScheduleDocument {
  return {
    name: 'nightly',
    cron: '30 6 * * *',
    every: null,
    timezone: 'Europe/Amsterdam',
    paused: false,
    parameters: {},
    catchup: 'latest',
    max_catchup_runs: 100,
    next_fire_time: '2026-11-22T06:05:00+00:00',
    last_fire_time: null,
    recent_fires: [],
    ...extra
  };
}

function fire(extra: Partial<FireDocument> = {}): FireDocument {
  return {
    scheduled_time: '2026-11-21T05:30:00+00:00',
    fire_time: '2026-11-21T05:30:01+00:00',
    status: 'started',
    run_id: 7,
    reason: null,
    ...extra
  };
}

function run(run_id: number): RunDocument {
  return {
    run_id,
    job: 'repair_demo',
    job_id: 'demo/repair_demo',
    job_path: '/srv/demo/repair_demo',
    status: 'queued',
    status_reason: null,
    start_time: '2026-11-22T06:00:00+00:00',
    end_time: null,
    duration_seconds: null,
    parameters: {},
    repair_count: 0,
    task_runs: [],
    repairs: []
  };
}

/** A model without the event stream whose `show` is recorded (and does not refresh). */
function model(): OrchestrateModel & { show: MockInstance<OrchestrateModel['show']> } {
  const m = new OrchestrateModel({ subscribe: false });
  vi.spyOn(m, 'show').mockImplementation(() => undefined);
  return m as OrchestrateModel & { show: MockInstance<OrchestrateModel['show']> };
}

/** Let pending promise callbacks (and the state updates they make) run. */
async function flush(): Promise<void> {
  await act(async () => {
    await new Promise(resolve => setTimeout(resolve, 0));
  });
}

const q = (root: ParentNode, testId: string) => root.querySelector(`[data-testid="${testId}"]`) as HTMLElement | null;
const qa = (root: ParentNode, testId: string) =>
  Array.from(root.querySelectorAll(`[data-testid="${testId}"]`)) as HTMLElement[];

let mounted: { unmount: () => void }[] = [];
function mount(element: React.ReactElement) {
  const view = render(element);
  mounted.push(view);
  return view;
}

afterEach(() => {
  mounted.forEach(v => v.unmount());
  mounted = [];
  vi.restoreAllMocks();
});

describe('schedule helpers', () => {
  it('describeRule: cron or every, "every" not doubled', () => {
    expect(describeRule({ cron: '30 6 * * *', every: null })).toBe('cron 30 6 * * *');
    expect(describeRule({ cron: null, every: '15 minutes' })).toBe('every 15 minutes');
    expect(describeRule({ cron: null, every: 'day at 06:30' })).toBe('every day at 06:30');
    expect(describeRule({ cron: null, every: 'Every monday at 09:00' })).toBe('Every monday at 09:00');
    expect(describeRule({ cron: null, every: null })).toBe('no rule');
  });

  it('relativeTime: seconds, minutes, hours, days; future and past', () => {
    const at = (seconds: number) => new Date(NOW + seconds * 1000).toISOString();
    expect(relativeTime(at(0), NOW)).toBe('now');
    expect(relativeTime(at(3), NOW)).toBe('now');
    expect(relativeTime(at(45), NOW)).toBe('in 45 s');
    expect(relativeTime(at(-45), NOW)).toBe('45 s ago');
    expect(relativeTime(at(300), NOW)).toBe('in 5 min');
    expect(relativeTime(at(-300), NOW)).toBe('5 min ago');
    expect(relativeTime(at(3 * 3600 + 600), NOW)).toBe('in 3 h 10 min');
    expect(relativeTime(at(3 * 3600), NOW)).toBe('in 3 h');
    expect(relativeTime(at(14 * 3600 + 600), NOW)).toBe('in 14 h');
    expect(relativeTime(at(-86400), NOW)).toBe('1 day ago');
    expect(relativeTime(at(2 * 86400 + 3600), NOW)).toBe('in 2 days');
    // server times carry an offset and may have microseconds
    expect(relativeTime('2026-11-22T06:05:00.123456+00:00', NOW)).toBe('in 5 min');
    expect(relativeTime('2026-11-22T07:05:00+01:00', NOW)).toBe('in 5 min');
    expect(relativeTime(null, NOW)).toBe('');
    expect(relativeTime('not a time', NOW)).toBe('');
  });

  it('formatWhen: local time with the relative time', () => {
    const iso = '2026-11-22T06:05:00+00:00';
    expect(formatWhen(iso, NOW)).toBe(`${new Date(Date.parse(iso)).toLocaleString()} (in 5 min)`);
    expect(formatWhen(null, NOW)).toBe('');
  });

  it('fireTitle: time, status, run and reason; fireCells oldest first', () => {
    const title = fireTitle(fire({ status: 'queued', run_id: 9, reason: 'max_concurrent_runs=1 reached' }));
    expect(title).toContain('queued');
    expect(title).toContain('run 9');
    expect(title).toContain('max_concurrent_runs=1 reached');
    expect(fireTitle(fire({ status: 'skipped', run_id: null }))).not.toContain('run ');
    const fires = [fire({ run_id: 3 }), fire({ run_id: 2 }), fire({ run_id: 1 })];
    expect(fireCells(fires).map(f => f.run_id)).toEqual([1, 2, 3]);
    expect(fires.map(f => f.run_id)).toEqual([3, 2, 1]); // not mutated
    expect(fireCells(undefined)).toEqual([]);
  });

  it('concurrencyText', () => {
    expect(concurrencyText(1, true)).toBe('at most 1 run at once; fires beyond that are queued');
    expect(concurrencyText(3, false)).toBe('at most 3 runs at once; fires beyond that are skipped');
    expect(concurrencyText(2, undefined)).toBe('at most 2 runs at once');
    expect(concurrencyText(undefined, true)).toBe('');
  });
});

describe('<Schedules>', () => {
  it('renders nothing without schedules', () => {
    const { container } = mount(<Schedules model={model()} jobId="demo/repair_demo" schedules={[]} now={NOW} />);
    expect(q(container, 'jo-schedules')).toBeNull();
    const again = mount(<Schedules model={model()} jobId="demo/repair_demo" schedules={undefined} now={NOW} />);
    expect(again.container.innerHTML).toBe('');
  });

  it('shows each schedule: name, rule, timezone, next fire (local, relative), paused badge, fires', () => {
    const schedules = [
      schedule({
        parameters: { threshold: 0.5 },
        recent_fires: [
          fire({ run_id: 8, status: 'queued', reason: 'max_concurrent_runs=1 reached' }),
          fire({ run_id: null, status: 'skipped', reason: 'missed' })
        ]
      }),
      schedule({
        name: 'quarterly',
        cron: null,
        every: '15 minutes',
        timezone: 'UTC',
        paused: true,
        next_fire_time: null
      })
    ];
    const { container } = mount(
      <Schedules
        model={model()}
        jobId="demo/repair_demo"
        schedules={schedules}
        maxConcurrentRuns={1}
        queue={true}
        now={NOW}
      />
    );
    const section = q(container, 'jo-schedules')!;
    expect(section.textContent).toContain('Schedules');
    expect(section.textContent).toContain('at most 1 run at once; fires beyond that are queued');
    const [nightly, quarterly] = qa(section, 'jo-schedule');
    expect(nightly.dataset.scheduleName).toBe('nightly');
    expect(nightly.dataset.paused).toBe('false');
    expect(q(nightly, 'jo-schedule-rule')!.textContent).toBe('cron 30 6 * * *');
    expect(q(nightly, 'jo-schedule-timezone')!.textContent).toBe('Europe/Amsterdam');
    expect(q(nightly, 'jo-schedule-next')!.textContent).toBe(
      `${new Date(Date.parse('2026-11-22T06:05:00Z')).toLocaleString()} (in 5 min)`
    );
    expect(q(nightly, 'jo-schedule-paused')).toBeNull();
    expect(nightly.textContent).toContain('threshold=0.5');
    expect(q(nightly, 'jo-schedule-toggle')!.textContent).toBe('Pause');
    const fires = qa(nightly, 'jo-fire');
    expect(fires.map(f => f.dataset.status)).toEqual(['skipped', 'queued']); // oldest left
    expect(fires[0].title).toContain('missed');
    expect(fires[1].title).toContain('max_concurrent_runs=1 reached');
    expect(fires[0].dataset.runId).toBeUndefined();
    expect(fires[1].dataset.runId).toBe('8');

    expect(quarterly.dataset.paused).toBe('true');
    expect(q(quarterly, 'jo-schedule-paused')!.textContent).toBe('paused');
    expect(q(quarterly, 'jo-schedule-rule')!.textContent).toBe('every 15 minutes');
    expect(q(quarterly, 'jo-schedule-next')).toBeNull();
    expect(quarterly.textContent).toContain('no fires while paused');
    expect(q(quarterly, 'jo-schedule-toggle')!.textContent).toBe('Resume');
    expect(qa(quarterly, 'jo-fire')).toHaveLength(0);
  });

  it('clicking a fire with a run opens that run; a fire without a run does nothing', () => {
    const m = model();
    const schedules = [
      schedule({
        recent_fires: [fire({ run_id: 12 }), fire({ run_id: null, status: 'failed', reason: 'job invalid' })]
      })
    ];
    const { container } = mount(<Schedules model={m} jobId="demo/repair_demo" schedules={schedules} now={NOW} />);
    const [failed, started] = qa(container, 'jo-fire');
    interact(() => failed.click());
    expect(m.show).not.toHaveBeenCalled();
    interact(() => started.click());
    expect(m.show).toHaveBeenCalledWith({ kind: 'run', runId: 12 });
    interact(() => {
      started.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    });
    expect(m.show).toHaveBeenCalledTimes(2);
  });

  it('Pause calls the API, shows the answered state and reports it to the job view', async () => {
    const paused = [schedule({ paused: true, next_fire_time: null })];
    const pause = vi.spyOn(api, 'pauseSchedule').mockResolvedValue(paused);
    const resume = vi.spyOn(api, 'resumeSchedule');
    const onChanged = vi.fn();
    const { container } = mount(
      <Schedules
        model={model()}
        jobId="demo/repair_demo"
        schedules={[schedule()]}
        onSchedulesChanged={onChanged}
        now={NOW}
      />
    );
    interact(() => q(container, 'jo-schedule-toggle')!.click());
    expect((q(container, 'jo-schedule-toggle') as HTMLButtonElement).disabled).toBe(true);
    await flush();
    expect(pause).toHaveBeenCalledWith('demo/repair_demo', 'nightly');
    expect(resume).not.toHaveBeenCalled();
    expect(onChanged).toHaveBeenCalledWith(paused);
    const row = q(container, 'jo-schedule')!;
    expect(row.dataset.paused).toBe('true');
    expect(q(row, 'jo-schedule-paused')).not.toBeNull();
    expect(q(row, 'jo-schedule-toggle')!.textContent).toBe('Resume');
    expect((q(row, 'jo-schedule-toggle') as HTMLButtonElement).disabled).toBe(false);
  });

  it('Resume calls the API; a new job document replaces the answered state', async () => {
    const resumed = [schedule()];
    const resume = vi.spyOn(api, 'resumeSchedule').mockResolvedValue(resumed);
    const m = model();
    const initial = [schedule({ paused: true, next_fire_time: null })];
    const view = mount(<Schedules model={m} jobId="demo/repair_demo" schedules={initial} now={NOW} />);
    interact(() => q(view.container, 'jo-schedule-toggle')!.click());
    await flush();
    expect(resume).toHaveBeenCalledWith('demo/repair_demo', 'nightly');
    expect(q(view.container, 'jo-schedule')!.dataset.paused).toBe('false');
    // the next job document wins (it was paused again elsewhere)
    view.rerender(
      <Schedules
        model={m}
        jobId="demo/repair_demo"
        schedules={[schedule({ paused: true, next_fire_time: null })]}
        now={NOW}
      />
    );
    expect(q(view.container, 'jo-schedule')!.dataset.paused).toBe('true');
  });

  it('Run now triggers the schedule, watches the run and shows it', async () => {
    const trigger = vi.spyOn(api, 'triggerSchedule').mockResolvedValue(run(42));
    const m = model();
    const { container } = mount(<Schedules model={m} jobId="demo/repair_demo" schedules={[schedule()]} now={NOW} />);
    interact(() => q(container, 'jo-schedule-trigger')!.click());
    await flush();
    expect(trigger).toHaveBeenCalledWith('demo/repair_demo', 'nightly');
    expect(m.watched.has(42)).toBe(true);
    expect(m.runs.get(42)?.run_id).toBe(42);
    expect(m.show).toHaveBeenCalledWith({ kind: 'run', runId: 42 });
  });

  it('shows errors inline, per schedule', async () => {
    vi.spyOn(api, 'triggerSchedule').mockRejectedValue(
      new OrchestrateApiError(422, 'parameter threshold: not a number')
    );
    vi.spyOn(api, 'pauseSchedule').mockRejectedValue(
      new OrchestrateApiError(404, "job repair_demo has no schedule 'other'")
    );
    const m = model();
    const schedules = [schedule(), schedule({ name: 'other' })];
    const { container } = mount(<Schedules model={m} jobId="demo/repair_demo" schedules={schedules} now={NOW} />);
    const [nightly, other] = qa(container, 'jo-schedule');
    interact(() => q(nightly, 'jo-schedule-trigger')!.click());
    interact(() => q(other, 'jo-schedule-toggle')!.click());
    await flush();
    expect(nightly.querySelector('.jo-error-text')!.textContent).toBe(
      'Cannot run nightly now: parameter threshold: not a number'
    );
    expect(other.querySelector('.jo-error-text')!.textContent).toBe(
      "Cannot pause other: job repair_demo has no schedule 'other'"
    );
    expect(m.watched.size).toBe(0);
    expect(m.show).not.toHaveBeenCalled();
    expect(other.dataset.paused).toBe('false');
    expect((q(nightly, 'jo-schedule-trigger') as HTMLButtonElement).disabled).toBe(false);
  });
});

describe('<JobView> with schedules', () => {
  function job(schedules: ScheduleDocument[]): JobDocument {
    return {
      job_id: 'demo/repair_demo',
      name: 'repair_demo',
      path: '/srv/demo/repair_demo',
      valid: true,
      problems: [],
      schedules,
      recent_runs: [],
      max_concurrent_runs: 1,
      queue: false,
      edges: [],
      tasks: [
        {
          task_key: 'extract',
          notebook: 'extract.ipynb',
          notebook_path: 'demo/repair_demo/extract.ipynb',
          depends_on: [],
          run_if: 'all_success',
          parameters: {},
          environment: { kernel_name: null, env: {}, cwd: null },
          kernel_name: 'python3',
          max_retries: 0,
          min_retry_interval_seconds: 0,
          retry_on_timeout: false,
          timeout_seconds: null,
          notebook_parameters: []
        }
      ]
    };
  }
  const actions: IActions = {
    runJob: async () => undefined,
    repairRun: async () => undefined,
    cancelRun: async () => undefined,
    openNotebook: async () => undefined
  };

  it('shows the Schedules section below the header and above the graph, only when the job has schedules', async () => {
    vi.spyOn(api, 'listRuns').mockResolvedValue({ runs: [], next_before: null });
    const getJob = vi.spyOn(api, 'getJob').mockResolvedValue(job([schedule()]));
    const pause = vi.spyOn(api, 'pauseSchedule').mockResolvedValue([schedule({ paused: true, next_fire_time: null })]);
    const { container } = mount(<JobView model={model()} jobId="demo/repair_demo" actions={actions} />);
    await flush();
    expect(getJob).toHaveBeenCalledWith('demo/repair_demo');
    const section = q(container, 'jo-schedules')!;
    expect(section).not.toBeNull();
    expect(section.textContent).toContain('fires beyond that are skipped');
    const titles = Array.from(container.querySelectorAll('.jo-section-title')).map(t => t.textContent);
    expect(titles.indexOf('Schedules')).toBeGreaterThanOrEqual(0);
    expect(titles.indexOf('Schedules')).toBeLessThan(titles.indexOf('Graph'));
    interact(() => q(section, 'jo-schedule-toggle')!.click());
    await flush();
    expect(pause).toHaveBeenCalledWith('demo/repair_demo', 'nightly');
    expect(q(container, 'jo-schedule')!.dataset.paused).toBe('true');

    getJob.mockResolvedValue(job([]));
    const other = mount(<JobView model={model()} jobId="demo/repair_demo" actions={actions} />);
    await flush();
    expect(q(other.container, 'jo-job-view')).not.toBeNull();
    expect(q(other.container, 'jo-schedules')).toBeNull();
  });
});

describe('schedule routes (api.ts)', () => {
  function stubServer(status: number, body: unknown) {
    const seen: { url: string; method: string; body: string; contentType: string | null }[] = [];
    const fetch = vi.fn(async (input: RequestInfo) => {
      const request = input as Request;
      seen.push({
        url: request.url.replace(/[?&]\d{12,}$/, ''),
        method: request.method,
        body: await request.text(),
        contentType: request.headers.get('Content-Type')
      });
      return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
    });
    const settings = ServerConnection.makeSettings({ baseUrl: 'http://jupyter.test/base/', token: 'secret', fetch });
    vi.spyOn(ServerConnection, 'makeSettings').mockReturnValue(settings);
    return seen;
  }

  it('pause and resume POST JSON to jobs/<job>/schedules/<name>/<action> and return the schedules', async () => {
    const paused = [schedule({ paused: true, next_fire_time: null })];
    const seen = stubServer(200, { schedules: paused });
    expect(await api.pauseSchedule('demo/repair demo', 'night ly')).toEqual(paused);
    expect(await api.resumeSchedule('demo/repair_demo', 'nightly')).toEqual(paused);
    expect(seen.map(s => [s.method, s.url])).toEqual([
      ['POST', 'http://jupyter.test/base/jupyter-orchestrate/api/jobs/demo/repair%20demo/schedules/night%20ly/pause'],
      ['POST', 'http://jupyter.test/base/jupyter-orchestrate/api/jobs/demo/repair_demo/schedules/nightly/resume']
    ]);
    expect(seen[0].contentType).toBe('application/json');
    expect(JSON.parse(seen[0].body)).toEqual({});
  });

  it('trigger returns the new run; errors carry the server message', async () => {
    const seen = stubServer(201, run(5));
    expect((await api.triggerSchedule('demo/repair_demo', 'a/b')).run_id).toBe(5);
    expect(seen[0].url).toBe(
      'http://jupyter.test/base/jupyter-orchestrate/api/jobs/demo/repair_demo/schedules/a%2Fb/trigger'
    );
    vi.restoreAllMocks();
    stubServer(404, { message: "job repair_demo has no schedule 'x'" });
    await expect(api.triggerSchedule('demo/repair_demo', 'x')).rejects.toMatchObject({
      status: 404,
      message: "job repair_demo has no schedule 'x'"
    });
  });
});
