/**
 * One participant's consultation: the signaling socket, the mesh of peer links, the keys,
 * the local media and the quality loop, with one snapshot of state the UI renders. The UI
 * never touches WebRTC; it calls the methods here and re-renders on `change`.
 */
import { MAX_PARTICIPANTS, type JoinTarget, type ParticipantInfo, type ServerMessage, type SignalingErrorCode } from '../../../src/consult/signaling-protocol.js';
import { FallbackController, LinkStatsReader, applyVideoStep, type FallbackStep, type LinkSample, type QualityLevel } from './connection-quality.js';
import { fromBase64Url, toBase64Url } from './e2ee/base64url.js';
import { e2eeMethod } from './e2ee/e2ee-support.js';
import { createIdentity } from './e2ee/identity-key.js';
import { KeyManager } from './e2ee/key-manager.js';
import { openScreen } from './local-media.js';
import { PeerLink, type LinkState } from './peer-link.js';
import { SignalingClient, type SignalingState } from './signaling-client.js';
import { TypedEmitter } from './typed-emitter.js';

export type Encryption = 'encrypted' | 'waiting-for-key' | 'cannot-decrypt' | 'not-encrypted';

export interface PeerView {
  info: ParticipantInfo;
  stream: MediaStream | undefined;
  link: LinkState;
  encryption: Encryption;
  safetyCode: string | undefined;
  sample: LinkSample | undefined;
}

export interface ChatLine {
  id: number;
  own: boolean;
  name: string;
  text: string;
  at: number;
}

export type Phase = 'connecting' | 'waiting' | 'in-call' | 'ended' | 'refused';
export type EndReason = 'declined' | 'removed' | 'ended' | 'room-full' | 'replaced' | 'left' | 'connection-lost';

export interface CallState {
  phase: Phase;
  self: ParticipantInfo | undefined;
  lobby: ParticipantInfo[];
  peers: PeerView[];
  signaling: SignalingState;
  endReason: EndReason | undefined;
  refusal: { code: SignalingErrorCode; message: string } | undefined;
  /** Whether this page encrypts its frames end to end. */
  e2ee: boolean;
  muted: boolean;
  cameraOff: boolean;
  sharing: boolean;
  audioOnly: boolean;
  fallback: FallbackStep;
  quality: QualityLevel;
  chat: ChatLine[];
  muteRequested: boolean;
}

export interface SessionOptions {
  target: JoinTarget;
  /** The camera/microphone stream chosen in the device check (may lack either track). */
  media: MediaStream;
  displayName?: string;
  /** Only the benchmark's own build may pass false; the product always encrypts when the browser can. */
  e2ee?: boolean;
}

const QUALITY_EVERY_MS = 2000;
const TRAFFIC_REPORT_EVERY_MS = 10_000;
const MAX_CHAT_LINES = 200;
export const MAX_CHAT_CHARS = 2000;

export class CallSession extends TypedEmitter<{ change: [CallState] }> {
  private stateNow: CallState;
  private signaling: SignalingClient | undefined;
  private keys: KeyManager | undefined;
  private readonly links = new Map<string, PeerLink>();
  private readonly known = new Map<string, ParticipantInfo>();
  private readonly views = new Map<string, PeerView>();
  private iceServers: RTCIceServer[] = [];
  private welcomed = false;
  private screenTrack: MediaStreamTrack | undefined;
  private readonly stats = new Map<string, LinkStatsReader>();
  private readonly fallback = new FallbackController();
  private timers: ReturnType<typeof setInterval>[] = [];
  private lastTrafficReport = performance.now();
  private chatSeq = 0;
  private inbox: Promise<void> = Promise.resolve();

  constructor(private readonly options: SessionOptions) {
    super();
    this.stateNow = {
      phase: 'connecting', self: undefined, lobby: [], peers: [], signaling: 'connecting', endReason: undefined, refusal: undefined,
      e2ee: false, muted: false, cameraOff: false, sharing: false, audioOnly: false, fallback: 0, quality: 'unknown', chat: [], muteRequested: false,
    };
  }

