/** The All runs view (src/components/AllRuns.tsx): the query of the filters, paging by `next_before`, rows. */
import React from 'react';
import { act } from 'react';
import { describe, expect, it, vi } from 'vitest';

import type { IRunQuery, RunListDocument, RunSummaryDocument } from '../api';
import { AllRuns, localToIso, NO_FILTERS, runQuery } from '../components/AllRuns';
import { OrchestrateModel } from '../model';
import { interact, render } from './render';

const NOW = Date.parse('2026-12-01T12:00:00Z');

function summary(run_id: number, status: RunSummaryDocument['status'], job = 'etl'): RunSummaryDocument {
  return {
    run_id,
    job,
    job_path: `/root/${job}`,
    job_id: job,
    status,
    status_reason: null,
    trigger: run_id % 2 ? 'manual' : 'schedule',
    trigger_time: null,
    trigger_reason: null,
    start_time: new Date(NOW - run_id * 60000).toISOString(),
    end_time: null,
    duration_seconds: 12.5,
    parameters: {},
    repair_count: 0,
    repairs: [],
    task_statuses: {},
    task_duration_seconds: {}
  };
}

/** A stand-in for `GET runs` over `all` (newest first), honouring status, before and limit like the server. */
function server(all: RunSummaryDocument[]) {
  return vi.fn(async (query: IRunQuery): Promise<RunListDocument> => {
    const matching = all.filter(
      r => (!query.status || r.status === query.status) && (query.before === undefined || r.run_id < query.before)
    );
    const page = matching.slice(0, query.limit ?? 20);
    return { runs: page, next_before: page.length === (query.limit ?? 20) ? page[page.length - 1].run_id : null };
  });
}

async function flush(): Promise<void> {
  await act(async () => {
    await new Promise(resolve => setTimeout(resolve, 0));
  });
}

describe('runQuery', () => {
  it('sends only the filters that are set', () => {
    expect(runQuery(NO_FILTERS, NOW)).toEqual({});
    expect(runQuery({ ...NO_FILTERS, job: 'a/b', status: 'failed', trigger: 'schedule' }, NOW)).toEqual({
      job: 'a/b',
      status: 'failed',
      trigger: 'schedule'
    });
  });

  it('turns a time range into since (hours back from now) or the custom inputs into UTC times', () => {
    expect(runQuery({ ...NO_FILTERS, range: '24h' }, NOW)).toEqual({ since: '2026-11-30T12:00:00.000Z' });
    expect(runQuery({ ...NO_FILTERS, range: '7d' }, NOW).since).toBe('2026-11-24T12:00:00.000Z');
    const custom = runQuery({ ...NO_FILTERS, range: 'custom', since: '2026-11-01T08:30', until: '' }, NOW);
    expect(custom.since).toBe(new Date('2026-11-01T08:30').toISOString());
    expect(custom.until).toBeUndefined();
    // custom inputs are ignored unless the custom range is chosen
    expect(runQuery({ ...NO_FILTERS, since: '2026-11-01T08:30' }, NOW)).toEqual({});
    expect(localToIso('not a time')).toBeUndefined();
  });
});

describe('<AllRuns>', () => {
  const all = Array.from({ length: 7 }, (_, i) => summary(7 - i, i % 3 === 0 ? 'failed' : 'succeeded'));

  it('lists a page, loads more with before = next_before (no duplicates, no gaps), and opens a run', async () => {
    const model = new OrchestrateModel({ subscribe: false });
    const show = vi.spyOn(model, 'show').mockImplementation(() => undefined);
    const listRuns = server(all);
    const { container, unmount } = render(<AllRuns model={model} pageSize={3} listRuns={listRuns} />);
    await flush();
    const ids = () => [...container.querySelectorAll('.jo-run-row')].map(r => Number(r.getAttribute('data-run-id')));
    expect(ids()).toEqual([7, 6, 5]);
    expect(listRuns).toHaveBeenLastCalledWith({ limit: 3 });
    const more = () => container.querySelector('.jo-load-more') as HTMLButtonElement | null;
    interact(() => more()!.click());
    await flush();
    expect(listRuns).toHaveBeenLastCalledWith({ limit: 3, before: 5 });
    expect(ids()).toEqual([7, 6, 5, 4, 3, 2]);
    interact(() => more()!.click());
    await flush();
    expect(ids()).toEqual([7, 6, 5, 4, 3, 2, 1]);
    expect(more()).toBeNull(); // the last page
    const row = container.querySelector('.jo-run-row[data-run-id="4"]') as HTMLElement;
    expect(row.textContent).toContain('etl');
    expect(row.querySelector('.jo-badge')?.textContent).toBe('failed');
    interact(() => row.click());
    expect(show).toHaveBeenCalledWith({ kind: 'run', runId: 4 });
    unmount();
    model.dispose();
  });

  it('filters by status from the select and starts again from the newest run', async () => {
    const model = new OrchestrateModel({ subscribe: false });
    const listRuns = server(all);
    const { container, unmount } = render(<AllRuns model={model} pageSize={10} listRuns={listRuns} />);
    await flush();
    const select = container.querySelector('select[data-filter=status]') as HTMLSelectElement;
    expect([...select.options].map(o => o.value)).toEqual([
      '',
      'queued',
      'running',
      'succeeded',
      'failed',
      'canceling',
      'canceled'
    ]);
    await act(async () => {
      select.value = 'failed';
      select.dispatchEvent(new Event('change', { bubbles: true }));
    });
    await flush();
    expect(listRuns).toHaveBeenLastCalledWith({ status: 'failed', limit: 10 });
    const rows = [...container.querySelectorAll('.jo-run-row')];
    expect(rows.map(r => r.getAttribute('data-status'))).toEqual(['failed', 'failed', 'failed']);
    expect(rows.map(r => r.getAttribute('data-run-id'))).toEqual(['7', '4', '1']);
    unmount();
    // the filters are kept for the next time the view opens (after opening a run and coming back)
    const again = render(<AllRuns model={model} pageSize={10} listRuns={listRuns} />);
    await flush();
    expect(listRuns).toHaveBeenLastCalledWith({ status: 'failed', limit: 10 });
    again.unmount();
    model.dispose();
  });

  it('says when nothing matches and shows the error of a failed request', async () => {
    const model = new OrchestrateModel({ subscribe: false });
    const empty = render(<AllRuns model={model} listRuns={server([])} />);
    await flush();
    expect(empty.container.querySelector('[data-testid=jo-no-runs]')?.textContent).toContain('No runs match');
    empty.unmount();
    const broken = render(
      <AllRuns model={new OrchestrateModel({ subscribe: false })} listRuns={() => Promise.reject(new Error('boom'))} />
    );
    await flush();
    expect(broken.container.querySelector('.jo-error-text')?.textContent).toBe('Cannot load runs: boom');
    broken.unmount();
    model.dispose();
  });
});
