// Browser APIs that jsdom lacks but JupyterLab/Lumino packages touch when they are imported.
// (Plain JavaScript so that `tsc` ignores it: it is not part of the extension.)
if (typeof globalThis.DragEvent === 'undefined') {
  globalThis.DragEvent = class DragEvent extends MouseEvent {};
}
if (typeof window.matchMedia !== 'function') {
  window.matchMedia = query => ({
    matches: false,
    media: query,
    onchange: null,
    addListener() {},
    removeListener() {},
    addEventListener() {},
    removeEventListener() {},
    dispatchEvent: () => false
  });
}
