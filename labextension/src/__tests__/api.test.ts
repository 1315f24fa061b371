/**
 * The REST client (src/api.ts): URLs under jupyter-orchestrate/api, JSON bodies, error answers turned into
 * OrchestrateApiError. The real ServerConnection.makeRequest runs; only `fetch` is fake.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ServerConnection } from '@jupyterlab/services';

import { api, API_PATH, isTerminal, OrchestrateApiError, requestAPI } from '../api';

interface ISeen {
  url: string;
  method: string;
  body: string;
  headers: Headers;
}

/** ServerConnection appends `?<epoch ms>` (settings.init.cache is 'no-store'); drop it to compare URLs. */
function withoutCacheBuster(url: string): string {
  return url.replace(/[?&]\d{12,}$/, '');
}

/** Settings whose fetch records each request and answers `status` with `body` (JSON unless a string). */
function fakeServer(status = 200, body: unknown = {}, contentType = 'application/json') {
  const seen: ISeen[] = [];
  const fetch = vi.fn(async (input: RequestInfo) => {
    const request = input as Request; // ServerConnection always passes a Request
    seen.push({
      url: withoutCacheBuster(request.url),
      method: request.method,
      body: await request.text(),
      headers: request.headers
    });
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return new Response(status === 204 ? null : text, {
      status,
      statusText: status === 404 ? 'Not Found' : '',
      headers: { 'Content-Type': contentType }
    });
  });
  const settings = ServerConnection.makeSettings({ baseUrl: 'http://jupyter.test/base/', token: 'secret', fetch });
  return { settings, seen, fetch };
}

/** Route api.* calls (which use the page's default settings) to a fake server. */
function stubDefaultSettings(status = 200, body: unknown = {}) {
  const server = fakeServer(status, body);
  vi.spyOn(ServerConnection, 'makeSettings').mockReturnValue(server.settings);
  return server;
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<OrchestrateApiError> {
  try {
    await promise;
  } catch (error) {
    return error as OrchestrateApiError;
  }
  throw new Error('expected the request to fail');
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('requestAPI', () => {
  it('requests endpoints under <baseUrl>jupyter-orchestrate/api and parses JSON', async () => {
    const { settings, seen } = fakeServer(200, { jobs: [{ job_id: 'a' }] });
    const data = await requestAPI<{ jobs: { job_id: string }[] }>('jobs', {}, settings);
    expect(API_PATH).toBe('jupyter-orchestrate/api');
    expect(seen).toHaveLength(1);
    expect(seen[0].url).toBe('http://jupyter.test/base/jupyter-orchestrate/api/jobs');
    expect(seen[0].method).toBe('GET');
    expect(seen[0].headers.get('Authorization')).toBe('token secret');
    expect(data).toEqual({ jobs: [{ job_id: 'a' }] });
  });

  it('sends the body and method it is given', async () => {
    const { settings, seen } = fakeServer(201, { run_id: 3 });
    const body = JSON.stringify({ parameters: { threshold: 0.5 } });
    const run = await requestAPI<{ run_id: number }>('jobs/j/runs', { method: 'POST', body }, settings);
    expect(run.run_id).toBe(3);
    expect(seen[0].method).toBe('POST');
    expect(JSON.parse(seen[0].body)).toEqual({ parameters: { threshold: 0.5 } });
  });

  it('returns text for a non-JSON answer (attempt logs)', async () => {
    const { settings } = fakeServer(200, 'line 1\nline 2\n', 'text/plain; charset=UTF-8');
    await expect(requestAPI<string>('runs/1/tasks/a/attempts/1/log', {}, settings)).resolves.toBe('line 1\nline 2\n');
  });

  it.each([400, 404, 409])('throws OrchestrateApiError with the message and problems of a %i answer', async status => {
    const problems = [{ path: 'job/job.yaml', field: 'tasks.x', message: "no notebook has task_key 'x'" }];
    const { settings } = fakeServer(status, { message: `error ${status}: job/job.yaml: tasks.x`, problems });
    const error = await rejection(requestAPI('jobs/job', {}, settings));
    expect(error).toBeInstanceOf(OrchestrateApiError);
    expect(error.status).toBe(status);
    expect(error.message).toBe(`error ${status}: job/job.yaml: tasks.x`);
    expect(error.problems).toEqual(problems);
  });

  it('falls back to the status text when an error answer has no JSON message', async () => {
    const { settings } = fakeServer(404, '<html>gone</html>', 'text/html');
    const error = await rejection(requestAPI('runs/99', {}, settings));
    expect(error).toBeInstanceOf(OrchestrateApiError);
    expect(error.status).toBe(404);
    expect(error.message).toBe('Not Found');
    expect(error.problems).toEqual([]);
  });

  it('reports an unreachable server as status 0', async () => {
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://jupyter.test/',
      fetch: () => Promise.reject(new TypeError('Failed to fetch'))
    });
    const error = await rejection(requestAPI('jobs', {}, settings));
    expect(error).toBeInstanceOf(OrchestrateApiError);
    expect(error.status).toBe(0);
    expect(error.message).toMatch(/cannot reach the server/);
  });
});

