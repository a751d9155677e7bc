// The encrypted copy of the last good bundle, for `crate run --fallback`.
export type { FallbackBundle, FallbackStoreOptions } from './store.js';
export { defaultFallbackKeyFile, FallbackStore } from './store.js';
