/**
 * Where the sidebar was, across reloads, and links to a run: the open view (jobs list, a job or a run) is kept
 * in JupyterLab's state database (IStateDB, saved with the workspace) and restored after the layout restorer
 * has reopened the panel; `<base>/lab?orchestrate-run=<id>` (the run view's "Copy link") opens JupyterLab on
 * run `<id>`, through JupyterLab's URL router (IRouter).
 */
import type { IRouter, JupyterFrontEnd } from '@jupyterlab/application';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import type { IStateDB } from '@jupyterlab/statedb';
import type { ReadonlyPartialJSONValue } from '@lumino/coreutils';

import type { OrchestrateModel, View } from './model';

/** The query parameter of a run link. */
export const RUN_PARAM = 'orchestrate-run';
/** The state database key of the open view. */
export const STATE_KEY = 'jupyter-orchestrate:view';
/** The (hidden) command the router runs for a run link. */
export const OPEN_RUN_LINK = 'jupyter-orchestrate:open-run-link';
/** Matches a request (path + query + hash, as IRouter routes it) that carries a run link. */
export const RUN_LINK_PATTERN = new RegExp(`[?&]${RUN_PARAM}=`);

/**
 * The shareable link of a run: JupyterLab's app URL with `?orchestrate-run=<id>`, never a token (whoever opens
 * it logs in on their own).
 *
 * @param runId the run
 * @param baseUrl the server's absolute base URL (default: the page's)
 * @param appUrl JupyterLab's app path below it (default: the page's, e.g. `/lab`)
 */
export function runLink(
  runId: number,
  baseUrl: string = PageConfig.getBaseUrl(),
  appUrl: string = PageConfig.getOption('appUrl') || '/lab'
): string {
  const url = new URL(URLExt.join(baseUrl, appUrl));
  url.searchParams.set(RUN_PARAM, String(runId));
  return url.toString();
}

/** The run id of a query string (`?a=1&orchestrate-run=12`), or null when it has none or not a positive integer. */
export function runIdOfSearch(search: string | undefined | null): number | null {
  const value = new URLSearchParams(search ?? '').get(RUN_PARAM);
  if (value === null || !/^[1-9][0-9]{0,17}$/.test(value)) {
    return null;
  }
  return Number(value);
}

/** `href` without the run link's parameter (the rest of the query and the hash kept). */
export function withoutRunParam(href: string): string {
  const url = new URL(href);
  url.searchParams.delete(RUN_PARAM);
  return url.toString();
}

/**
 * The view a saved state value stands for, or null when it is not one. The jobs list, a job and a run are
 * checked field by field; another kind (a view this module does not know) is kept as saved, since the panel
 * shows the jobs list for a kind it does not know.
 */
export function parseView(value: unknown): View | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return null;
  }
  const view = value as Record<string, unknown>;
  switch (view.kind) {
    case 'jobs':
      return { kind: 'jobs' };
    case 'job':
      return typeof view.jobId === 'string' && view.jobId ? { kind: 'job', jobId: view.jobId } : null;
    case 'run':
      return Number.isSafeInteger(view.runId) && (view.runId as number) > 0
        ? { kind: 'run', runId: view.runId as number }
        : null;
    default:
      return typeof view.kind === 'string' ? (view as unknown as View) : null;
  }
}

/**
 * Restore the sidebar's view after a reload, save it whenever it changes, and open run links.
 *
 * The router routes the page's URL when the app has started, before the workspace is restored: a run link
 * wins over the saved view, and its parameter is then taken off the address bar (so a later reload restores
 * where the user went, not the link again). Saving starts only once the saved view was read, so the first
 * render of the jobs list does not overwrite it.
 *
 * @param options.app the application (its shell, commands and `restored` promise)
 * @param options.model the sidebar's model
 * @param options.sidebarId the panel's widget id (activated for a run link)
 * @param options.state the state database (null: nothing is restored or saved)
 * @param options.router the URL router (null: run links are not handled)
 */
export function setupRestore(options: {
  app: JupyterFrontEnd;
  model: OrchestrateModel;
  sidebarId: string;
  state: IStateDB | null;
  router: IRouter | null;
}): void {
  const { app, model, sidebarId, state, router } = options;
  let linked = false;
  if (router) {
    app.commands.addCommand(OPEN_RUN_LINK, {
      label: 'Open Run Link',
      execute: args => {
        const runId = runIdOfSearch(args.search as string | undefined);
        if (runId === null) {
          return;
        }
        linked = true;
        app.shell.activateById(sidebarId);
        model.show({ kind: 'run', runId });
        window.history.replaceState(window.history.state, '', withoutRunParam(window.location.href));
      }
    });
    router.register({ command: OPEN_RUN_LINK, pattern: RUN_LINK_PATTERN });
  }
  if (!state) {
    return;
  }
  let saved = '';
  const save = () => {
    const text = JSON.stringify(model.view);
    if (text !== saved) {
      saved = text;
      void state.save(STATE_KEY, model.view as unknown as ReadonlyPartialJSONValue).catch(() => undefined);
    }
  };
  void app.restored
    .then(() => state.fetch(STATE_KEY))
    .then(value => {
      const view = parseView(value);
      // a run link, or a click made while the workspace loaded, is where the user wants to be
      if (view && !linked && model.view.kind === 'jobs') {
        saved = JSON.stringify(view);
        model.show(view);
      }
    })
    .catch(() => undefined)
    .then(() => {
      save();
      model.changed.connect(save);
    });
}
