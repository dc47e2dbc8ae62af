// better-sse (the most used Node SSE library) wrapped in the listener's routes, used as its README
// shows: one session per GET, one channel per token, `channel.broadcast()` per POST.
//
//   node bench/servers/better-sse.js [-H host] [-P port]
//
// Keepalive comments are off (as the listener's `-k 0` in the benchmark); data is sent as the text
// it is (no JSON encoding); every event gets an increasing id, as the listener's `-i` does.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createChannel, createSession } from 'better-sse';

const { values } = parseArgs({
  options: {
    host: { type: 'string', short: 'H', default: '127.0.0.1' },
    port: { type: 'string', short: 'P', default: '0' },
  },
});

const sessionOptions = { keepAlive: null, serializer: (data) => String(data) };
/** token -> Channel */
const channels = new Map();
/** session -> its response, to end it on POST /close/<token> */
const responses = new WeakMap();
let nextId = 0;

async function subscribe(req, res, token) {
  let channel = channels.get(token);
  if (channel === undefined) {
    channel = createChannel();
    channels.set(token, channel);
    channel.on('session-deregistered', () => {
      if (channel.sessionCount === 0 && channels.get(token) === channel) channels.delete(token);
    });
  }
  const session = await createSession(req, res, sessionOptions);
  responses.set(session, res);
  channel.register(session);
}

function publish(req, res, action, token) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (text) => (body += text));
  req.once('end', () => {
    const channel = channels.get(token);
    if (channel === undefined || channel.sessionCount === 0) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 23 });
      res.end('Target is not connected');
      return;
    }
    const id = String(++nextId);
    const count = channel.sessionCount;
    if (action === 'close') {
      for (const session of channel.activeSessions) responses.get(session)?.end();
    } else {
      channel.broadcast(body, action, { eventId: id });
    }
    const reply = `{"token":${JSON.stringify(token)},"id":${id},"subscribers":${count}}`;
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(reply),
    });
    res.end(reply);
  });
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
    subscribe(req, res, decodeURIComponent(token)).catch((error) => {
      process.stderr.write(`better-sse: session failed: ${error.message}\n`);
      res.destroy();
    });
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
