/**
 * The Trends view (src/components/Trends.tsx): bar layout, median, formatting, the rendered chart, task table
 * and slowest cells, the limit choice, errors; the trends route of the client (api.ts); and the way there from
 * the job view and back (Sidebar).
 */
import React from 'react';
import { act } from 'react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ServerConnection } from '@jupyterlab/services';

import { api, OrchestrateApiError, TaskTrendDocument, TrendRunDocument, TrendsDocument } from '../api';
import { OrchestrateModel } from '../model';
import { barTitle, durationBars, formatCellSeconds, formatRate, medianDuration, Trends } from '../components/Trends';
import { OrchestrateSidebar } from '../components/Sidebar';
import { interact, render } from './render';

function trendRun(run_id: number, status: string, duration_seconds: number | null): TrendRunDocument {
  return {
    run_id,
    status: status as TrendRunDocument['status'],
    trigger: 'manual',
    start_time: `2026-12-0${run_id}T00:00:00+00:00`,
    duration_seconds
  };
}

function task(task_key: string, extra: Partial<TaskTrendDocument> = {}): TaskTrendDocument {
  return {
    task_key,
    task_runs: 4,
    ran: 4,
    succeeded: 3,
    failed: 1,
    failure_rate: 0.25,
    p50_duration_seconds: 2,
    p90_duration_seconds: 4,
    slowest_cells: [],
    ...extra
  };
}

const TRENDS: TrendsDocument = {
  job_id: 'demo/trendy',
  limit: 50,
  runs: [trendRun(1, 'succeeded', 10), trendRun(2, 'failed', 5), trendRun(3, 'running', null)],
  tasks: [
    task('slow', {
      failure_rate: 0,
      failed: 0,
      succeeded: 4,
      slowest_cells: [
        {
          cell_index: 1,
          executions: 4,
          median_duration_seconds: 0.31,
          max_duration_seconds: 1.5,
          source_first_line: 'time.sleep(0.3)'
        },
        {
          cell_index: null,
          executions: 4,
          median_duration_seconds: 0.02,
          max_duration_seconds: 0.03,
          source_first_line: null
        }
      ]
    }),
    task('flaky', { failure_rate: 0.5, failed: 2, p50_duration_seconds: 1, p90_duration_seconds: 1.5 })
  ]
};

async function flush(): Promise<void> {
  await act(async () => {
    await new Promise(resolve => setTimeout(resolve, 0));
  });
}

function model(): OrchestrateModel {
  const m = new OrchestrateModel({ subscribe: false });
  vi.spyOn(m, 'refresh').mockResolvedValue(undefined);
  return m;
}

afterEach(() => {
  vi.restoreAllMocks();
  document.body.innerHTML = '';
});

describe('durationBars', () => {
  it('lays out one bar per run, oldest left, scaled to the longest', () => {
    const bars = durationBars(TRENDS.runs, 300, 100);
    expect(bars.map(b => b.run.run_id)).toEqual([1, 2, 3]);
    expect(bars[0].height).toBe(100);
    expect(bars[1].height).toBe(50);
    expect(bars[1].y).toBe(50);
    expect(bars[2].height).toBe(1); // unfinished: a stub to hover
    expect(bars[0].x).toBeLessThan(bars[1].x);
    expect(bars[1].x + bars[1].width).toBeLessThanOrEqual(200);
    expect(durationBars([], 300, 100)).toEqual([]);
    expect(durationBars([trendRun(1, 'running', null)], 300, 100)[0].height).toBe(1);
  });
});