  get state(): CallState {
    return this.stateNow;
  }

  private update(patch: Partial<CallState>): void {
    this.stateNow = { ...this.stateNow, ...patch, peers: [...this.views.values()] };
    this.emit('change', this.stateNow);
  }

  private get cameraTrack(): MediaStreamTrack | null {
    return this.options.media.getVideoTracks()[0] ?? null;
  }

  private get micTrack(): MediaStreamTrack | null {
    return this.options.media.getAudioTracks()[0] ?? null;
  }

  async start(): Promise<void> {
    const identity = await createIdentity();
    const method = e2eeMethod();
    const e2ee = (this.options.e2ee ?? true) && method !== 'none';
    if (e2ee) {
      this.keys = new KeyManager(identity, method, () => this.stateNow.self?.id ?? '', (key) => this.signaling?.send({ type: 'e2ee-key', ...key }), (id, ok) => this.onDecryptState(id, ok));
    }
    this.signaling = new SignalingClient({ target: this.options.target, e2ee, identityKey: identity.publicKey, ...(this.options.displayName ? { displayName: this.options.displayName } : {}) });
    // One message at a time, in order: an answer must not overtake its offer's setup.
    this.signaling.on('message', (m) => {
      this.inbox = this.inbox.then(() => this.onMessage(m)).catch(() => undefined);
    });
    this.signaling.on('state', (s) => this.update({ signaling: s }));
    // Through the same queue as messages, so a `closed` or `error` just received is handled first.
    this.signaling.on('gone', () => {
      this.inbox = this.inbox.then(() => {
        if (this.stateNow.phase === 'ended' || this.stateNow.phase === 'refused') return;
        if (!this.welcomed) this.update({ phase: 'refused', refusal: this.stateNow.refusal ?? { code: 'unauthenticated', message: '' } });
        else this.finish('connection-lost');
      });
    });
    this.update({ e2ee });
    this.timers.push(setInterval(() => void this.sampleQuality(), QUALITY_EVERY_MS));
    this.signaling.connect();
  }

  private async onMessage(message: ServerMessage): Promise<void> {
    switch (message.type) {
      case 'welcome': {
        const resumed = this.welcomed;
        this.welcomed = true;
        this.iceServers = message.iceServers.map((s) => ({ urls: s.urls, ...(s.username ? { username: s.username } : {}), ...(s.credential ? { credential: s.credential } : {}) }));
        this.update({ self: message.participant, phase: message.state === 'waiting' ? 'waiting' : 'in-call', refusal: undefined });
        if (resumed) {
          // Signals and keys sent while we were away were lost: restart ICE, resend our key.
          for (const link of this.links.values()) link.signalingResumed();
          for (const id of this.links.keys()) void this.keys?.sendOwnKeyTo(id);
        }
        break;
      }
      case 'lobby':
        this.update({ lobby: message.waiting });
        break;
      case 'admitted': {
        const present = new Set(message.peers.map((p) => p.id));
        for (const id of [...this.views.keys()]) if (!present.has(id)) this.dropPeer(id);
        this.update({ phase: 'in-call' });
        // We are the later arrival for every peer we do not know yet: we offer.
        await Promise.all(message.peers.filter((p) => !this.links.has(p.id)).map((p) => this.meet(p, true)));
        break;
      }
      case 'peer-joined':
        this.dropPeer(message.peer.id);
        this.know(message.peer);
        await this.keys?.peerJoined(message.peer.id);
        this.update({});
        break;
      case 'peer-left':
        this.dropPeer(message.participantId);
        await this.keys?.peerLeft(message.participantId);
        this.update({});
        break;
      case 'signal': {
        let link = this.links.get(message.from);
        if (!link && message.description?.type === 'offer' && this.known.has(message.from)) link = await this.meet(this.known.get(message.from)!, false);
        if (!link) return;
        const { type: _t, from: _f, ...body } = message;
        await link.handleSignal(body).catch(() => undefined);
        break;
      }
      case 'e2ee-key': {
        if (!this.keys) return;
        const ok = await this.keys.receiveKey(message.from, message.keyId, message.wrapped, message.iv);
        const view = this.views.get(message.from);
        if (view && ok && view.encryption === 'waiting-for-key') view.encryption = 'encrypted';
        this.update({});
        break;
      }
      case 'mute-requested':
        if (this.micTrack) this.micTrack.enabled = false;
        this.update({ muted: true, muteRequested: true });
        break;
      case 'closed':
        this.finish(message.reason);
        break;
      case 'error':
        if (!this.welcomed) this.update({ refusal: { code: message.code, message: message.message } });
        break;
      case 'reconnect':
        break;
    }
  }

