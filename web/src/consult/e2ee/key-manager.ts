/**
 * The page half of end-to-end encryption: this join's identity, our own frame key and the
 * keys peers sent us. Keys go to the frame cryptor worker; peers get our key wrapped under
 * the pairwise secret (AES-GCM, bound to sender, receiver and keyId), so the signaling
 * server relays only ciphertext.
 *
 * Rotation: when someone joins we ratchet our key forward (HKDF) and send the result only to
 * the newcomer — peers already in the call follow by ratcheting themselves, and the newcomer
 * cannot go back to earlier frames. When someone leaves we draw a fresh key and send it to
 * those who remain, switching to it once they have had time to receive it.
 */
import { fromBase64Url, toBase64Url } from './base64url.js';
import { LOCAL, type FromCryptor, type ToCryptor, type TransformOptions } from './cryptor-messages.js';
import type { E2eeMethod } from './e2ee-support.js';
import { MAX_RATCHET_STEPS, chatKeyFrom, keyIdDistance, newFrameKeyBytes, nextKeyId, ratchetFrameKey } from './frame-key.js';
import { pairwiseWrappingKey, safetyCode, type Identity } from './identity-key.js';

export interface WrappedKey {
  to: string;
  keyId: number;
  wrapped: string;
  iv: string;
}

interface PeerKeys {
  publicKey: string;
  wrapping: Promise<CryptoKey>;
  /** keyId → raw frame key received from this peer (for chat; the worker holds its own copy). */
  received: Map<number, ArrayBuffer>;
  newest?: number;
}

/** How long receivers get to unwrap a fresh key before we seal frames with it. */
const SWITCH_AFTER_LEAVE_MS = 800;

declare const RTCRtpScriptTransform: { new (worker: Worker, options: TransformOptions): unknown };

