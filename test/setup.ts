// Runs before every test file. The e2e tests drive git with spawnSync, which blocks the worker's event
// loop; vitest's worker sends progress to the main process over RPC with a 60 s timeout, and a reply that
// sits unread behind a long run of synchronous tests counts as a timeout. Yielding one full turn of the
// event loop after each test lets those replies in.
import { afterEach } from 'vitest';

afterEach(() => new Promise<void>((resolve) => setImmediate(resolve)));
