/**
 * The demo page served at `/` with `--demo`: type a token, watch its stream, send an event.
 *
 * One self-contained document (inline CSS and JS, no external resources), so it works offline and
 * under any Content-Security-Policy a proxy adds for `self`. Everything that comes from the listener
 * is escaped: HTML text with {@link escapeHtml}, the script's settings as JSON inside a
 * `<script type="application/json">` block, and event data is only ever shown with `textContent`.
 */

/**
 * Escapes text for HTML content and double-quoted attribute values.
 * @param text Any text.
 * @returns The text with `&`, `<`, `>`, `"` and `'` replaced by character references.
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/**
 * JSON that can sit inside a `<script>` element: `<`, `>`, `&` and the line separators that old
 * parsers choke on are written as `\u` escapes, so no `</script>` can end the block early.
 */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

const STYLE = `
:root { color-scheme: light dark; --accent: #2563eb; --muted: #6b7280; --line: #d1d5db;
  --panel: #f9fafb; --ok: #15803d; --bad: #b91c1c; }
@media (prefers-color-scheme: dark) { :root { --panel: #111827; --line: #374151; --muted: #9ca3af; } }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; }
main { max-width: 54rem; margin: 0 auto; padding: 1.5rem 1rem 2rem; }
h1 { font-size: 1.35rem; margin: 0 0 .25rem; }
h2 { font-size: 1rem; margin: 0 0 .6rem; }
p.lead { margin: 0 0 1.25rem; color: var(--muted); }
code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: end; }
label { display: flex; flex-direction: column; gap: .2rem; font-size: .85rem; color: var(--muted); }
input, select, textarea, button { font: inherit; padding: .45rem .6rem; border: 1px solid var(--line);
  border-radius: .4rem; background: Canvas; color: CanvasText; }
textarea { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; resize: vertical; }
button { background: var(--accent); border-color: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: transparent; color: CanvasText; border-color: var(--line); }
button:disabled { opacity: .5; cursor: default; }
section { border: 1px solid var(--line); border-radius: .6rem; padding: 1rem; margin-top: 1rem;
  background: var(--panel); }
.grow { flex: 1 1 14rem; }
.status { display: inline-flex; align-items: center; gap: .4rem; font-size: .9rem; }
.status::before { content: ""; width: .6rem; height: .6rem; border-radius: 50%; background: var(--muted); }
.status[data-state="open"]::before { background: var(--ok); }
.status[data-state="error"]::before { background: var(--bad); }
.hint { font-size: .85rem; color: var(--muted); margin: .6rem 0 0; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; margin-top: .6rem; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
th { font-size: .8rem; color: var(--muted); font-weight: 600; }
td.data { white-space: pre-wrap; overflow-wrap: anywhere; width: 100%; }
td.type, td.id { white-space: nowrap; }
#empty td { color: var(--muted); }
#reply { min-height: 1.2em; }
`;

