/**
 * The package as a user gets it: `npm pack`, then an empty project in a temporary folder installs
 * the tarball, and its CLIs, `--redis`, `import`, `require()` and TypeScript types (strict, without
 * `skipLibCheck`, with `@types/node`, which the declarations need) must all work there.
 *
 * The install needs no network: the project gets a lockfile made from this repository's, so
 * `npm ci --offline` takes every dependency from npm's cache, where the repository's own `npm ci`
 * put them (TypeScript and `@types/node` included, as dev dependencies).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { waitExit, waitForOutput, type spawnBin } from '../helpers/process.js';
import { describeRun, npmEnv, repoRoot, runCommand } from '../helpers/packaging.js';
import { findRedisServer, startRedis } from '../helpers/redis.js';

const timeout = 60000;
const BINS = ['eventsource-listener', 'eventsource-client', 'eventsource-request'] as const;

interface LockEntry {
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [field: string]: unknown;
}
interface PackageJson {
  name: string;
  version: string;
  license: string;
  bin: Record<string, string>;
  engines: Record<string, string>;
  dependencies: Record<string, string>;
}
interface PackResult {
  filename: string;
  integrity: string;
  files: { path: string }[];
}

const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
const repoLock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};

/** Where npm would find `name` from the package at `from` in the repository's tree. */
function locate(from: string, name: string): string {
  for (let base = from; ;) {
    const at = `${base === '' ? '' : `${base}/`}node_modules/${name}`;
    if (repoLock.packages[at] !== undefined) return at;
    assert.notEqual(base, '', `package-lock.json has no ${name} (needed by ${from || 'the root'})`);
    const parent = base.lastIndexOf('/node_modules/');
    base = parent < 0 ? '' : base.slice(0, parent);
  }
}

/**
 * The lockfile of a project depending on the tarball, TypeScript and @types/node: the tarball's
 * dependencies, and theirs, as this repository's lockfile resolves them.
 */
function consumerLock(pack: PackResult, dependencies: Record<string, string>): object {
  const packages: Record<string, LockEntry> = {};
  const add = (from: string, name: string): void => {
    const at = locate(from, name);
    if (packages[at] !== undefined) return;
    // Dev and optional flags describe the repository's tree, not the new project's.
    const { dev: _dev, devOptional: _devOptional, ...entry } = repoLock.packages[at] as LockEntry;
    packages[at] = entry;
    const needs = { ...entry.dependencies, ...entry.optionalDependencies };
    for (const dependency of Object.keys(needs)) add(at, dependency);
  };
  for (const name of [...Object.keys(packageJson.dependencies), 'typescript', '@types/node']) {
    add('', name);
  }
  return {
    name: 'consumer',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'consumer', version: '1.0.0', dependencies },
      'node_modules/eventsource-toolkit': {
        version: packageJson.version,
        resolved: `file:../${pack.filename}`,
        integrity: pack.integrity,
        license: packageJson.license,
        dependencies: packageJson.dependencies,
        bin: packageJson.bin,
        engines: packageJson.engines,
      },
      ...packages,
    },
  };
}

// A library round trip through the ESM entry point: listener, client, publish, event.
const ESM_CHECK = `import { createListener, EventSourceClient } from 'eventsource-toolkit';
const listener = createListener();
const url = await listener.listen(0, '127.0.0.1');
const client = new EventSourceClient(new URL('poll/lib', url), { reconnect: false });
const received = new Promise((resolve) => client.addEventListener('ping', (e) => resolve(e.data)));
await new Promise((resolve) => client.addEventListener('open', resolve));
await listener.publish('lib', 'ping', 'from esm');
console.log(await received);
client.close();
await listener.close();
`;

const CJS_CHECK = `const toolkit = require('eventsource-toolkit');
console.log(['createListener', 'EventSourceClient', 'sendRequest', 'createRedisBroker']
  .map((name) => name + ':' + typeof toolkit[name]).join(' '));
`;

