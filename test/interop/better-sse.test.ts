/**
 * Our eventsource-request and eventsource-client against an SSE server built on better-sse
 * (sessions and channels, its own wire encoder and random UUID ids), with the listener's routes:
 * GET /poll/<token> subscribes, POST /<action>/<token> broadcasts, POST /close/<token> ends streams.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import { test } from 'node:test';
import { createChannel, createSession, type Channel, type Session } from 'better-sse';
import { waitUntil } from '../helpers/interop-peers.js';
import { listen } from '../helpers/net.js';
import { runBin, spawnBin, waitExit, waitForOutput } from '../helpers/process.js';

/** A better-sse hub: one channel per token; records each session's Last-Event-ID and each broadcast id. */
async function startBetterSseHub() {
  const channels = new Map<string, Channel>();
  const responses = new Map<Session, http.ServerResponse>();
  const lastEventIds: string[] = [];
  const broadcastIds: string[] = [];
  const channelFor = (token: string): Channel => {
    let channel = channels.get(token);
    if (channel === undefined) {
      channel = createChannel();
      channel.on('broadcast', (_data, _name, id) => broadcastIds.push(id));
      channels.set(token, channel);
    }
    return channel;
  };
  const reply = (res: http.ServerResponse, status: number, body: string): void => {
    res.writeHead(status, { 'content-type': status < 300 ? 'application/json' : 'text/plain' });
    res.end(body);
  };
  const server = await listen((req, res) => {
    const [, action = '', rawToken = ''] = (req.url ?? '').split('/');
    const token = decodeURIComponent(rawToken);
    if (req.method === 'GET' && action === 'poll') {
      void createSession(req, res, {
        retry: 250,
        keepAlive: null,
        // better-sse's default serializer, JSON.stringify: a serializer that returns text with line
        // breaks makes it write them raw inside one data: field (MatthewWid/better-sse#112).
      }).then((session) => {
        lastEventIds.push(session.lastId);
        responses.set(session, res);
        session.on('disconnected', () => responses.delete(session));
        channelFor(token).register(session);
      });
      return;
    }
    if (req.method !== 'POST') return reply(res, 405, 'Method not allowed');
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const channel = channels.get(token);
      const sessions = channel?.activeSessions ?? [];
      if (channel === undefined || sessions.length === 0) {
        return reply(res, 404, 'Target is not connected');
      }
      if (action === 'close') {
        for (const session of sessions) responses.get(session)?.end();
        return reply(
          res,
          200,
          JSON.stringify({ token, action, id: null, subscribers: sessions.length }),
        );
      }
      const body = Buffer.concat(chunks).toString('utf8');
      const isJson = req.headers['content-type']?.startsWith('application/json') === true;
      channel.broadcast(isJson ? (JSON.parse(body) as unknown) : body, action);
      const id = broadcastIds.at(-1) ?? null;
      reply(res, 200, JSON.stringify({ token, action, id, subscribers: sessions.length }));
    });
  });
  return { ...server, lastEventIds, broadcastIds };
}

test(
  'eventsource-request sends and eventsource-client receives through a better-sse server, reconnecting with Last-Event-ID',
  { timeout: 60000 },
  async (t) => {
    const hub = await startBetterSseHub();
    t.after(() => hub.close());
    const port = String(hub.port);
    const client = spawnBin('eventsource-client', [
      '-H',
      '127.0.0.1',
      '-P',
      port,
      '-r',
      '100',
      '--json',
      '--count',
      '4',
      'better token',
    ]);
    t.after(() => {
      if (client.exitCode === null && client.signalCode === null) client.kill('SIGKILL');
    });
    await waitForOutput(client, /^connected to /m);

    // One sender process, three events and a close, in order over one connection.
    const batch = [
      { token: 'better token', action: 'ping', data: 'hello' },
      { token: 'better token', action: 'update', data: 'line one\nline two' },
      { token: 'better token', action: 'ping', data: { n: [1, 2], s: 'x' } },
      { token: 'better token', action: 'close' },
    ];
    const sent = await runBin('eventsource-request', ['-H', '127.0.0.1', '-P', port, '--batch'], {
      input: batch.map((line) => JSON.stringify(line)).join('\n'),
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout.trim().split('\n').length, 4, sent.stdout);

    // The client comes back by itself (better-sse said retry: 250) with the last UUID it got.
    await waitUntil(() => hub.lastEventIds.length === 2, 'the client to reconnect', 10000);
    const [jsonId] = hub.broadcastIds.slice(-1);
    assert.deepEqual(hub.lastEventIds, ['', jsonId]);
    const last = await runBin('eventsource-request', [
      '-H',
      '127.0.0.1',
      '-P',
      port,
      'better token',
      'ping',
      'after reconnect',
    ]);
    assert.equal(last.code, 0, last.stderr);

    const result = await waitExit(client, 15000);
    assert.equal(result.code, 0, result.stderr);
    const [id1, id2, id3, id4] = hub.broadcastIds;
    for (const id of hub.broadcastIds) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
    assert.equal(
      result.stdout,
      [
        { id: id1, event: 'ping', data: '"hello"' },
        { id: id2, event: 'update', data: '"line one\\nline two"' },
        { id: id3, event: 'ping', data: '{"n":[1,2],"s":"x"}' },
        { id: id4, event: 'ping', data: '"after reconnect"' },
      ]
        .map((line) => `${JSON.stringify(line)}\n`)
        .join(''),
    );
    assert.match(result.stderr, /stream ended; reconnecting in 250 ms/);
  },
);