describe('formatting', () => {
  it('takes the median of finished runs, formats rates and cell times', () => {
    expect(medianDuration(TRENDS.runs)).toBe(7.5);
    expect(medianDuration([trendRun(1, 'succeeded', 3), trendRun(2, 'failed', 1), trendRun(3, 'failed', 9)])).toBe(3);
    expect(medianDuration([trendRun(1, 'running', null)])).toBeNull();
    expect(formatRate(0.25)).toBe('25 %');
    expect(formatRate(null)).toBe('—');
    expect(formatCellSeconds(0.3125)).toBe('313 ms');
    expect(formatCellSeconds(12.34)).toBe('12.3 s');
    expect(barTitle(TRENDS.runs[1])).toBe('run 2 · failed · 5.0 s · manual · started 2026-12-02T00:00:00+00:00');
    expect(barTitle(TRENDS.runs[2])).toContain('not finished');
  });
});

describe('Trends', () => {
  it('renders status-coloured bars with tooltips, per-task p50/p90 and failure rates, and the slowest cells', async () => {
    const fetchTrends = vi.spyOn(api, 'jobTrends').mockResolvedValue(TRENDS);
    const onOpenRun = vi.fn();
    const { container } = render(<Trends model={model()} jobId="demo/trendy" onOpenRun={onOpenRun} />);
    await flush();
    expect(fetchTrends).toHaveBeenCalledWith('demo/trendy', 50);
    const bars = Array.from(container.querySelectorAll('rect.jo-trend-bar'));
    expect(bars.map(b => b.getAttribute('data-status'))).toEqual(['succeeded', 'failed', 'running']);
    expect(bars[1].classList.contains('jo-status-failed')).toBe(true);
    expect(bars[1].querySelector('title')?.textContent).toContain('run 2 · failed · 5.0 s');
    expect(container.querySelector('line.jo-trend-median title')?.textContent).toBe('median run duration 7.5 s');
    interact(() => (bars[0] as SVGRectElement).dispatchEvent(new MouseEvent('click', { bubbles: true })));
    expect(onOpenRun).toHaveBeenCalledWith(1);

    const rows = Array.from(container.querySelectorAll('[data-testid="jo-trends-tasks"] tbody tr'));
    expect(rows.map(r => r.getAttribute('data-task-key'))).toEqual(['slow', 'flaky']);
    expect(rows.map(r => r.querySelector('[data-testid="jo-trends-p50"]')?.textContent)).toEqual(['2.0 s', '1.0 s']);
    const rates = rows.map(r => r.querySelector('[data-testid="jo-trends-failure-rate"]') as HTMLElement);
    expect(rates.map(r => r.textContent)).toEqual(['0 %', '50 %']);
    expect(rates[1].classList.contains('jo-status-failed')).toBe(true);
    expect(rates[1].title).toBe('2 of 4 task runs that ran failed or timed out');
    // p90 bars are scaled to the slowest task's p90 (slow: 4 s)
    expect((rows[0].querySelector('.jo-trends-p90') as HTMLElement).style.width).toBe('100%');
    expect((rows[1].querySelector('.jo-trends-p50') as HTMLElement).style.width).toBe('25%');

    const cells = container.querySelectorAll('.jo-trends-cells');
    expect(cells).toHaveLength(1); // flaky has no recorded cells
    const items = Array.from(cells[0].querySelectorAll('li'));
    expect(items[0].textContent).toContain('cell 2');
    expect(items[0].textContent).toContain('310 ms');
    expect(items[0].querySelector('code')?.textContent).toBe('time.sleep(0.3)');
    expect(items[0].title).toContain('max 1.5 s over 4 executions');
    expect(items[1].textContent).toContain('the injected-parameters cell');
  });

  it('fetches again for another number of runs', async () => {
    const fetchTrends = vi.spyOn(api, 'jobTrends').mockResolvedValue(TRENDS);
    const { container } = render(<Trends model={model()} jobId="trendy" onOpenRun={() => undefined} />);
    await flush();
    const select = container.querySelector('[data-testid="jo-trends-limit"] select, select') as HTMLSelectElement;
    expect(Array.from(select.options).map(o => o.value)).toEqual(['20', '50', '100', '200', '500']);
    interact(() => {
      select.value = '200';
      select.dispatchEvent(new Event('change', { bubbles: true }));
    });
    await flush();
    expect(fetchTrends).toHaveBeenLastCalledWith('trendy', 200);
  });

  it('says when there are no runs, and shows the server error when the request fails', async () => {
    vi.spyOn(api, 'jobTrends').mockResolvedValueOnce({ ...TRENDS, runs: [], tasks: [] });
    const empty = render(<Trends model={model()} jobId="trendy" onOpenRun={() => undefined} />);
    await flush();
    expect(empty.container.textContent).toContain('No runs yet');
    expect(empty.container.querySelector('rect')).toBeNull();
    empty.unmount();

    vi.spyOn(api, 'jobTrends').mockRejectedValue(
      new OrchestrateApiError(404, "no job folder 'gone' under the server root")
    );
    const failed = render(<Trends model={model()} jobId="gone" onOpenRun={() => undefined} />);
    await flush();
    expect(failed.container.querySelector('.jo-error-text')?.textContent).toBe(
      "Cannot load the trends of gone: no job folder 'gone' under the server root"
    );
  });
});

