// Loaded into the listener by bench/soak.js (`node --import`): every SOAK_SAMPLE_MS, one JSON line
// on fd 3 with the process's RSS and its event-loop delay since the last line (p99 and max, ms).
import { createWriteStream } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const out = createWriteStream('', { fd: 3 });
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
setInterval(
  () => {
    out.write(
      `${JSON.stringify({
        rss: process.memoryUsage.rss(),
        lagP99Ms: delay.percentile(99) / 1e6,
        lagMaxMs: delay.max / 1e6,
      })}\n`,
    );
    delay.reset();
  },
  Number(process.env.SOAK_SAMPLE_MS ?? 10000),
).unref();
