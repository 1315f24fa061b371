/**
 * The sidebar's channel and memory: run events picked out of JupyterLab's event bus (src/channel.ts), and the
 * open view saved to / restored from a real StateDB with run links routed by a real command registry
 * (src/restore.ts). Only the REST calls are stubbed.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { JupyterFrontEnd } from '@jupyterlab/application';
import type { Event } from '@jupyterlab/services';
import { StateDB } from '@jupyterlab/statedb';
import { CommandRegistry } from '@lumino/commands';
import { PromiseDelegate } from '@lumino/coreutils';
import { Stream } from '@lumino/signaling';

import { api } from '../api';
import { EVENT_SCHEMA_ID, runEventOf, subscribeRunEvents } from '../channel';
import { OrchestrateModel } from '../model';
import {
  OPEN_RUN_LINK,
  parseView,
  RUN_LINK_PATTERN,
  runIdOfSearch,
  runLink,
  setupRestore,
  STATE_KEY,
  withoutRunParam
} from '../restore';

const flush = () => new Promise(resolve => setTimeout(resolve, 0));

beforeEach(() => {
  vi.spyOn(api, 'listJobs').mockResolvedValue([]);
  vi.spyOn(api, 'getRun').mockRejectedValue(new Error('no server in unit tests'));
});

afterEach(() => {
  window.history.replaceState(null, '', '/lab');
});

describe('channel', () => {
  function fakeEvents(): Event.IManager {
    const manager = { serverSettings: {}, isDisposed: false, dispose: () => undefined } as unknown as Event.IManager;
    (manager as { stream: Event.Stream }).stream = new Stream(manager);
    return manager;
  }

  it('passes only our schema id, without the bus key, to the model', () => {
    const events = fakeEvents();
    const model = new OrchestrateModel({ subscribe: false });
    const seen: unknown[] = [];
    const stop = subscribeRunEvents(events, e => {
      seen.push(e);
      model.onEvent(e);
    });
    const stream = events.stream as Stream<Event.IManager, Event.Emission>;
    stream.emit({ schema_id: 'https://events.jupyter.org/jupyter_server/kernel_actions/v1', action: 'start' });
    const progress = { id: 7, type: 'progress', run_id: 3, task_key: 'bronze', attempt_number: 1, cell: 2, total: 4 };
    stream.emit({ schema_id: EVENT_SCHEMA_ID, ...progress });
    expect(seen).toEqual([progress]);
    expect(model.progress.get('3/bronze')).toEqual({ cell: 2, total: 4 });
    stop();
    stream.emit({ schema_id: EVENT_SCHEMA_ID, ...progress, id: 8, cell: 3 });
    expect(seen).toHaveLength(1);
  });

  it('drops emissions of our schema that are not run events', () => {
    expect(runEventOf({ schema_id: EVENT_SCHEMA_ID, type: 'other', run_id: 1 })).toBeNull();
    expect(runEventOf({ schema_id: EVENT_SCHEMA_ID, type: 'run_status', run_id: '1' })).toBeNull();
  });
});

describe('run links', () => {
  it('are the app URL with the run id and no token', () => {
    expect(runLink(12, 'http://host:8888/base/', '/lab')).toBe('http://host:8888/base/lab?orchestrate-run=12');
    expect(runLink(3, 'http://host/', '/lab')).not.toContain('token');
  });

  it('give back their run id, and nothing for anything else', () => {
    expect(runIdOfSearch('?orchestrate-run=12')).toBe(12);
    expect(runIdOfSearch('?reset&orchestrate-run=7&x=1')).toBe(7);
    for (const bad of ['', '?orchestrate-run=', '?orchestrate-run=0', '?orchestrate-run=-1', '?orchestrate-run=1e3']) {
      expect(runIdOfSearch(bad)).toBeNull();
    }
    expect(RUN_LINK_PATTERN.test('/lab?orchestrate-run=4')).toBe(true);
    expect(RUN_LINK_PATTERN.test('/lab/tree/orchestrate-run=4')).toBe(false);
  });

  it('lose only their own parameter', () => {
    expect(withoutRunParam('http://h/lab?a=1&orchestrate-run=4#x')).toBe('http://h/lab?a=1#x');
    expect(withoutRunParam('http://h/lab?orchestrate-run=4')).toBe('http://h/lab');
  });
});

describe('parseView', () => {
  it('keeps valid views and refuses broken ones', () => {
    expect(parseView({ kind: 'run', runId: 4 })).toEqual({ kind: 'run', runId: 4 });
    expect(parseView({ kind: 'job', jobId: 'a/b' })).toEqual({ kind: 'job', jobId: 'a/b' });
    expect(parseView({ kind: 'jobs', junk: 1 })).toEqual({ kind: 'jobs' });
    for (const bad of [null, 3, 'run', [], { kind: 'run', runId: '4' }, { kind: 'run', runId: 0 }, { kind: 'job' }]) {
      expect(parseView(bad)).toBeNull();
    }
  });
});

describe('setupRestore', () => {
  function fakeApp() {
    const restored = new PromiseDelegate<void>();
    const activateById = vi.fn();
    const app = { commands: new CommandRegistry(), shell: { activateById }, restored: restored.promise };
    return { app: app as unknown as JupyterFrontEnd, restored, activateById };
  }

  function fakeRouter(commands: CommandRegistry) {
    const rules: { command: string; pattern: RegExp }[] = [];
    return {
      router: { register: (rule: { command: string; pattern: RegExp }) => rules.push(rule) } as never,
      /** Route the page's URL as JupyterLab's router does: run each matching rule's command with the location. */
      route: async () => {
        const search = window.location.search;
        for (const rule of rules) {
          if ((window.location.pathname + search).match(rule.pattern)) {
            await commands.execute(rule.command, { search });
          }
        }
      }
    };
  }

  it('restores the saved run after the layout, then saves each new view', async () => {
    const { app, restored } = fakeApp();
    const state = new StateDB();
    await state.save(STATE_KEY, { kind: 'run', runId: 9 });
    const model = new OrchestrateModel({ subscribe: false });
    setupRestore({ app, model, sidebarId: 'sb', state, router: null });
    model.show({ kind: 'jobs' }); // the first render, before the workspace is restored, saves nothing
    expect(await state.fetch(STATE_KEY)).toEqual({ kind: 'run', runId: 9 });
    restored.resolve();
    await flush();
    await flush();
    expect(model.view).toEqual({ kind: 'run', runId: 9 });
    model.show({ kind: 'job', jobId: 'example/green' });
    await flush();
    expect(await state.fetch(STATE_KEY)).toEqual({ kind: 'job', jobId: 'example/green' });
  });

  it('ignores a broken saved value', async () => {
    const { app, restored } = fakeApp();
    const state = new StateDB();
    await state.save(STATE_KEY, { kind: 'run', runId: 'x' });
    const model = new OrchestrateModel({ subscribe: false });
    setupRestore({ app, model, sidebarId: 'sb', state, router: null });
    restored.resolve();
    await flush();
    await flush();
    expect(model.view).toEqual({ kind: 'jobs' });
    expect(await state.fetch(STATE_KEY)).toEqual({ kind: 'jobs' });
  });

  it('opens a run link over the saved view and takes the parameter off the address bar', async () => {
    const { app, restored, activateById } = fakeApp();
    const state = new StateDB();
    await state.save(STATE_KEY, { kind: 'run', runId: 9 });
    const model = new OrchestrateModel({ subscribe: false });
    const { router, route } = fakeRouter(app.commands);
    setupRestore({ app, model, sidebarId: 'sb', state, router });
    expect(app.commands.hasCommand(OPEN_RUN_LINK)).toBe(true);
    window.history.replaceState(null, '', '/lab?orchestrate-run=12');
    await route();
    expect(model.view).toEqual({ kind: 'run', runId: 12 });
    expect(activateById).toHaveBeenCalledWith('sb');
    expect(window.location.search).toBe('');
    restored.resolve();
    await flush();
    await flush();
    expect(model.view).toEqual({ kind: 'run', runId: 12 });
    expect(await state.fetch(STATE_KEY)).toEqual({ kind: 'run', runId: 12 });
  });

  it('leaves a link with a bad run id alone', async () => {
    const { app } = fakeApp();
    const model = new OrchestrateModel({ subscribe: false });
    const { router, route } = fakeRouter(app.commands);
    setupRestore({ app, model, sidebarId: 'sb', state: null, router });
    window.history.replaceState(null, '', '/lab?orchestrate-run=abc');
    await route();
    expect(model.view).toEqual({ kind: 'jobs' });
    expect(window.location.search).toBe('?orchestrate-run=abc');
  });
});
