import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  // getDisplayMedia without a picker: the fake UI selects the screen.
  '--auto-select-desktop-capture-source=Entire screen',
];

/** Debian's Chromium; playwright gives each launch a fresh temporary profile (user-data-dir) and removes it on close. */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
}

export interface Participant {
  context: BrowserContext;
  page: Page;
}

/**
 * Test hooks added from outside the product: every RTCPeerConnection the page makes is kept
 * on window.__pcs (to read getStats), `relayOnly` forces iceTransportPolicy 'relay' (TURN
 * test), `corruptReceivedKeys` swaps every frame key the page receives from a peer for random
 * bytes on its way to the frame cryptor worker.
 */
export async function newParticipant(browser: Browser, hooks: { relayOnly?: boolean; corruptReceivedKeys?: boolean } = {}): Promise<Participant> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES', viewport: { width: 414, height: 860 } });
  context.setDefaultTimeout(15_000);
  // Runs in the page; typed loosely because this file compiles without the DOM library.
  await context.addInitScript((h: { relayOnly?: boolean; corruptReceivedKeys?: boolean }) => {
    const w = globalThis as any;
    w.__pcs = [];
    const Original = w.RTCPeerConnection;
    w.RTCPeerConnection = class extends Original {
      constructor(config?: Record<string, unknown>) {
        super(h.relayOnly ? { ...config, iceTransportPolicy: 'relay' } : config);
        w.__pcs.push(this);
      }
    };
    if (h.corruptReceivedKeys) {
      const post = w.Worker.prototype.postMessage;
      w.Worker.prototype.postMessage = function (this: unknown, message: any, transfer?: unknown) {
        if (message && message.type === 'set-key' && message.participantId !== 'local') message = { ...message, raw: w.crypto.getRandomValues(new Uint8Array(32)).buffer };
        return post.call(this, message, transfer);
      };
    }
  }, hooks);
  const page = await context.newPage();
  return { context, page };
}

export interface PcStats {
  state: string;
  framesDecoded: number;
  frameWidth: number;
  bytesReceived: number;
  localCandidateType: string | undefined;
  remoteCandidateType: string | undefined;
}

/** Per open RTCPeerConnection of the page: video frames decoded and the selected candidate pair. */
export function pcStats(page: Page): Promise<PcStats[]> {
  return page.evaluate(async () => {
    const pcs = ((globalThis as any).__pcs as any[]).filter((pc) => pc.connectionState !== 'closed');
    return Promise.all(
      pcs.map(async (pc): Promise<PcStats> => {
        const report = await pc.getStats();
        const all = [...report.values()] as any[];
        const video = all.filter((s) => s.type === 'inbound-rtp' && s.kind === 'video');
        const transport = all.find((s) => s.type === 'transport');
        const pair = all.find((s) => s.type === 'candidate-pair' && s.id === transport?.selectedCandidatePairId);
        return {
          state: pc.connectionState,
          framesDecoded: video.reduce((n, s) => n + (s.framesDecoded ?? 0), 0),
          frameWidth: video.reduce((n, s) => Math.max(n, s.frameWidth ?? 0), 0),
          bytesReceived: video.reduce((n, s) => n + (s.bytesReceived ?? 0), 0),
          localCandidateType: pair ? report.get(pair.localCandidateId)?.candidateType : undefined,
          remoteCandidateType: pair ? report.get(pair.remoteCandidateId)?.candidateType : undefined,
        };
      }),
    );
  });
}

/** The labels of the video tracks the page sends (its camera's, or a screen capture's). */
export function sentVideoLabels(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    ((globalThis as any).__pcs as any[])
      .filter((pc) => pc.connectionState !== 'closed')
      .flatMap((pc) => (pc.getSenders() as any[]).filter((s) => s.track?.kind === 'video').map((s) => String(s.track.label))),
  );
}

export const totalFramesDecoded = async (page: Page): Promise<number> => (await pcStats(page)).reduce((n, s) => n + s.framesDecoded, 0);

/** Polls until `check` holds or the time is up; the last value is in the error. */
export async function waitUntil<T>(what: string, read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 15_000, everyMs = 250): Promise<T> {
  const until = Date.now() + timeoutMs;
  let value = await read();
  while (!check(value)) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, everyMs));
    value = await read();
  }
  return value;
}

/** Every open connection of the page decodes new video frames (at least `frames` more each). */
export async function waitForVideoFromAll(page: Page, peers: number, timeoutMs = 20_000, frames = 5): Promise<PcStats[]> {
  const before = await pcStats(page);
  return waitUntil(
    `video decoded from ${peers} peer(s)`,
    () => pcStats(page),
    (now) => now.length === peers && now.every((s, i) => s.framesDecoded >= (before[i]?.framesDecoded ?? 0) + frames && s.framesDecoded > 0),
    timeoutMs,
  );
}
