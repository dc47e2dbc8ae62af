/**
 * The demo page served at `/` with `--demo`: type a token, watch its stream, send an event.
 */

/**
 * The HTML of the demo page.
 * @param prefix The listener's normalised prefix (`''` or `/p`).
 * @param listenAction The Event class's LISTEN action.
 * @param actions The actions a POST may use.
 * @returns A complete HTML document.
 */
export function renderDemoPage(
  prefix: string,
  listenAction: string,
  actions: readonly string[],
): string {
  return `<!doctype html><meta charset="utf-8"><title>eventsource-listener</title>
<p>Demo page (${prefix}/${listenAction}/&lt;token&gt;; actions: ${actions.join(', ')})</p>`;
}
