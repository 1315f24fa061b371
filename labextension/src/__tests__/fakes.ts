/** Test doubles shared by the component tests. */
import { vi } from 'vitest';

import type { IActions } from '../actions';

/** Sidebar actions that do nothing: vitest mocks, so a test can assert what a click asked for. */
export function fakeActions() {
  return {
    runJob: vi.fn(async () => undefined),
    repairRun: vi.fn(async () => undefined),
    cancelRun: vi.fn(async () => undefined),
    openNotebook: vi.fn(async () => undefined),
    openExecuted: vi.fn(async () => undefined),
    debugKernel: vi.fn(async () => undefined),
    resumeTask: vi.fn(async () => undefined)
  } satisfies IActions;
}