describe('the trends route and view', () => {
  it('asks GET jobs/{job}/trends?limit=N with the job id escaped per segment', async () => {
    const seen: string[] = [];
    const fetch = vi.fn(async (input: RequestInfo) => {
      seen.push((input as Request).url.replace(/[?&]\d{12,}$/, ''));
      return new Response(JSON.stringify(TRENDS), { status: 200, headers: { 'Content-Type': 'application/json' } });
    });
    vi.spyOn(ServerConnection, 'makeSettings').mockReturnValue(
      ServerConnection.makeSettings({ baseUrl: 'http://jupyter.test/base/', fetch })
    );
    expect(await api.jobTrends('teams/a b', 20)).toEqual(TRENDS);
    expect(seen[0]).toBe('http://jupyter.test/base/jupyter-orchestrate/api/jobs/teams/a%20b/trends?limit=20');
  });

  it('is reached from the job view and goes back to it', async () => {
    vi.spyOn(api, 'jobTrends').mockResolvedValue(TRENDS);
    vi.spyOn(api, 'getJob').mockRejectedValue(new Error('offline'));
    vi.spyOn(api, 'listRuns').mockResolvedValue({ runs: [], next_before: null });
    const m = model();
    m.jobs = [
      {
        job_id: 'demo/trendy',
        name: 'trendy',
        path: '/srv/demo/trendy',
        valid: true,
        problems: [],
        schedules: [],
        recent_runs: [],
        tasks: []
      } as unknown as NonNullable<OrchestrateModel['jobs']>[number]
    ];
    m.view = { kind: 'job', jobId: 'demo/trendy' };
    const actions = { runJob: vi.fn(), repairRun: vi.fn(), openNotebook: vi.fn() } as never;
    const sidebar = new OrchestrateSidebar(m, actions);
    const host = document.createElement('div');
    document.body.appendChild(host);
    // render the widget's React tree directly (no Lumino attach needed in jsdom)
    const { container } = render(sidebar.render());
    await flush();
    const open = container.querySelector('[data-testid="jo-open-trends"]') as HTMLElement;
    expect(open).not.toBeNull();
    interact(() => open.click());
    await flush();
    expect(m.view).toEqual({ kind: 'trends', jobId: 'demo/trendy' });
    expect(container.querySelector('.jo-title')?.textContent).toBe('trendy: trends');
    expect(container.querySelector('[data-testid="jo-trends"]')).not.toBeNull();
    expect(container.querySelectorAll('rect.jo-trend-bar')).toHaveLength(3);
    const back = container.querySelector('.jo-header [title="Back"], .jo-header button') as HTMLElement;
    interact(() => back.click());
    await flush();
    expect(m.view).toEqual({ kind: 'job', jobId: 'demo/trendy' });
  });
});