  private know(peer: ParticipantInfo): void {
    this.known.set(peer.id, peer);
    this.keys?.addPeer(peer.id, peer.identityKey);
    const encrypted = this.keys !== undefined && peer.e2ee;
    this.views.set(peer.id, { info: peer, stream: undefined, link: 'connecting', encryption: encrypted ? 'waiting-for-key' : 'not-encrypted', safetyCode: undefined, sample: undefined });
    const code = encrypted ? this.keys?.safetyCodeWith(peer.id) : undefined;
    void code?.then((safetyCode) => {
      const view = this.views.get(peer.id);
      if (view && view.info === peer) {
        view.safetyCode = safetyCode;
        this.update({});
      }
    });
  }

  /** Opens the link to a peer; as the later arrival we first give it our key, then offer. */
  private async meet(peer: ParticipantInfo, offerer: boolean): Promise<PeerLink> {
    if (offerer) {
      this.know(peer);
      await this.keys?.sendOwnKeyTo(peer.id);
    }
    const existing = this.links.get(peer.id);
    if (existing) return existing;
    const link = new PeerLink({
      peer,
      offerer,
      iceServers: this.iceServers,
      keys: peer.e2ee ? this.keys : undefined,
      audio: this.micTrack,
      video: this.screenTrack ?? this.cameraTrack,
      sendSignal: (body) => this.signaling?.send({ type: 'signal', to: peer.id, ...body }),
    });
    this.links.set(peer.id, link);
    this.stats.set(peer.id, new LinkStatsReader());
    link.on('stream', (stream) => this.patchView(peer.id, { stream }));
    link.on('state', (state) => {
      const view = this.views.get(peer.id);
      // Back after a loss: the peer may have rotated its key meanwhile; resend ours too.
      if (state === 'connected' && view && view.link === 'reconnecting') void this.keys?.sendOwnKeyTo(peer.id);
      this.patchView(peer.id, { link: state });
    });
    link.on('chat', (raw) => void this.receiveChat(peer, link, raw));
    if (this.stateNow.fallback > 0 || this.stateNow.audioOnly) void applyVideoStep(link.videoSender, this.stateNow.audioOnly ? 2 : this.stateNow.fallback);
    return link;
  }

  private patchView(id: string, patch: Partial<PeerView>): void {
    const view = this.views.get(id);
    if (!view) return;
    Object.assign(view, patch);
    this.update({});
  }

  private onDecryptState(participantId: string, ok: boolean): void {
    const view = this.views.get(participantId);
    if (!view || view.encryption === 'not-encrypted') return;
    this.patchView(participantId, { encryption: ok ? 'encrypted' : this.keys?.hasKeyFrom(participantId) ? 'cannot-decrypt' : 'waiting-for-key' });
  }

  private dropPeer(id: string): void {
    this.links.get(id)?.close();
    this.links.delete(id);
    this.stats.delete(id);
    this.views.delete(id);
    this.known.delete(id);
  }

  // ── what the user does ────────────────────────────────────────────────────────────

  toggleMute(): void {
    const muted = !this.stateNow.muted;
    if (this.micTrack) this.micTrack.enabled = !muted;
    this.update({ muted, muteRequested: false });
  }