export class KeyManager {
  private readonly worker: Worker;
  private readonly peers = new Map<string, PeerKeys>();
  private ownKeyId = 0;
  private ownRaw: ArrayBuffer = newFrameKeyBytes();
  private switchTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly identity: Identity,
    readonly method: Exclude<E2eeMethod, 'none'>,
    private readonly ownId: () => string,
    private readonly sendKey: (key: WrappedKey) => void,
    onDecryptState: (participantId: string, ok: boolean) => void,
  ) {
    this.worker = new Worker(new URL('./frame-cryptor.worker.ts', import.meta.url), { type: 'module', name: 'frame-cryptor' });
    this.worker.onmessage = (event: MessageEvent<FromCryptor>) => {
      if (event.data.type === 'decrypt-state') onDecryptState(event.data.participantId, event.data.ok);
    };
    this.post({ type: 'set-key', participantId: LOCAL, keyId: this.ownKeyId, raw: this.ownRaw.slice(0) });
  }

  private post(message: ToCryptor, transfer: Transferable[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  /** Call right after addTrack, before any offer or answer: set later, Chromium ignores it. */
  protectSender(sender: RTCRtpSender, kind: 'audio' | 'video'): void {
    this.attach(sender, { operation: 'encrypt', kind });
  }

  protectReceiver(receiver: RTCRtpReceiver, kind: 'audio' | 'video', participantId: string): void {
    this.attach(receiver, { operation: 'decrypt', kind, participantId });
  }

  private attach(target: RTCRtpSender | RTCRtpReceiver, options: TransformOptions): void {
    if (this.method === 'script-transform') {
      (target as unknown as { transform: unknown }).transform = new RTCRtpScriptTransform(this.worker, options);
      return;
    }
    const { readable, writable } = (target as unknown as { createEncodedStreams(): { readable: ReadableStream; writable: WritableStream } }).createEncodedStreams();
    this.post({ type: 'attach', readable, writable, options }, [readable as unknown as Transferable, writable as unknown as Transferable]);
  }

  /** A peer we will talk to: derive the pairwise wrapping key now, in the background. */
  addPeer(participantId: string, publicKey: string): void {
    const existing = this.peers.get(participantId);
    if (existing && existing.publicKey === publicKey) return;
    this.peers.set(participantId, { publicKey, wrapping: pairwiseWrappingKey(this.identity, publicKey), received: new Map() });
  }

  safetyCodeWith(participantId: string): Promise<string> | undefined {
    const peer = this.peers.get(participantId);
    return peer ? safetyCode(this.identity.publicKey, peer.publicKey) : undefined;
  }

  /** Someone joined: step our key forward and give the newcomer the new one. */
  async peerJoined(participantId: string): Promise<void> {
    this.ownRaw = await ratchetFrameKey(this.ownRaw);
    this.ownKeyId = nextKeyId(this.ownKeyId);
    this.post({ type: 'set-key', participantId: LOCAL, keyId: this.ownKeyId, raw: this.ownRaw.slice(0) });
    await this.sendOwnKeyTo(participantId);
  }

  /** Someone left: a fresh key for those who remain; it cannot be derived from the old one. */
  async peerLeft(participantId: string): Promise<void> {
    this.peers.delete(participantId);
    this.post({ type: 'forget', participantId });
    this.ownRaw = newFrameKeyBytes();
    this.ownKeyId = nextKeyId(this.ownKeyId);
    const keyId = this.ownKeyId;
    const raw = this.ownRaw;
    await Promise.all([...this.peers.keys()].map((id) => this.sendOwnKeyTo(id)));
    clearTimeout(this.switchTimer);
    this.switchTimer = setTimeout(() => this.post({ type: 'set-key', participantId: LOCAL, keyId, raw: raw.slice(0) }), this.peers.size > 0 ? SWITCH_AFTER_LEAVE_MS : 0);
  }

  async sendOwnKeyTo(participantId: string): Promise<void> {
    const peer = this.peers.get(participantId);
    if (!peer) return;
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const wrapped = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: bindingOf(this.ownId(), participantId, this.ownKeyId) }, await peer.wrapping, this.ownRaw);
    this.sendKey({ to: participantId, keyId: this.ownKeyId, wrapped: toBase64Url(wrapped), iv: toBase64Url(iv) });
  }

  /** A peer's key for us. False when it does not open: wrong sender, receiver, keyId or tampered. */
  async receiveKey(from: string, keyId: number, wrapped: string, iv: string): Promise<boolean> {
    const peer = this.peers.get(from);
    if (!peer) return false;
    let raw: ArrayBuffer;
    try {
      raw = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64Url(iv), additionalData: bindingOf(from, this.ownId(), keyId) }, await peer.wrapping, fromBase64Url(wrapped));
    } catch {
      return false;
    }
    if (raw.byteLength !== 32) return false;
    peer.received.set(keyId, raw);
    peer.newest = keyId;
    for (const old of [...peer.received.keys()]) if (keyIdDistance(old, keyId) > 4) peer.received.delete(old);
    this.post({ type: 'set-key', participantId: from, keyId, raw: raw.slice(0) });
    return true;
  }

  hasKeyFrom(participantId: string): boolean {
    return this.peers.get(participantId)?.newest !== undefined;
  }

  /** Our chat key and its keyId. */
  async ownChatKey(): Promise<{ keyId: number; key: CryptoKey }> {
    return { keyId: this.ownKeyId, key: await chatKeyFrom(this.ownRaw) };
  }

  /** A peer's chat key for this keyId, ratcheting forward as the worker does for frames. */
  async peerChatKey(participantId: string, keyId: number): Promise<CryptoKey | undefined> {
    const peer = this.peers.get(participantId);
    if (!peer || peer.newest === undefined) return undefined;
    let raw = peer.received.get(keyId);
    if (!raw) {
      const steps = keyIdDistance(peer.newest, keyId);
      if (steps === 0 || steps > MAX_RATCHET_STEPS) return undefined;
      raw = peer.received.get(peer.newest)!;
      for (let i = 0; i < steps; i++) raw = await ratchetFrameKey(raw);
    }
    return chatKeyFrom(raw);
  }

  close(): void {
    clearTimeout(this.switchTimer);
    this.worker.terminate();
  }
}

/** Additional data of a wrapped key: a server cannot redirect it to another peer or replay an old keyId. */
function bindingOf(from: string, to: string, keyId: number): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`telesalud e2ee-key v1|${from}|${to}|${keyId}`);
}
