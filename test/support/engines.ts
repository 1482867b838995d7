/**
 * The engines every behavioural suite runs on: each one that loads here.
 * test/engines.test.ts makes sure native is among them exactly when a native
 * binary was built (GPUVM_NATIVE_PATH, or the install step's build).
 */
import { availableBackends, type BackendName } from '../../src/backend/loader.js';

export const backends: BackendName[] = availableBackends();
