// Summarizes a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --cpu-prof DIR`): the
// functions with the most self time, and the total time under chosen functions.
//
//   node bench/profile.js DIR/CPU.*.cpuprofile [--top 30] [--under name[,name]]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '30' }, under: { type: 'string' } },
});
if (positionals.length === 0) {
  process.stderr.write('usage: node bench/profile.js FILE.cpuprofile [--top N] [--under fn,fn]\n');
  process.exit(2);
}

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  // Sample counts per node, weighted by the time each sample stands for.
  const selfUs = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const delta = timeDeltas[i + 1] ?? 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + delta);
  }
  const name = (node) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url
      ? `${relative(process.cwd(), url.replace(/^file:\/\//, ''))}:${lineNumber + 1}`
      : '';
    return `${functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
  };
  const byFunction = new Map();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = nodes.get(id);
    totalUs += us;
    if (node.callFrame.functionName === '(idle)') idleUs += us;
    const key = name(node);
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  console.log(
    `${file}: ${(totalUs / 1000).toFixed(0)} ms sampled, ${(busyUs / 1000).toFixed(0)} ms busy`,
  );
  console.log('self ms   % busy  function');
  const sorted = [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top));
  for (const [key, us] of sorted) {
    console.log(
      `${(us / 1000).toFixed(1).padStart(7)}  ${((us / busyUs) * 100).toFixed(1).padStart(6)}  ${key}`,
    );
  }
  if (values.under !== undefined) {
    // Inclusive time: a sample counts once for each named function on its stack.
    for (const wanted of values.under.split(',')) {
      let us = 0;
      for (const [id, sampleUs] of selfUs) {
        for (let at = id; at !== undefined; at = parent.get(at)) {
          if (nodes.get(at).callFrame.functionName === wanted) {
            us += sampleUs;
            break;
          }
        }
      }
      console.log(
        `under ${wanted}: ${(us / 1000).toFixed(1)} ms (${((us / busyUs) * 100).toFixed(1)} % of busy)`,
      );
    }
  }
}