// The browser side. It reads its settings from the JSON block and never builds HTML from strings.
const SCRIPT = `
(() => {
  const config = JSON.parse(document.getElementById('config').textContent);
  const $ = (id) => document.getElementById(id);
  const tokenInput = $('token'), status = $('status'), rows = $('events'), empty = $('empty');
  const connectButton = $('connect'), disconnectButton = $('disconnect'), sendButton = $('send');
  let source = null;
  let shown = 0;
  if (!tokenInput.value) tokenInput.value = 'demo-' + Math.random().toString(36).slice(2, 8);

  const route = (action, token) =>
    config.prefix + '/' + encodeURIComponent(action) + '/' + encodeURIComponent(token);
  const accessToken = () => (config.auth ? $('access').value.trim() : '');
  // Why the listener refused, in words (EventSource itself never says).
  const explain = (status, text) =>
    status === 401 ? 'Refused (401): an access token (a JWT) is needed, or it is invalid or expired. ' + text
    : status === 403 ? 'Refused (403): the access token does not grant this. ' + text
    : status + ' ' + text;
  const setStatus = (state, text) => { status.dataset.state = state; status.textContent = text; };
  const updateHint = () => {
    const url = new URL(route('ping', tokenInput.value.trim() || '<token>'), location.href);
    $('hint').textContent = 'From a terminal: curl -d hello ' + url.href;
  };

  function show(event) {
    empty.hidden = true;
    const row = document.createElement('tr');
    for (const [name, text] of [['type', event.type], ['id', event.lastEventId], ['data', event.data]]) {
      const cell = document.createElement('td');
      cell.className = name;
      cell.textContent = text;
      row.append(cell);
    }
    rows.prepend(row);
    shown++;
    $('count').textContent = String(shown);
  }

  function disconnect() {
    if (source) source.close();
    source = null;
    connectButton.disabled = false;
    disconnectButton.disabled = true;
    sendButton.disabled = true;
    setStatus('closed', 'Not connected');
  }

  function connect(event) {
    event.preventDefault();
    const token = tokenInput.value.trim();
    if (!token) { tokenInput.focus(); return; }
    disconnect();
    const jwt = accessToken();
    const streamUrl = route(config.listen, token) + (jwt ? '?access_token=' + encodeURIComponent(jwt) : '');
    source = new EventSource(streamUrl);
    const current = source;
    setStatus('connecting', 'Connecting to ' + token + '…');
    connectButton.disabled = true;
    disconnectButton.disabled = false;
    current.onopen = () => {
      if (current !== source) return;
      setStatus('open', 'Connected: listening to ' + token);
      sendButton.disabled = false;
    };
    current.onerror = async () => {
      if (current !== source) return;
      if (current.readyState !== EventSource.CLOSED) {
        setStatus('error', 'Stream ended, reconnecting…');
        return;
      }
      setStatus('error', 'Connection refused (is the token already connected?)');
      if (!config.auth) return;
      // Ask once more, to show why: the answer's status and its one line of text.
      try {
        const response = await fetch(streamUrl);
        if (!response.ok && current === source) {
          setStatus('error', explain(response.status, (await response.text()).trim()));
        } else response.body?.cancel();
      } catch {}
    };
    for (const type of new Set(['message', ...config.actions])) current.addEventListener(type, show);
  }

  async function send(event) {
    event.preventDefault();
    const token = tokenInput.value.trim();
    const action = $('action').value;
    const reply = $('reply');
    reply.textContent = 'Sending…';
    try {
      const jwt = accessToken();
      const response = await fetch(route(action, token), {
        method: 'POST',
        headers: {
          'Content-Type': config.contentType,
          ...(jwt ? { Authorization: 'Bearer ' + jwt } : {}),
        },
        body: $('data').value,
      });
      const text = (await response.text()).trim();
      reply.textContent = response.ok ? response.status + ' sent' : explain(response.status, text);
    } catch (error) {
      reply.textContent = 'Failed: ' + error.message;
    }
  }

  $('subscribe').addEventListener('submit', connect);
  $('publish').addEventListener('submit', send);
  disconnectButton.addEventListener('click', disconnect);
  tokenInput.addEventListener('input', updateHint);
  updateHint();
})();
`;

/**
 * The HTML of the demo page.
 * @param prefix The listener's normalised prefix (`''` or `/p`).
 * @param listenAction The Event class's LISTEN action.
 * @param actions The actions a POST may use.
 * @param contentType The Content-Type the page sends its POSTs with. Defaults to `text/plain`.
 * @param hasAuth Whether streams and POSTs need an access token: the page then asks for one.
 * @returns A complete HTML document.
 */
export function renderDemoPage(
  prefix: string,
  listenAction: string,
  actions: readonly string[],
  contentType = 'text/plain',
  hasAuth = false,
): string {
  const options = actions
    .map((action) => `<option value="${escapeHtml(action)}">${escapeHtml(action)}</option>`)
    .join('');
  const config = scriptJson({ prefix, listen: listenAction, actions, contentType, auth: hasAuth });
  const accessField = hasAuth
    ? '<label class="grow">Access token (JWT)<input id="access" name="access" autocomplete="off" spellcheck="false"></label>\n'
    : '';
  const streamPath = escapeHtml(`${prefix}/${listenAction}/<token>`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>eventsource-listener demo</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>eventsource-listener</h1>
<p class="lead">Subscribe to a token (<code>GET ${streamPath}</code>) and watch its events arrive live; send one with the form below.</p>

<section>
<h2>1. Listen</h2>
<form id="subscribe">
<label class="grow">Token<input id="token" name="token" autocomplete="off" spellcheck="false" required></label>
${accessField}<button id="connect" type="submit">Connect</button>
<button id="disconnect" type="button" class="secondary" disabled>Disconnect</button>
</form>
<p class="hint"><span id="status" class="status" data-state="closed">Not connected</span></p>
<p class="hint" id="hint"></p>
</section>

<section>
<h2>2. Send an event</h2>
<form id="publish">
<label>Action<select id="action" name="action">${options}</select></label>
<label class="grow">Data<textarea id="data" name="data" rows="2">Hello from the demo page</textarea></label>
<button id="send" type="submit" disabled>Send</button>
</form>
<p class="hint" id="reply" aria-live="polite"></p>
</section>

<section>
<h2>Events (<span id="count">0</span>)</h2>
<table>
<thead><tr><th>type</th><th>id</th><th>data</th></tr></thead>
<tbody id="events"><tr id="empty"><td colspan="3">No events yet: connect, then send one.</td></tr></tbody>
</table>
</section>
</main>
<script type="application/json" id="config">${config}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
