// npm run bench:map: what one map.svg response costs a worker on a large
// section (100 x 100 plots, a third with burials), gzipped as browsers ask for
// it: the whole document compressed per request (before) against the cached
// compressed prefix plus the request's own tail (now). Both in one run.
//   BENCH_MAP_REQUESTS=200
import { gzipSync } from 'node:zlib';
import { assembleMap, assembleMapGzip, renderMapTemplate, type MapPlot } from '../app/src/map';

const REQUESTS = Number(process.env.BENCH_MAP_REQUESTS || 200);
const plots: MapPlot[] = [];
for (let row = 1; row <= 100; row++) {
  for (let number = 1; number <= 100; number++) {
    const id = (row - 1) * 100 + number;
    const buried = id % 3 === 0;
    plots.push({ id, row, number, status: buried ? 'occupied' : id % 10 === 0 ? 'reserved' : 'available', deceasedName: buried ? `Resident ${id}` : null, birthDate: buried ? '1900-01-01' : null, deathDate: buried ? '1980-06-30' : null });
  }
}
const started = performance.now();
const template = renderMapTemplate({ id: 1, name: 'Benchmark', plots });
const renderMs = performance.now() - started;

const time = (fn: (i: number) => Buffer) => {
  let bytes = 0;
  const t = performance.now();
  for (let i = 0; i < REQUESTS; i++) bytes = fn(i).length;
  return { msPerRequest: (performance.now() - t) / REQUESTS, bytes };
};
const before = time((i) => gzipSync(assembleMap(template, 1 + ((i * 37) % plots.length))));
const now = time((i) => assembleMapGzip(template, 1 + ((i * 37) % plots.length)));
const round = (n: number) => Math.round(n * 1000) / 1000;
console.log(
  JSON.stringify(
    {
      plots: plots.length,
      svgBytes: assembleMap(template).length,
      renderOncePerChangeMs: round(renderMs),
      wholeDocumentGzip: { msPerRequest: round(before.msPerRequest), gzipBytes: before.bytes },
      cachedPrefixPlusTail: { msPerRequest: round(now.msPerRequest), gzipBytes: now.bytes },
      speedup: Math.round(before.msPerRequest / now.msPerRequest),
    },
    null,
    2,
  ),
);
