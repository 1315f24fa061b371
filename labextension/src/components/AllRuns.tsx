/**
 * The All runs view: every run of every job, newest first, filtered by job, status, trigger and time range,
 * a page at a time ("Load more" asks for the page before the last run shown: keyset paging, so pages never
 * repeat or skip a run). Rows open the run. Filters are JupyterLab's styled selects and inputs.
 */
import React, { useCallback, useEffect, useRef, useState } from 'react';
import { Button, HTMLSelect } from '@jupyterlab/ui-components';

import { api, IRunQuery, RunListDocument, RunStatus, RunSummaryDocument, Trigger } from '../api';
import { OrchestrateModel } from '../model';
import { RUN_STATUSES, TRIGGERS } from '../status';
import { ErrorText, formatSeconds, StatusBadge } from './common';
import { formatStart } from './Matrix';

/** Runs per page. */
export const PAGE_SIZE = 50;

/** Time ranges the filter offers, in hours back from now (`custom`: the since/until inputs). */
export const TIME_RANGES: { value: string; label: string; hours?: number }[] = [
  { value: '', label: 'Any time' },
  { value: '1h', label: 'Last hour', hours: 1 },
  { value: '24h', label: 'Last 24 hours', hours: 24 },
  { value: '7d', label: 'Last 7 days', hours: 24 * 7 },
  { value: '30d', label: 'Last 30 days', hours: 24 * 30 },
  { value: 'custom', label: 'Custom range…' }
];

/** The filters as the view holds them ('' is "any"); `since`/`until` are `datetime-local` values (local time). */
export interface IRunFilters {
  job: string;
  status: '' | RunStatus;
  trigger: '' | Trigger;
  range: string;
  since: string;
  until: string;
}

export const NO_FILTERS: IRunFilters = { job: '', status: '', trigger: '', range: '', since: '', until: '' };

