/** Messages between the key manager (page) and the frame cryptor (worker). */

export type TransformOptions =
  | { operation: 'encrypt'; kind: 'audio' | 'video' }
  | { operation: 'decrypt'; kind: 'audio' | 'video'; participantId: string };

/** The page's own frames use this participant slot in the worker. */
export const LOCAL = 'local';

export type ToCryptor =
  /** `raw` is the frame key (32 bytes); for LOCAL it becomes the key new frames are sealed with. */
  | { type: 'set-key'; participantId: string; keyId: number; raw: ArrayBuffer }
  | { type: 'forget'; participantId: string }
  /** encodedInsertableStreams fallback: the streams of one sender or receiver, transferred. */
  | { type: 'attach'; readable: ReadableStream; writable: WritableStream; options: TransformOptions };

export type FromCryptor =
  /** Whether frames from this participant currently decrypt; sent when it changes. */
  { type: 'decrypt-state'; participantId: string; ok: boolean };
