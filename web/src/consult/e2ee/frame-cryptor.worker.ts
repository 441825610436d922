/// <reference lib="webworker" />
/**
 * The frame cryptor: seals every outgoing audio and video frame with this participant's
 * frame key and opens incoming frames with the sender's key. Runs in a worker so the crypto
 * never stalls the page. A frame that cannot be opened is DROPPED: passing it on would feed
 * ciphertext to the decoder (Opus plays it as noise, VP8 as garbage).
 *
 * Frame layout after sealing (as LiveKit and Jitsi do):
 *   [codec header, in clear] [AES-GCM ciphertext + 16-byte tag] [IV, 12 bytes] [keyId, 2 bytes]
 * The clear header (VP8: 10 bytes on key frames, 3 on delta frames; Opus: its 1-byte TOC)
 * lets the RTP packetizer and the jitter buffer work; it is authenticated as additional data.
 */
import { LOCAL, type FromCryptor, type ToCryptor, type TransformOptions } from './cryptor-messages.js';
import { MAX_RATCHET_STEPS, importFrameKey, keyIdDistance, nextKeyId, ratchetFrameKey } from './frame-key.js';

declare const self: DedicatedWorkerGlobalScope & { onrtctransform: ((event: { transformer: ScriptTransformer }) => void) | null };

interface ScriptTransformer {
  readable: ReadableStream<EncodedFrame>;
  writable: WritableStream<EncodedFrame>;
  options: TransformOptions;
}

interface EncodedFrame {
  data: ArrayBuffer;
  /** Video frames only. */
  type?: 'key' | 'delta' | 'empty';
}

interface KeyEntry {
  keyId: number;
  raw: ArrayBuffer;
  key: CryptoKey;
  /** Derived here by ratcheting rather than received; confirmed once a frame opens with it. */
  guessed: boolean;
}

const IV_BYTES = 12;
const TRAILER_BYTES = IV_BYTES + 2;
const TAG_BYTES = 16;
/** Older keys kept per sender so frames in flight during a rotation still open. */
const KEYS_KEPT = 4;

/** participantId → its keys, newest last. */
const keys = new Map<string, KeyEntry[]>();
const decryptOk = new Map<string, boolean>();

// IV = 4 random bytes per worker + a 64-bit counter: never repeats under one key.
const ivSalt = crypto.getRandomValues(new Uint8Array(4));
let ivCounter = 0n;

function clearHeaderBytes(options: TransformOptions, frame: EncodedFrame): number {
  if (options.kind === 'audio') return 1;
  return frame.type === 'key' ? 10 : 3;
}

async function storeKey(participantId: string, keyId: number, raw: ArrayBuffer, guessed: boolean): Promise<KeyEntry> {
  const entry: KeyEntry = { keyId, raw, key: await importFrameKey(raw), guessed };
  const list = (keys.get(participantId) ?? []).filter((k) => k.keyId !== keyId);
  list.push(entry);
  while (list.length > KEYS_KEPT) list.shift();
  keys.set(participantId, list);
  return entry;
}

/** A sender that stepped its key forward (someone joined) is followed by ratcheting here. */
async function findKey(participantId: string, keyId: number): Promise<KeyEntry | undefined> {
  const list = keys.get(participantId);
  if (!list || list.length === 0) return undefined;
  const known = list.find((k) => k.keyId === keyId);
  if (known) return known;
  const newest = list[list.length - 1]!;
  const steps = keyIdDistance(newest.keyId, keyId);
  if (steps === 0 || steps > MAX_RATCHET_STEPS) return undefined;
  let raw = newest.raw;
  let id = newest.keyId;
  for (let i = 0; i < steps; i++) {
    raw = await ratchetFrameKey(raw);
    id = nextKeyId(id);
  }
  return { keyId: id, raw, key: await importFrameKey(raw), guessed: true };
}

function report(participantId: string, ok: boolean): void {
  if (decryptOk.get(participantId) === ok) return;
  decryptOk.set(participantId, ok);
  self.postMessage({ type: 'decrypt-state', participantId, ok } satisfies FromCryptor);
}

async function seal(frame: EncodedFrame, options: TransformOptions): Promise<boolean> {
  const current = keys.get(LOCAL)?.at(-1);
  // No key yet means no frame leaves: never send media in clear.
  if (!current) return false;
  const data = new Uint8Array(frame.data);
  const header = Math.min(clearHeaderBytes(options, frame), data.length);
  const iv = new Uint8Array(IV_BYTES);
  iv.set(ivSalt, 0);
  new DataView(iv.buffer).setBigUint64(4, ivCounter++);
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: data.subarray(0, header) }, current.key, data.subarray(header)));
  const out = new Uint8Array(header + sealed.length + TRAILER_BYTES);
  out.set(data.subarray(0, header), 0);
  out.set(sealed, header);
  out.set(iv, header + sealed.length);
  new DataView(out.buffer).setUint16(out.length - 2, current.keyId);
  frame.data = out.buffer;
  return true;
}

async function open(frame: EncodedFrame, options: TransformOptions & { operation: 'decrypt' }): Promise<boolean> {
  const data = new Uint8Array(frame.data);
  const header = clearHeaderBytes(options, frame);
  if (data.length < header + TAG_BYTES + TRAILER_BYTES) return false;
  const keyId = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint16(data.length - 2);
  const entry = await findKey(options.participantId, keyId);
  if (!entry) return false;
  const iv = data.subarray(data.length - TRAILER_BYTES, data.length - 2);
  try {
    const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: data.subarray(0, header) }, entry.key, data.subarray(header, data.length - TRAILER_BYTES)));
    if (entry.guessed) await storeKey(options.participantId, entry.keyId, entry.raw, false);
    const out = new Uint8Array(header + plain.length);
    out.set(data.subarray(0, header), 0);
    out.set(plain, header);
    frame.data = out.buffer;
    return true;
  } catch {
    return false;
  }
}

function run(readable: ReadableStream<EncodedFrame>, writable: WritableStream<EncodedFrame>, options: TransformOptions): void {
  const transform = new TransformStream<EncodedFrame, EncodedFrame>({
    async transform(frame, controller) {
      if (frame.data.byteLength === 0) return controller.enqueue(frame);
      if (options.operation === 'encrypt') {
        if (await seal(frame, options)) controller.enqueue(frame);
        return;
      }
      const ok = await open(frame, options);
      report(options.participantId, ok);
      // Dropped, never passed on.
      if (ok) controller.enqueue(frame);
    },
  });
  readable.pipeThrough(transform).pipeTo(writable).catch(() => {
    // The sender or receiver went away with its connection: nothing to clean up.
  });
}

self.onrtctransform = (event) => {
  const { readable, writable, options } = event.transformer;
  run(readable, writable, options);
};

let keyUpdates: Promise<void> = Promise.resolve();

self.onmessage = (event: MessageEvent<ToCryptor>) => {
  const message = event.data;
  switch (message.type) {
    case 'set-key':
      // In order: the newest local key is the one frames are sealed with.
      keyUpdates = keyUpdates.then(() => storeKey(message.participantId, message.keyId, message.raw, false)).then(() => undefined);
      break;
    case 'forget':
      keys.delete(message.participantId);
      decryptOk.delete(message.participantId);
      break;
    case 'attach':
      run(message.readable as ReadableStream<EncodedFrame>, message.writable as WritableStream<EncodedFrame>, message.options);
      break;
  }
};