/** A `datetime-local` value (local time) as a UTC ISO time; undefined when empty or invalid. */
export function localToIso(value: string): string | undefined {
  if (!value) {
    return undefined;
  }
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** The `GET runs` query of `filters` (times resolved against `now`, ms), without paging. */
export function runQuery(filters: IRunFilters, now: number = Date.now()): IRunQuery {
  const query: IRunQuery = {};
  if (filters.job) {
    query.job = filters.job;
  }
  if (filters.status) {
    query.status = filters.status;
  }
  if (filters.trigger) {
    query.trigger = filters.trigger;
  }
  const range = TIME_RANGES.find(r => r.value === filters.range);
  if (range?.hours) {
    query.since = new Date(now - range.hours * 3600 * 1000).toISOString();
  } else if (filters.range === 'custom') {
    query.since = localToIso(filters.since);
    query.until = localToIso(filters.until);
  }
  return query;
}

// the filters of each sidebar, kept while the user opens a run and comes back
const remembered = new WeakMap<OrchestrateModel, IRunFilters>();

/** The All runs view. `listRuns` is the API call (a stand-in in unit tests). */
export function AllRuns(props: {
  model: OrchestrateModel;
  pageSize?: number;
  listRuns?: (query: IRunQuery) => Promise<RunListDocument>;
}): JSX.Element {
  const { model } = props;
  const pageSize = props.pageSize ?? PAGE_SIZE;
  const listRuns = props.listRuns ?? api.listRuns;
  const [filters, setFilters] = useState<IRunFilters>(() => remembered.get(model) ?? NO_FILTERS);
  const [runs, setRuns] = useState<RunSummaryDocument[] | null>(null);
  const [nextBefore, setNextBefore] = useState<number | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // answers to superseded requests (the filters changed meanwhile) are dropped
  const generation = useRef(0);

  const load = useCallback(
    (before: number | null) => {
      const mine = before === null ? ++generation.current : generation.current;
      setLoading(true);
      listRuns({ ...runQuery(filters), limit: pageSize, ...(before !== null ? { before } : {}) }).then(
        page => {
          if (mine !== generation.current) {
            return;
          }
          setRuns(previous => (before === null || previous === null ? page.runs : [...previous, ...page.runs]));
          setNextBefore(page.next_before ?? null);
          setError(null);
          setLoading(false);
        },
        (reason: unknown) => {
          if (mine !== generation.current) {
            return;
          }
          setError(String((reason as Error)?.message ?? reason));
          setLoading(false);
        }
      );
    },
    [filters, listRuns, pageSize]
  );

  useEffect(() => {
    remembered.set(model, filters);
    load(null);
  }, [model, filters, load]);

  const set = (change: Partial<IRunFilters>) => setFilters(current => ({ ...current, ...change }));
  const jobs = model.jobs ?? [];
  return (
    <div className="jo-body jo-all-runs" data-testid="jo-all-runs">
      <div className="jo-filters">
        <HTMLSelect
          aria-label="Job"
          data-filter="job"
          value={filters.job}
          onChange={event => set({ job: event.target.value })}
          options={[{ value: '', label: 'All jobs' }, ...jobs.map(j => ({ value: j.job_id, label: j.name }))]}
        />
        <HTMLSelect
          aria-label="Status"
          data-filter="status"
          value={filters.status}
          onChange={event => set({ status: event.target.value as IRunFilters['status'] })}
          options={[{ value: '', label: 'Any status' }, ...RUN_STATUSES.map(s => ({ value: s, label: s }))]}
        />
        <HTMLSelect
          aria-label="Trigger"
          data-filter="trigger"
          value={filters.trigger}
          onChange={event => set({ trigger: event.target.value as IRunFilters['trigger'] })}
          options={[
            { value: '', label: 'Any trigger' },
            ...TRIGGERS.map(t => ({ value: t, label: t.replace(/_/g, ' ') }))
          ]}
        />
        <HTMLSelect
          aria-label="Time range"
          data-filter="range"
          value={filters.range}
          onChange={event => set({ range: event.target.value })}
          options={TIME_RANGES.map(r => ({ value: r.value, label: r.label }))}
        />
        {filters.range === 'custom' && (
          <div className="jo-filter-range">
            <label>
              from{' '}
              <input
                type="datetime-local"
                className="jp-mod-styled"
                data-filter="since"
                value={filters.since}
                onChange={event => set({ since: event.target.value })}
              />
            </label>
            <label>
              to{' '}
              <input
                type="datetime-local"
                className="jp-mod-styled"
                data-filter="until"
                value={filters.until}
                onChange={event => set({ until: event.target.value })}
              />
            </label>
          </div>
        )}
      </div>
      <ErrorText error={error && `Cannot load runs: ${error}`} />
      {runs === null ? (
        <div className="jo-muted">{loading ? 'Loading runs…' : ''}</div>
      ) : runs.length === 0 ? (
        <div className="jo-muted" data-testid="jo-no-runs">
          No runs match these filters.
        </div>
      ) : (
        <div className="jo-run-list" role="list">
          {runs.map(run => (
            <div
              key={run.run_id}
              role="listitem"
              className="jo-run-row"
              data-run-id={run.run_id}
              data-status={run.status}
              title={`Open run ${run.run_id} of ${run.job}`}
              onClick={() => model.show({ kind: 'run', runId: run.run_id })}
            >
              <div className="jo-row">
                <span className="jo-run-row-id">#{run.run_id}</span>
                <span className="jo-run-row-job" title={run.job_id ?? run.job_path}>
                  {run.job}
                </span>
                <StatusBadge status={run.status} />
              </div>
              <div className="jo-muted jo-run-row-meta">
                {run.trigger.replace(/_/g, ' ')} · <span title={run.start_time}>{formatStart(run.start_time)}</span>
                {run.duration_seconds !== null && ` · ${formatSeconds(run.duration_seconds)}`}
              </div>
            </div>
          ))}
        </div>
      )}
      {nextBefore !== null && runs !== null && (
        <Button
          small
          className="jo-load-more"
          disabled={loading}
          onClick={() => load(nextBefore)}
          title="Load the next page of older runs"
        >
          {loading ? 'Loading…' : 'Load more'}
        </Button>
      )}
    </div>
  );
}