describe('api', () => {
  it('listJobs unwraps the jobs list', async () => {
    const server = stubDefaultSettings(200, { jobs: [{ job_id: 'x' }, { job_id: 'y' }] });
    const jobs = await api.listJobs();
    expect(jobs.map(j => j.job_id)).toEqual(['x', 'y']);
    expect(server.seen[0].url).toBe('http://jupyter.test/base/jupyter-orchestrate/api/jobs');
  });

  it('encodes job ids per path segment, keeping the slashes', async () => {
    const server = stubDefaultSettings(200, {});
    await api.getJob('example notebooks/green&energy/#1?');
    expect(server.seen[0].url).toBe(
      'http://jupyter.test/base/jupyter-orchestrate/api/jobs/example%20notebooks/green%26energy/%231%3F'
    );
  });

  it('startRun posts the parameters to jobs/<job>/runs', async () => {
    const server = stubDefaultSettings(201, { run_id: 7, status: 'running' });
    const run = await api.startRun('example_notebooks/green_energy', { countries: 'NL,DE' });
    expect(run.run_id).toBe(7);
    expect(server.seen[0].method).toBe('POST');
    expect(server.seen[0].url).toBe(
      'http://jupyter.test/base/jupyter-orchestrate/api/jobs/example_notebooks/green_energy/runs'
    );
    expect(JSON.parse(server.seen[0].body)).toEqual({ parameters: { countries: 'NL,DE' } });
  });

  it('listRuns builds the query string from the given filters only', async () => {
    const server = stubDefaultSettings(200, { runs: [], next_before: null });
    await api.listRuns();
    await api.listRuns({ job: 'example_notebooks/repair_demo', status: 'failed', limit: 1, before: undefined });
    await api.listRuns({ before: 12, limit: 50 });
    const urls = server.seen.map(s => new URL(s.url));
    expect(urls[0].pathname).toBe('/base/jupyter-orchestrate/api/runs');
    expect(urls[0].search).toBe('');
    expect(Object.fromEntries(urls[1].searchParams)).toEqual({
      job: 'example_notebooks/repair_demo',
      status: 'failed',
      limit: '1'
    });
    expect(Object.fromEntries(urls[2].searchParams)).toEqual({ before: '12', limit: '50' });
  });

  it('planRepair asks for a dry run and repair for a real one', async () => {
    const server = stubDefaultSettings(200, {
      run_id: 2,
      task_keys: ['validate', 'publish'],
      reused_task_keys: ['extract']
    });
    await api.planRepair(2, { parameters: { threshold: 0.5 } });
    await api.repair(2, { task_keys: ['validate'], dry_run: true });
    expect(server.seen.map(s => s.url)).toEqual([
      'http://jupyter.test/base/jupyter-orchestrate/api/runs/2/repair',
      'http://jupyter.test/base/jupyter-orchestrate/api/runs/2/repair'
    ]);
    expect(JSON.parse(server.seen[0].body)).toEqual({ parameters: { threshold: 0.5 }, dry_run: true });
    // a real repair can never be turned into a dry run by the request
    expect(JSON.parse(server.seen[1].body)).toEqual({ task_keys: ['validate'], dry_run: false });
  });

  it('cancel, attemptLog and updateTask use their routes and methods', async () => {
    const server = stubDefaultSettings(200, {});
    await api.cancel(4);
    await api.attemptLog(4, 'gold/a b', 2);
    await api.updateTask('jobs/j 1', 'task a', { timeout_seconds: 120 });
    expect(server.seen.map(s => [s.method, new URL(s.url).pathname])).toEqual([
      ['POST', '/base/jupyter-orchestrate/api/runs/4/cancel'],
      ['GET', '/base/jupyter-orchestrate/api/runs/4/tasks/gold%2Fa%20b/attempts/2/log'],
      ['PUT', '/base/jupyter-orchestrate/api/jobs/jobs/j%201/tasks/task%20a']
    ]);
    expect(JSON.parse(server.seen[2].body)).toEqual({ timeout_seconds: 120 });
  });

  it('propagates a 409 of the server as OrchestrateApiError', async () => {
    stubDefaultSettings(409, { message: 'run 2 is running; wait for it to finish or cancel it before repairing' });
    await expect(api.repair(2)).rejects.toMatchObject({ status: 409, message: expect.stringContaining('is running') });
  });
});

describe('isTerminal', () => {
  it.each(['succeeded', 'failed', 'canceled', 'upstream_failed', 'skipped', 'timed_out'] as const)(
    '%s is terminal',
    s => {
      expect(isTerminal(s)).toBe(true);
    }
  );
  it.each(['queued', 'running', 'canceling', 'pending', 'up_for_retry'] as const)('%s is not terminal', s => {
    expect(isTerminal(s)).toBe(false);
  });
});
