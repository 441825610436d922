/**
 * What real browsers send to telesalud, header for header: the shapes Chromium 156 sent to a
 * capture server here (navigation, module scripts, the frame-cryptor module worker, fetch() with
 * JSON, the signaling WebSocket upgrade, images and the favicon it asks for by itself), with the
 * variations Chrome, Edge, Firefox and Safari add (Sec-CH-UA brands with `;v=`, Accept and
 * Accept-Language with q-values, `__Host-` cookies with base64url values, the CSRF header), and
 * the JSON bodies the web app posts. A false positive here stops a clinician from working.
 */

export type Pick = <T>(xs: readonly T[]) => T;

export interface BrowserShape {
  method: string;
  url: string;
  headers: [string, string][];
  body?: Buffer;
}

interface Browser {
  ua: string;
  /** Sec-CH-UA and friends (Chromium-based browsers only). */
  hints?: [string, string][];
  navigateAccept: string;
  imageAccept: string;
  encoding: string;
}

const BROWSERS: Browser[] = [
  {
    ua: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36',
    hints: [['sec-ch-ua', '"Not:A-Brand";v="8", "Chromium";v="156"'], ['sec-ch-ua-mobile', '?0'], ['sec-ch-ua-platform', '"Linux"']],
    navigateAccept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/jxl,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7',
    imageAccept: 'image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8',
    encoding: 'gzip, deflate, br, zstd',
  },
  {
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
    hints: [['sec-ch-ua', '"Not/A)Brand";v="8", "Chromium";v="126", "Google Chrome";v="126"'], ['sec-ch-ua-mobile', '?0'], ['sec-ch-ua-platform', '"Windows"']],
    navigateAccept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7',
    imageAccept: 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8',
    encoding: 'gzip, deflate, br, zstd',
  },
  {
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0.0.0',
    hints: [['sec-ch-ua', '"Microsoft Edge";v="125", "Chromium";v="125", "Not.A/Brand";v="24"'], ['sec-ch-ua-mobile', '?0'], ['sec-ch-ua-platform', '"Windows"']],
    navigateAccept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7',
    imageAccept: 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8',
    encoding: 'gzip, deflate, br, zstd',
  },
  {
    ua: 'Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36',
    hints: [['sec-ch-ua', '"Not/A)Brand";v="8", "Chromium";v="126", "Google Chrome";v="126"'], ['sec-ch-ua-mobile', '?1'], ['sec-ch-ua-platform', '"Android"']],
    navigateAccept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7',
    imageAccept: 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8',
    encoding: 'gzip, deflate, br, zstd',
  },
  {
    ua: 'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
    navigateAccept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/png,image/svg+xml,*/*;q=0.8',
    imageAccept: 'image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5',
    encoding: 'gzip, deflate, br, zstd',
  },
  {
    ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
    navigateAccept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
    imageAccept: 'image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5',
    encoding: 'gzip, deflate, br',
  },
  {
    ua: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
    navigateAccept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
    imageAccept: 'image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5',
    encoding: 'gzip, deflate, br',
  },
];

const LANGUAGES = ['es-ES', 'es-AR,es;q=0.9,en;q=0.8', 'es-419,es;q=0.9', 'en-US,en;q=0.9,es;q=0.8', 'es-MX,es-419;q=0.9,es;q=0.8,en-US;q=0.7,en;q=0.6', 'pt-BR,pt;q=0.9,es;q=0.8,en;q=0.7', 'en-GB,en-US;q=0.9,en;q=0.8'];
const ASSETS = ['index-DkR3x9aQ.js', 'index-C2b_Zq1T.css', 'CallScreen-B7vLw0-e.js', 'i18n-es-Bq4mZ2nC.js', 'frame-cryptor.worker-D0aX7_fQ.js', 'vendor-react-Cz8Yt1Lw.js'];
const GUEST_LABELS = ['Intérprete', "Hija de la paciente (María José)", "Dr. O'Neil – cardiología", 'Enfermera de guardia', 'Traductor LSA', "Mother's carer", 'Sr. Núñez (esposo)', 'Residente 2° año'];
const NAMES = ["Dra. O'Connor", 'José Luis Fernández', 'Zoë Muñoz-Peña', 'Íñigo', "D'Angelo, Ana", 'Mary-Kate (interpreter)'];

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** `n` characters of base64url, as randomBytes(…).toString('base64url') gives. */
function base64url(r: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(r() * 64)];
  return s;
}

function uuid(r: () => number): string {
  const hex = () => Math.floor(r() * 16).toString(16);
  const part = (n: number) => Array.from({ length: n }, hex).join('');
  return `${part(8)}-${part(4)}-4${part(3)}-a${part(3)}-${part(12)}`;
}

/**
 * One request a browser makes while using telesalud, on `host` (the public host, or an address a
 * hospital's staff reach the node by), for `origin`.
 */
export function browserRequest(r: () => number, pick: Pick, host: string, origin: string, appointmentIds: string[]): BrowserShape {
  const b = pick(BROWSERS);
  const hints = b.hints ?? [];
  const session = `__Host-telesalud_session=${base64url(r, 43)}`;
  const cookie = r() < 0.8 ? session : r() < 0.5 ? `${session}; lang=es` : undefined;
  const csrf = base64url(r, 43);
  const appointment = pick(appointmentIds);
  const page = pick([`/consult/${appointment}`, '/sign-in', '/consult/guest', '/privacy']);
  const referer = `${origin}${page}`;
  const common = (accept: string | undefined, site: string, mode: string, dest: string, extra: [string, string][] = []): [string, string][] => [
    ['Host', host],
    ['Connection', 'keep-alive'],
    ...hints.filter(([n]) => n === 'sec-ch-ua-platform'),
    ...extra,
    ['User-Agent', b.ua],
    ...hints.filter(([n]) => n !== 'sec-ch-ua-platform'),
    ['Accept-Language', pick(LANGUAGES)],
    ...(accept === undefined ? [] : ([['Accept', accept]] as [string, string][])),
    ['Sec-Fetch-Site', site],
    ['Sec-Fetch-Mode', mode],
    ['Sec-Fetch-Dest', dest],
    ['Referer', referer],
    ['Accept-Encoding', b.encoding],
    ...(cookie ? ([['Cookie', cookie]] as [string, string][]) : []),
  ];
  const json = (method: string, url: string, body: unknown): BrowserShape => {
    const bytes = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const extra: [string, string][] = [['Origin', origin], ['x-csrf-token', csrf]];
    if (bytes) extra.push(['content-type', 'application/json']);
    // fetch() says how long a POST is, 0 when it has no body.
    return { method, url, headers: [['Content-Length', String(bytes?.length ?? 0)], ...common('application/json', 'same-origin', 'cors', 'empty', extra)], body: bytes };
  };
  return pick<() => BrowserShape>([
    // A page load or reload (the app's routes all answer index.html).
    () => {
      const reload: [string, string][] = r() < 0.3 ? [['Cache-Control', 'max-age=0']] : [];
      const nav = common(b.navigateAccept, r() < 0.5 ? 'none' : 'same-origin', 'navigate', 'document', [...reload, ['Upgrade-Insecure-Requests', '1']]);
      nav.splice(nav.findIndex(([n]) => n === 'Sec-Fetch-Dest'), 0, ['Sec-Fetch-User', '?1']);
      return { method: 'GET', url: page, headers: nav };
    },
    () => ({ method: 'GET', url: `/assets/${pick(ASSETS.filter((a) => a.endsWith('.js')))}`, headers: common('*/*', 'same-origin', 'cors', 'script', [['Origin', origin]]) }),
    () => ({ method: 'GET', url: `/assets/${pick(ASSETS.filter((a) => a.endsWith('.css')))}`, headers: common('text/css,*/*;q=0.1', 'same-origin', 'no-cors', 'style') }),
    // The frame cryptor: a module worker (no client hints, Sec-Fetch-Mode same-origin).
    () => ({ method: 'GET', url: '/assets/frame-cryptor.worker-D0aX7_fQ.js', headers: common('*/*', 'same-origin', 'same-origin', 'worker').filter(([n]) => !n.startsWith('sec-ch-ua')) }),
    // Asked for by the browser itself: no route answers it.
    () => ({ method: 'GET', url: pick(['/favicon.ico', '/apple-touch-icon.png', '/apple-touch-icon-precomposed.png']), headers: common(b.imageAccept, 'same-origin', 'no-cors', 'image') }),
    () => json('GET', '/api/auth/session', undefined),
    () => json('GET', '/api/consult/status', undefined),
    () => json('POST', '/api/auth/sign-in', { email: `${pick(['maria.nunez', "o'brien.siobhan", 'jose-luis', 'dra.fernandez'])}@clinica.example.org`, password: `${pick(['Lluvia', "it's", '"Quoted"', 'Ñandú;'])}-${base64url(r, 10)}`, ...(r() < 0.5 ? { code: String(100000 + Math.floor(r() * 900000)) } : {}) }),
    () => json('POST', '/api/auth/sign-out', undefined),
    () => json('GET', '/api/me/consent', undefined),
    () => json('POST', '/api/me/consent', { noticeVersion: pick(['2026-03-01', '2026-11-15']) }),
    () => json('POST', `/api/consult/appointments/${appointment}/guest-links`, { label: pick(GUEST_LABELS) }),
    // The signaling socket: no Accept, Sec-WebSocket-* and the page's Origin.
    () => ({
      method: 'GET',
      url: '/consult/ws',
      headers: [
        ['Host', host], ['Connection', 'Upgrade'], ['Pragma', 'no-cache'], ['Cache-Control', 'no-cache'], ['User-Agent', b.ua], ['Accept-Language', pick(LANGUAGES)],
        ['Upgrade', 'websocket'], ['Origin', origin], ['Sec-WebSocket-Version', '13'], ['Accept-Encoding', b.encoding],
        ...(cookie ? ([['Cookie', cookie]] as [string, string][]) : []),
        ['Sec-WebSocket-Key', `${Buffer.from(base64url(r, 16)).toString('base64')}`],
        ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits'],
      ],
    }),
  ])();
}

/**
 * Signaling messages the web app sends on the consultation WebSocket (what
 * `inspectWebSocketMessage` reads): join with an identity key and a display name, SDP offers and
 * answers, ICE candidates, wrapped frame keys, admissions, stats.
 */
export function browserSignalingMessage(r: () => number, pick: Pick, appointmentIds: string[]): string {
  const id = () => base64url(r, 22);
  const sdp = [
    'v=0', `o=- ${Math.floor(r() * 1e18)} 2 IN IP4 127.0.0.1`, 's=-', 't=0 0', 'a=group:BUNDLE 0 1 2', 'a=extmap-allow-mixed', 'a=msid-semantic: WMS',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126', 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0', `a=ice-ufrag:${base64url(r, 4)}`, `a=ice-pwd:${base64url(r, 24)}`,
    'a=ice-options:trickle', `a=fingerprint:sha-256 ${Array.from({ length: 32 }, () => Math.floor(r() * 256).toString(16).padStart(2, '0').toUpperCase()).join(':')}`,
    'a=setup:actpass', 'a=mid:0', 'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level', 'a=sendrecv', `a=msid:- ${uuid(r)}`, 'a=rtcp-mux', 'a=rtpmap:111 opus/48000/2',
    'a=rtcp-fb:111 transport-cc', 'a=fmtp:111 minptime=10;useinbandfec=1', 'm=video 9 UDP/TLS/RTP/SAVPF 96 97', 'a=rtpmap:96 VP8/90000', 'a=rtcp-fb:96 goog-remb',
    'a=rtcp-fb:96 nack pli', 'a=rtpmap:97 rtx/90000', 'a=fmtp:97 apt=96', `a=ssrc-group:FID ${Math.floor(r() * 4e9)} ${Math.floor(r() * 4e9)}`,
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'a=sctp-port:5000', 'a=max-message-size:262144', '',
  ].join('\r\n');
  const candidate = () => `candidate:${Math.floor(r() * 4e9)} 1 ${pick(['udp', 'tcp'])} ${Math.floor(r() * 2e9)} ${pick(['192.168.1.23', '10.0.4.17', '127.0.0.1', '2001:db8::1f', `${uuid(r)}.local`])} ${1024 + Math.floor(r() * 60000)} typ ${pick(['host', 'srflx raddr 0.0.0.0 rport 0', 'relay raddr 203.0.113.5 rport 3478'])} generation 0 ufrag ${base64url(r, 4)} network-id 1`;
  return JSON.stringify(
    pick<() => unknown>([
      () => ({ type: 'join', appointmentId: pick(appointmentIds), e2ee: true, identityKey: base64url(r, 87), ...(r() < 0.5 ? { displayName: pick(NAMES) } : {}) }),
      () => ({ type: 'join', guestToken: base64url(r, 43), e2ee: true, identityKey: base64url(r, 87), displayName: pick(NAMES), resume: { participantId: id(), secret: id() } }),
      () => ({ type: 'signal', to: id(), description: { type: pick(['offer', 'answer']), sdp } }),
      () => ({ type: 'signal', to: id(), candidate: { candidate: candidate(), sdpMid: pick(['0', '1', '2']), sdpMLineIndex: Math.floor(r() * 3) } }),
      () => ({ type: 'signal', to: id(), candidate: null }),
      () => ({ type: 'e2ee-key', to: id(), keyId: Math.floor(r() * 65535), wrapped: base64url(r, 60), iv: base64url(r, 16) }),
      () => ({ type: pick(['admit', 'decline', 'mute', 'remove']), participantId: id() }),
      () => ({ type: pick(['end', 'leave']) }),
      () => ({ type: 'stats', sentBytes: Math.floor(r() * 8e8), receivedBytes: Math.floor(r() * 8e8), intervalMs: 5000 }),
    ])(),
  );
}
