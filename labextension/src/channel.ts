/**
 * The sidebar's live events: the run events the server emits on jupyter_server's event bus, read from
 * JupyterLab's own `serviceManager.events` (one websocket, `/api/events/subscribe`, authenticated like the
 * kernels' websockets: the session cookie, no token in any URL). Each emission with our schema id is a
 * `StreamEvent` (generated from jupyter_orchestrate/schemas/events.py) plus jupyter_server's `schema_id` key.
 */
import type { Event } from '@jupyterlab/services';

import type { StreamEvent } from './documents';

/** The server's `EVENT_SCHEMA_ID` (jupyter_orchestrate/schemas/events.py; a server test keeps them equal). */
export const EVENT_SCHEMA_ID = 'https://events.jupyter-orchestrate.org/run_event/v1';

const KINDS: ReadonlySet<string> = new Set<StreamEvent['type']>(['run_status', 'task_status', 'progress']);

/**
 * The run event of an emission of the event bus, or null for other schemas' events (kernels, contents...) and
 * for an emission that is not a run event.
 */
export function runEventOf(emission: Event.Emission): StreamEvent | null {
  if (emission.schema_id !== EVENT_SCHEMA_ID) {
    return null;
  }
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { schema_id, ...message } = emission;
  if (!KINDS.has(message.type as string) || typeof message.run_id !== 'number') {
    return null;
  }
  return message as unknown as StreamEvent;
}

/**
 * Call `onEvent` for every run event the server emits from now on. The websocket and its reconnects are
 * JupyterLab's; events sent while it is down are not replayed (the model's slow refresh reconciles).
 *
 * @param events JupyterLab's event manager (`app.serviceManager.events`)
 * @returns a function that stops the calls
 */
export function subscribeRunEvents(events: Event.IManager, onEvent: (event: StreamEvent) => void): () => void {
  const listener = (_: Event.IManager, emission: Event.Emission) => {
    const event = runEventOf(emission);
    if (event) {
      onEvent(event);
    }
  };
  events.stream.connect(listener);
  return () => void events.stream.disconnect(listener);
}
