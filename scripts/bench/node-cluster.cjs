// Baseline for the benchmark: Node's own cluster module running N workers of
// the same release bundle, without PM2. Prints "ready <pids>" once all are up.
const cluster = require('node:cluster');

const [script] = process.argv.slice(2);
const workers = Number(process.env.WORKERS);
if (!script || !Number.isInteger(workers) || workers < 1) {
  console.error('usage: WORKERS=N node node-cluster.cjs <server.js>');
  process.exit(2);
}

cluster.setupPrimary({ exec: script });
const ready = new Set();
for (let i = 0; i < workers; i++) cluster.fork();
cluster.on('message', (worker, msg) => {
  if (msg !== 'ready') return;
  ready.add(worker.process.pid);
  if (ready.size === workers) console.log(`ready ${[...ready].join(' ')}`);
});
cluster.on('exit', (worker, code) => {
  if (!stopping) {
    console.error(`worker ${worker.process.pid} exited with ${code}`);
    process.exit(1);
  }
});
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
  for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
  cluster.on('exit', () => Object.keys(cluster.workers).length === 0 && process.exit(0));
});