// Uses the public API with its types: every declaration file it reaches is checked.
const TS_CHECK = `import {
  createListener,
  createRedisBroker,
  EventSourceClient,
  sendRequest,
  StringIdEvent,
  PublishError,
  type ClientEvent,
  type ListenerOptions,
  type RedisBrokerOptions,
  type SendRequestResult,
} from 'eventsource-toolkit';

const options: ListenerOptions = { eventClass: StringIdEvent, keepalive: 15000 };
const redis: RedisBrokerOptions = { mode: 'multi', history: 100, waitReplicas: 0 };

export async function main(): Promise<string[]> {
  const broker = await createRedisBroker('redis://127.0.0.1:6379/0', redis);
  const listener = createListener({ ...options, broker });
  const url: string = await listener.listen(0, '127.0.0.1');
  const seen: string[] = [];
  const client = new EventSourceClient(url + 'poll/t', {
    onEvent: (event: ClientEvent) => void seen.push(event.data),
  });
  const result: SendRequestResult = await sendRequest({ url, token: 't', action: 'ping', data: 'x' });
  try {
    await listener.publish('nobody', 'ping', 'y');
  } catch (error) {
    if (error instanceof PublishError) seen.push(String(error.status));
  }
  client.close();
  await listener.close();
  return [...seen, String(result.status)];
}
`;

const TSCONFIG = {
  compilerOptions: {
    strict: true,
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    types: ['node'],
    noEmit: true,
  },
  files: ['check.ts'],
};

