// Render React elements into jsdom for the component tests (plain JavaScript, so `tsc` ignores it: it is not
// part of the extension). React's `act` flushes effects and state updates before assertions.
import { act } from 'react';
import { createRoot } from 'react-dom/client';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

/** Render `element` into a fresh container attached to the document. */
export function render(element) {
  const container = document.createElement('div');
  document.body.appendChild(container);
  const root = createRoot(container);
  act(() => root.render(element));
  return {
    container,
    rerender: next => act(() => root.render(next)),
    unmount: () => {
      act(() => root.unmount());
      container.remove();
    }
  };
}

/** Run `fn` (e.g. a click) inside `act`. */
export function interact(fn) {
  act(fn);
}