  toggleCamera(): void {
    const cameraOff = !this.stateNow.cameraOff;
    if (this.cameraTrack) this.cameraTrack.enabled = !cameraOff;
    this.update({ cameraOff });
  }

  async toggleScreenShare(): Promise<void> {
    if (this.screenTrack) return this.stopScreenShare();
    const track = await openScreen();
    if (!track) return;
    this.screenTrack = track;
    track.addEventListener('ended', () => void this.stopScreenShare());
    await Promise.all([...this.links.values()].map((l) => l.videoSender.replaceTrack(track)));
    this.update({ sharing: true });
  }

  private async stopScreenShare(): Promise<void> {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = undefined;
    track.stop();
    await Promise.all([...this.links.values()].map((l) => l.videoSender.replaceTrack(this.cameraTrack)));
    this.update({ sharing: false });
  }

  /** The screen or camera track sent now (for the self view). */
  get outgoingVideo(): MediaStreamTrack | null {
    return this.screenTrack ?? this.cameraTrack;
  }

  setAudioOnly(audioOnly: boolean): void {
    this.update({ audioOnly });
    this.applyVideoStep();
  }

  private applyVideoStep(): void {
    const step: FallbackStep = this.stateNow.audioOnly ? 2 : this.stateNow.fallback;
    for (const link of this.links.values()) void applyVideoStep(link.videoSender, step);
  }

  admit(participantId: string): void {
    this.signaling?.send({ type: 'admit', participantId });
  }

  decline(participantId: string): void {
    this.signaling?.send({ type: 'decline', participantId });
  }

  /** The host's hang-up ends the consultation for everyone; anyone else's leaves it. */
  hangUp(): void {
    if (this.stateNow.self?.host) this.signaling?.send({ type: 'end' });
    this.finish(this.stateNow.self?.host ? 'ended' : 'left');
  }

  async sendChat(text: string): Promise<void> {
    const trimmed = text.trim().slice(0, MAX_CHAT_CHARS);
    if (!trimmed) return;
    const self = this.stateNow.self;
    let sent = false;
    for (const link of this.links.values()) {
      if (!link.chatReady) continue;
      sent = link.sendChat(await this.sealChat(link, trimmed)) || sent;
    }
    if (sent || this.links.size === 0) this.pushChat({ own: true, name: self?.displayName ?? '', text: trimmed });
  }

