// nginx + nchan, the C reference, on the listener's routes: GET /poll/<token> is an nchan
// EventSource subscriber of channel <token>, POST /<action>/<token> an nchan publisher to it (with
// `event: ping` for the ping action, as the listener sends the action as the event type).
//
//   node bench/servers/nchan.js [-H host] [-P port]    runs it in the foreground (Ctrl-C stops it)
//
// bench/run.js imports `createNchanConfig()` and starts nginx itself, so that it knows the worker's
// pid (the process to measure).
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** Where Debian's libnginx-mod-nchan puts the module. */
export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';

/** Finds the nginx binary, or undefined. */
export function findNginx() {
  for (const path of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) {
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** Whether nginx and the nchan module are both installed. */
export function isNchanAvailable() {
  return findNginx() !== undefined && existsSync(NCHAN_MODULE);
}

/**
 * Writes an nginx.conf for one nchan server into a new temp directory.
 * @param {{ host: string, port: number, maxConnections?: number }} options
 * @returns {{ dir: string, command: string, args: string[] }} nginx and its arguments (foreground).
 */
export function createNchanConfig({ host, port, maxConnections = 16384 }) {
  const nginx = findNginx();
  if (nginx === undefined) throw new Error('nginx is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'bench-nchan-'));
  // The worker may run as another user (nobody) when nginx starts as root: it must reach its temp
  // paths.
  chmodSync(dir, 0o755);
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    mkdirSync(join(dir, sub), { mode: 0o777 });
    chmodSync(join(dir, sub), 0o777);
  }
  const conf = `load_module ${NCHAN_MODULE};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile ${maxConnections + 1024};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events {
  worker_connections ${maxConnections};
}
http {
  access_log off;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  server {
    listen ${host}:${port};
    location ~ ^/poll/(?<token>[^/]+)$ {
      nchan_subscriber eventsource;
      nchan_channel_id $token;
    }
    location ~ ^/ping/(?<token>[^/]+)$ {
      nchan_publisher;
      nchan_channel_id $token;
      nchan_eventsource_event ping;
    }
    location ~ ^/[^/]+/(?<token>[^/]+)$ {
      nchan_publisher;
      nchan_channel_id $token;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  return {
    dir,
    command: nginx,
    args: ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')],
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', short: 'H', default: '127.0.0.1' },
      port: { type: 'string', short: 'P', default: '8888' },
    },
  });
  if (!isNchanAvailable()) {
    process.stderr.write(`nginx or ${NCHAN_MODULE} is not installed\n`);
    process.exit(1);
  }
  const { dir, command, args } = createNchanConfig({
    host: values.host,
    port: Number(values.port),
  });
  const child = spawn(command, args, { stdio: 'inherit' });
  process.stderr.write(`listening on http://${values.host}:${values.port}/ (nginx in ${dir})\n`);
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill('SIGTERM'));
  child.on('exit', (code) => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(code ?? 0);
  });
}
