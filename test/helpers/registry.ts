// Owns a throw-away npm registry on loopback for installing a packed git-tensor without the network:
// it serves the production dependencies that package-lock.json pins, each packed from its folder in
// node_modules (so it needs neither the network nor npm's cache), with packuments made from the
// lockfile entries. npm resolves the tarball's dependency ranges against it as it would against the
// public registry.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';

interface LockEntry {
  name?: string;
  version: string;
  dev?: boolean;
  link?: boolean;
  [field: string]: unknown;
}

/** Manifest fields npm reads from a packument version; the lockfile records the same ones. */
const MANIFEST_FIELDS = ['dependencies', 'optionalDependencies', 'peerDependencies', 'peerDependenciesMeta', 'bin', 'engines', 'os', 'cpu', 'license'];

export interface LocalRegistry {
  url: string;
  /** Names of the packages served. */
  packages: string[];
  close(): Promise<void>;
}

/** Starts the registry for `projectRoot`'s non-dev lockfile entries. */
export async function startLocalRegistry(projectRoot: string): Promise<LocalRegistry> {
  const lock = JSON.parse(readFileSync(join(projectRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const packuments = new Map<string, { name: string; 'dist-tags': { latest: string }; versions: Record<string, object> }>();
  const tarballs = new Map<string, Buffer>();
  const server: Server = createServer((req, res) => {
    const key = decodeURIComponent((req.url ?? '/').slice(1));
    const tarball = tarballs.get(key);
    const packument = packuments.get(key);
    if (tarball) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': tarball.length }).end(tarball);
    } else if (packument) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(packument));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  for (const [location, entry] of Object.entries(lock.packages)) {
    if (!location || entry.dev || entry.link) continue;
    const name = entry.name ?? location.split('node_modules/').pop()!;
    // The installed folder, without its own nested node_modules, as a registry tarball (package/...).
    const bytes = execFileSync('tar', ['-czf', '-', '--exclude=./node_modules', '--transform=s,^\\.,package,', '-C', join(projectRoot, location), '.'],
      { maxBuffer: 1 << 30 });
    const file = `${name}/-/${basename(name)}-${entry.version}.tgz`;
    tarballs.set(file, bytes);
    const manifest: Record<string, unknown> = { name, version: entry.version };
    for (const f of MANIFEST_FIELDS) if (entry[f] !== undefined) manifest[f] = entry[f];
    manifest.dist = { tarball: url + file, integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}` };
    const p = packuments.get(name) ?? { name, 'dist-tags': { latest: entry.version }, versions: {} };
    p.versions[entry.version] = manifest;
    packuments.set(name, p);
  }
  return {
    url,
    packages: [...packuments.keys()],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
