// Owns the engine's version as probe results record it. A module of its own so that reading cached
// results (git tensor log --probes) does not load the engine and its tokenizer library.

/**
 * Names the engine's numerics in probe cache keys: bump it when a change moves any logit, so results
 * computed by an older engine are not reused.
 */
export const ENGINE_VERSION = 'builtin/1';