/** Relative links of a Markdown text: `[text](target)`, without `#fragment`, web links skipped. */
function relativeLinks(markdown: string): string[] {
  const links: string[] = [];
  for (const [, target] of markdown.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    if (target === undefined || /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) {
      continue;
    }
    links.push(target.replace(/#.*$/, ''));
  }
  return links;
}

describe('the npm pack tarball installed into an empty project', { timeout: 300000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'eventsource-tarball-'));
  const project = join(dir, 'project');
  const bin = (name: (typeof BINS)[number]) => join(project, 'node_modules', '.bin', name);
  const env = npmEnv();
  let pack: PackResult;
  let redisServer: string | undefined;

  /** Starts an installed CLI (its node_modules/.bin link, as npx runs it). */
  function spawnInstalled(name: (typeof BINS)[number], args: string[]) {
    const child = spawn(bin(name), args, { cwd: project, env }) as ReturnType<typeof spawnBin>;
    child.output = { stdout: '', stderr: '' };
    child.stdout.setEncoding('utf8').on('data', (s: string) => (child.output.stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (child.output.stderr += s));
    return child;
  }

  /** A listener from the installed package, a client of it, and an event from the sender. */
  async function roundTrip(
    t: { after: (fn: () => unknown) => void },
    listenerArgs: string[],
  ): Promise<void> {
    const listener = spawnInstalled('eventsource-listener', [
      ...['-H', '127.0.0.1', '-P', '0'],
      ...listenerArgs,
    ]);
    t.after(() => listener.kill('SIGKILL'));
    const [, url] = await waitForOutput(listener, /listening on (http:\/\/\S+)/);
    const port = String(new URL(url ?? '').port);
    const client = spawnInstalled('eventsource-client', ['-P', port, '--count', '1', 'tok']);
    t.after(() => client.kill('SIGKILL'));
    await waitForOutput(client, /connected to /);
    const sent = await runCommand(bin('eventsource-request'), ['-P', port, 'tok', 'ping', 'hi'], {
      cwd: project,
      env,
    });
    assert.equal(sent.code, 0, describeRun('eventsource-request', sent));
    assert.equal(sent.stderr, 'delivered to 1 subscriber\n');
    const received = await waitExit(client, 10000);
    assert.deepEqual([received.code, received.stdout], [0, 'ping: hi\n'], received.stderr);
    listener.kill('SIGTERM');
    const stopped = await waitExit(listener, 10000);
    assert.equal(stopped.code, 0, stopped.stderr);
  }

  before(
    async () => {
      redisServer = findRedisServer();
      const packed = await runCommand(
        'npm',
        // The tests run on a fresh build (npm run pretest), so `prepack` (another build, which
        // would rewrite dist/ under the other test files) is not needed.
        ['pack', '--ignore-scripts', '--json', '--pack-destination', dir],
        { cwd: repoRoot, env, timeoutMs: 120000 },
      );
      assert.equal(packed.code, 0, describeRun('npm pack', packed));
      pack = (JSON.parse(packed.stdout) as PackResult[])[0] as PackResult;

      const dependencies = {
        'eventsource-toolkit': `file:../${pack.filename}`,
        typescript: locateVersion('typescript'),
        '@types/node': locateVersion('@types/node'),
      };
      mkdirSync(project);
      const manifest = { name: 'consumer', version: '1.0.0', private: true, type: 'module' };
      writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({ ...manifest, dependencies }, null, 2),
      );
      writeFileSync(
        join(project, 'package-lock.json'),
        JSON.stringify(consumerLock(pack, dependencies), null, 2),
      );
      const installed = await runCommand('npm', ['ci', '--offline', '--no-audit', '--no-fund'], {
        cwd: project,
        env,
        timeoutMs: 120000,
      });
      assert.equal(
        installed.code,
        0,
        describeRun('npm ci --offline (run npm ci in the repository to fill the cache)', installed),
      );
    },
    { timeout: 240000 },
  );

  after(() => rmSync(dir, { recursive: true, force: true }));

  test('ships what the README and docs link to, and no tests or build output', () => {
    const shipped = new Set(pack.files.map((file) => file.path));
    for (const required of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']) {
      assert.ok(shipped.has(required), `${required} is in the tarball`);
    }
    for (const path of shipped) {
      assert.match(
        path,
        /^(bin|dist|src|docs)\/|^(package\.json|README\.md|LICENSE|CHANGELOG\.md|BENCHMARKS\.md)$/,
      );
    }
    // The README and the pages it leads to; BENCHMARKS.md names the bench/ scripts for those
    // who run them from a clone.
    const pages = [...shipped].filter((path) => /^(README\.md|docs\/.*\.md)$/.test(path));
    assert.ok(pages.length > 1, 'the README and docs/ pages are shipped');
    for (const page of pages) {
      const text = readFileSync(join(repoRoot, page), 'utf8');
      for (const link of relativeLinks(text)) {
        const target = normalize(join(dirname(page), link)).replace(/\/$/, '');
        // A link to nothing at all is the docs' concern; a file that exists must ship.
        if (!existsSync(join(repoRoot, target))) continue;
        assert.ok(
          shipped.has(target) || [...shipped].some((path) => path.startsWith(`${target}/`)),
          `${page} links to ${link}, which the tarball lacks`,
        );
      }
    }
  });

  test('the three CLIs run through npx', { timeout }, async () => {
    for (const name of BINS) {
      const result = await runCommand('npx', ['--offline', name, '--version'], {
        cwd: project,
        env,
      });
      assert.deepEqual(
        [result.code, result.stdout],
        [0, `${packageJson.version}\n`],
        describeRun(name, result),
      );
    }
  });

  test('an event goes from the sender through the listener to the client', { timeout }, (t) =>
    roundTrip(t, []),
  );

  test('--redis works from the installed package', { timeout }, async (t) => {
    assert.ok(redisServer, 'redis-server is installed (apt-get install redis-server)');
    const redis = await startRedis();
    t.after(() => redis.close());
    await roundTrip(t, ['--redis', redis.url]);
  });

  test('import: a library round trip through the ESM entry point', { timeout }, async () => {
    writeFileSync(join(project, 'esm-check.js'), ESM_CHECK);
    const result = await runCommand(process.execPath, ['esm-check.js'], { cwd: project, env });
    assert.deepEqual([result.code, result.stdout], [0, 'from esm\n'], describeRun('ESM', result));
  });

  test("require('eventsource-toolkit') works from CommonJS", { timeout }, async () => {
    writeFileSync(join(project, 'cjs-check.cjs'), CJS_CHECK);
    const result = await runCommand(process.execPath, ['cjs-check.cjs'], { cwd: project, env });
    assert.deepEqual(
      [result.code, result.stdout],
      [
        0,
        'createListener:function EventSourceClient:function sendRequest:function createRedisBroker:function\n',
      ],
      describeRun('require()', result),
    );
  });

  test(
    'the types compile with strict and without skipLibCheck (with @types/node)',
    { timeout },
    async () => {
      writeFileSync(join(project, 'check.ts'), TS_CHECK);
      writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
      const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc');
      const result = await runCommand(process.execPath, [tsc, '-p', '.'], { cwd: project, env });
      assert.equal(result.code, 0, describeRun('tsc --strict', result));
    },
  );
});

/** The version of a dev dependency the repository's lockfile pins. */
function locateVersion(name: string): string {
  return (repoLock.packages[locate('', name)] as LockEntry).version;
}