  /**
   * The data channel is DTLS, but a signaling server could swap DTLS fingerprints; so on an
   * encrypted link chat is also sealed with a key derived from our frame key.
   */
  private async sealChat(link: PeerLink, text: string): Promise<string> {
    if (!link.encrypted || !this.keys) return JSON.stringify({ v: 1, text });
    const { keyId, key } = await this.keys.ownChatKey();
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(`chat|${this.stateNow.self?.id}|${link.peer.id}`) }, key, new TextEncoder().encode(text));
    return JSON.stringify({ v: 1, keyId, iv: toBase64Url(iv), ct: toBase64Url(ct) });
  }

  private async receiveChat(peer: ParticipantInfo, link: PeerLink, raw: string): Promise<void> {
    let body: { v?: unknown; text?: unknown; keyId?: unknown; iv?: unknown; ct?: unknown };
    try {
      body = JSON.parse(raw);
    } catch {
      return;
    }
    let text: string | undefined;
    if (link.encrypted && this.keys) {
      // On an encrypted link a message in clear is refused: it could only come from a meddler.
      if (typeof body.keyId !== 'number' || typeof body.iv !== 'string' || typeof body.ct !== 'string') return;
      const key = await this.keys.peerChatKey(peer.id, body.keyId);
      if (!key) return;
      try {
        const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64Url(body.iv), additionalData: new TextEncoder().encode(`chat|${peer.id}|${this.stateNow.self?.id}`) }, key, fromBase64Url(body.ct));
        text = new TextDecoder().decode(plain);
      } catch {
        return;
      }
    } else if (typeof body.text === 'string') {
      text = body.text;
    }
    if (text) this.pushChat({ own: false, name: peer.displayName, text: text.slice(0, MAX_CHAT_CHARS) });
  }

  private pushChat(line: Omit<ChatLine, 'id' | 'at'>): void {
    this.update({ chat: [...this.stateNow.chat, { ...line, id: ++this.chatSeq, at: Date.now() }].slice(-MAX_CHAT_LINES) });
  }

  // ── quality and traffic ───────────────────────────────────────────────────────────

  private async sampleQuality(): Promise<void> {
    if (this.stateNow.phase !== 'in-call') return;
    const order: QualityLevel[] = ['unknown', 'good', 'fair', 'poor'];
    let worst: QualityLevel = 'unknown';
    for (const [id, link] of this.links) {
      if (link.state !== 'connected') continue;
      const sample = await this.stats.get(id)!.sample(link.pc).catch(() => undefined);
      if (!sample) continue;
      const view = this.views.get(id);
      if (view) view.sample = sample;
      if (order.indexOf(sample.level) > order.indexOf(worst)) worst = sample.level;
    }
    const step = this.fallback.observe(worst);
    this.update({ quality: worst, ...(step !== undefined ? { fallback: step } : {}) });
    if (step !== undefined) this.applyVideoStep();
    this.reportTraffic();
  }

  private reportTraffic(): void {
    const now = performance.now();
    if (now - this.lastTrafficReport < TRAFFIC_REPORT_EVERY_MS) return;
    let sentBytes = 0;
    let receivedBytes = 0;
    let relayedSentBytes = 0;
    let relayedReceivedBytes = 0;
    let links = 0;
    let relayedLinks = 0;
    for (const [id, reader] of this.stats) {
      sentBytes += reader.unreportedSent;
      receivedBytes += reader.unreportedReceived;
      relayedSentBytes += reader.unreportedRelayedSent;
      relayedReceivedBytes += reader.unreportedRelayedReceived;
      // The path now, of the links connected now: which ones the administrators' "relay usage" counts.
      if (this.links.get(id)?.state === 'connected' && reader.path) {
        links++;
        if (reader.path === 'relay') relayedLinks++;
      }
    }
    const intervalMs = Math.min(60_000, Math.round(now - this.lastTrafficReport));
    // Parts never above their wholes, wholes never above the protocol's bounds: the server refuses either.
    const sent = Math.min(sentBytes, 8e9);
    const received = Math.min(receivedBytes, 8e9);
    const report = {
      type: 'stats' as const,
      sentBytes: sent,
      receivedBytes: received,
      intervalMs,
      links: Math.min(links, MAX_PARTICIPANTS - 1),
      relayedLinks: Math.min(relayedLinks, links, MAX_PARTICIPANTS - 1),
      relayedSentBytes: Math.min(relayedSentBytes, sent),
      relayedReceivedBytes: Math.min(relayedReceivedBytes, received),
    };
    if (this.signaling?.send(report)) {
      for (const reader of this.stats.values()) reader.unreportedSent = reader.unreportedReceived = reader.unreportedRelayedSent = reader.unreportedRelayedReceived = 0;
      this.lastTrafficReport = now;
    }
  }

  // ── the end ───────────────────────────────────────────────────────────────────────

  private finish(reason: EndReason): void {
    if (this.stateNow.phase === 'ended') return;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    if (reason === 'left' || reason === 'ended') this.signaling?.close();
    for (const id of [...this.links.keys()]) this.dropPeer(id);
    this.keys?.close();
    this.screenTrack?.stop();
    for (const track of this.options.media.getTracks()) track.stop();
    this.update({ phase: 'ended', endReason: reason, lobby: [] });
    this.signaling?.removeAllListeners();
  }

  close(): void {
    if (this.stateNow.phase !== 'ended' && this.stateNow.phase !== 'refused') this.finish('left');
    this.signaling?.close();
  }
}
