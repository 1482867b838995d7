/**
 * The engines every behavioural suite runs on: each one that loads here.
 * test/engines.test.ts makes sure that is both of them unless the machine is
 * the no-compiler configuration (GPUVM_EXPECT_WASM_ONLY=1).
 */
import { availableBackends, type BackendName } from '../../src/backend/loader.js';

export const backends: BackendName[] = availableBackends();
