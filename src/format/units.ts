// Owns how byte counts read in every report: one formatter for the CLI tables, the diff reports and the
// diff driver, so the same size prints the same everywhere.

/** 1536 -> "1.5 KiB"; below 1 KiB the exact count ("512 B"). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}
