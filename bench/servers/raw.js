// The raw floor: the smallest correct SSE hub on `node:http` alone, with no library. It is what a
// hand-written server costs, and so the cost of Node itself that a library can only approach.
//
//   node bench/servers/raw.js [-H host] [-P port]
//
// Routes (the listener's): GET /poll/<token> opens a stream (any number per token);
// POST /<action>/<token> sends the body as `event: <action>` with an increasing `id:` to every
// stream of the token (404 when there is none); POST /close/<token> ends them. For the client
// scenario, GET /stream/<count> sends <count> small events as fast as the reader takes them, then
// ends. Prints `listening on <url>` to stderr once bound; SIGTERM/SIGINT exit at once.
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', short: 'H', default: '127.0.0.1' },
    port: { type: 'string', short: 'P', default: '0' },
  },
});

/** token -> Set of open responses */
const streams = new Map();
let nextId = 0;

function subscribe(req, res, token) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  res.flushHeaders();
  let set = streams.get(token);
  if (set === undefined) streams.set(token, (set = new Set()));
  set.add(res);
  res.once('close', () => {
    set.delete(res);
    if (set.size === 0 && streams.get(token) === set) streams.delete(token);
  });
}

function publish(req, res, action, token) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (text) => (body += text));
  req.once('end', () => {
    const set = streams.get(token);
    if (set === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 23 });
      res.end('Target is not connected');
      return;
    }
    const id = ++nextId;
    if (action === 'close') {
      for (const stream of set) stream.end();
    } else {
      // A line break in the data starts a new `data:` field; the event name comes from a fixed
      // route segment, so it holds none.
      const data = /[\r\n]/.test(body) ? body.split(/\r\n|\r|\n/).join('\ndata: ') : body;
      const block = `id: ${id}\nevent: ${action}\ndata: ${data}\n\n`;
      for (const stream of set) stream.write(block);
    }
    const reply = `{"token":${JSON.stringify(token)},"id":${id},"subscribers":${set.size}}`;
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(reply),
    });
    res.end(reply);
  });
}

/**
 * GET /stream/<count>: `id: <n>\ndata: {"n":<n>}\n\n` for n = 1..count, written in 64 KiB blocks.
 * The blocks are all made before the response starts: the client scenario measures how fast a
 * client reads, and a fresh server making them on the fly (its code not yet optimised) sent the
 * 200 000 events no faster than about 2 million a second, less at first, so a fast client waited
 * for it.
 */
function stream(res, count) {
  const blocks = [];
  let block = '';
  for (let n = 1; n <= count; n++) {
    block += `id: ${n}\ndata: {"n":${n}}\n\n`;
    if (block.length >= 65536) {
      blocks.push(Buffer.from(block, 'latin1'));
      block = '';
    }
  }
  if (block !== '') blocks.push(Buffer.from(block, 'latin1'));
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  let next = 0;
  const writeSome = () => {
    while (next < blocks.length) {
      if (!res.write(blocks[next++])) {
        res.once('drain', writeSome);
        return;
      }
    }
    res.end();
  };
  writeSome();
}

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  const slash = url.indexOf('/', 1);
  const action = slash === -1 ? '' : url.slice(1, slash);
  let token = slash === -1 ? '' : url.slice(slash + 1);
  const query = token.indexOf('?');
  if (query !== -1) token = token.slice(0, query);
  if (action === '' || token === '' || token.includes('/')) {
    req.resume();
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('Not found');
  } else if (req.method === 'GET' && action === 'poll') {
    subscribe(req, res, decodeURIComponent(token));
  } else if (req.method === 'GET' && action === 'stream') {
    stream(res, Number(token) || 0);
  } else if (req.method === 'POST') {
    publish(req, res, action, decodeURIComponent(token));
  } else {
    req.resume();
    res.writeHead(405, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('Method not allowed');
  }
});

server.listen(Number(values.port), values.host, () => {
  const { address, port } = server.address();
  process.stderr.write(`listening on http://${address}:${port}/\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
