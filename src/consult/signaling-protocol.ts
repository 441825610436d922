/**
 * The consultation signaling protocol on `wss://HOST/consult/ws`: every message the server
 * and the browser exchange, typed once here and validated on both ends with the same code.
 * This file is imported by the node and by the browser bundle, so it uses no Node API.
 *
 * What the server relays is only what it needs to route: session descriptions, ICE
 * candidates and wrapped (encrypted) frame keys. It never sees a media key: each participant
 * wraps its frame key for each peer under a pairwise ECDH secret the server cannot compute.
 *
 * Flow: the socket opens (session cookie, or no cookie for a guest) → the client sends
 * `join` → the server answers `welcome` (host or waiting) → the host gets `lobby` updates
 * and sends `admit`/`decline` → an admitted participant gets `admitted` with the peers
 * already in the call and sends each of them an offer (the later arrival always offers) →
 * `signal` and `e2ee-key` messages flow peer to peer through the server.
 */

export const SIGNALING_PATH = '/consult/ws';
/** Clinician, patient, an interpreter or family member, a second clinician: a mesh of four. */
export const MAX_PARTICIPANTS = 4;
/** A WebSocket frame larger than this is refused before it is parsed. SDP of 4 peers fits. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
const MAX_SDP_CHARS = 48 * 1024;
const MAX_CANDIDATE_CHARS = 1024;
const MAX_WRAPPED_KEY_CHARS = 256;

export type ParticipantKind = 'clinician' | 'patient' | 'guest';

/** What one participant knows of another. */
export interface ParticipantInfo {
  /** Random per join (128 bits, base64url); never an account or FHIR id. */
  id: string;
  kind: ParticipantKind;
  /** As the participant should be greeted on screen ("Dra. Fernández", "Intérprete"). */
  displayName: string;
  /** Only the appointment's clinician is host: admits, declines, removes, mutes, ends. */
  host: boolean;
  /** Whether this participant's browser encrypts frames end to end. Shown before admitting. */
  e2ee: boolean;
  /** Public ECDH P-256 identity key of this join (raw, base64url), for key wrapping and the safety code. */
  identityKey: string;
}

export interface SessionDescriptionMessage {
  type: 'offer' | 'answer';
  sdp: string;
}

export interface IceCandidateMessage {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

/** ICE servers as RTCPeerConnection takes them; TURN credentials are short-lived (HMAC). */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

// ── client → server ────────────────────────────────────────────────────────────────

export type JoinTarget =
  /** A signed-in clinician or patient joins the consultation of this telehealth Appointment. */
  | { appointmentId: string }
  /** A guest joins with the single-use token of a guest link (no account). */
  | { guestToken: string };

export type ClientMessage =
  | ({
      type: 'join';
      e2ee: boolean;
      identityKey: string;
      displayName?: string;
      /** Rejoining after a dropped socket keeps the place in the call without a new admission. */
      resume?: { participantId: string; secret: string };
    } & JoinTarget)
  | { type: 'admit'; participantId: string }
  | { type: 'decline'; participantId: string }
  | { type: 'remove'; participantId: string }
  | { type: 'mute'; participantId: string }
  | { type: 'end' }
  | { type: 'leave' }
  | { type: 'signal'; to: string; description?: SessionDescriptionMessage; candidate?: IceCandidateMessage | null }
  /** A frame key wrapped (AES-GCM) under the pairwise secret of sender and `to`. */
  | { type: 'e2ee-key'; to: string; keyId: number; wrapped: string; iv: string }
  /** Periodic traffic report from getStats, aggregated per consultation and per day. */
  | ({ type: 'stats'; sentBytes: number; receivedBytes: number; intervalMs: number } & Partial<MediaPathReport>);

/**
 * Which path the browser's media takes, from getStats: of its connected peer links, how many
 * run over a TURN relay (a selected candidate pair whose local or remote candidate is `relay`),
 * and the part of the interval's bytes that went over those. Statistics only: the node never
 * decides anything else from it. Sent with every `stats` by current browsers; absent from older ones.
 */
export interface MediaPathReport {
  /** Peer links connected at the time of the report (at most MAX_PARTICIPANTS - 1). */
  links: number;
  /** Of those, the links over a relay. */
  relayedLinks: number;
  /** Of sentBytes / receivedBytes, the bytes over relayed links. */
  relayedSentBytes: number;
  relayedReceivedBytes: number;
}

// ── server → client ────────────────────────────────────────────────────────────────

export type SignalingErrorCode =
  | 'bad-message'
  | 'unauthenticated'
  | 'not-allowed'
  | 'not-found'
  | 'room-full'
  | 'not-host'
  | 'rate-limited'
  | 'already-joined';

export type PeerLeftReason = 'left' | 'removed' | 'disconnected';

export type ServerMessage =
  | {
      type: 'welcome';
      participant: ParticipantInfo;
      /** Present this with `resume` after a dropped socket to keep the place in the call. */
      resumeSecret: string;
      state: 'waiting' | 'admitted';
      iceServers: IceServer[];
    }
  /** To the host: who is in the waiting room now. */
  | { type: 'lobby'; waiting: ParticipantInfo[] }
  /** To a participant just admitted (the host on joining): who is already in the call. */
  | { type: 'admitted'; peers: ParticipantInfo[] }
  | { type: 'peer-joined'; peer: ParticipantInfo }
  | { type: 'peer-left'; participantId: string; reason: PeerLeftReason }
  | { type: 'signal'; from: string; description?: SessionDescriptionMessage; candidate?: IceCandidateMessage | null }
  | { type: 'e2ee-key'; from: string; keyId: number; wrapped: string; iv: string }
  | { type: 'mute-requested' }
  /** The call is over for this participant; the server closes the socket after sending it. */
  | { type: 'closed'; reason: 'declined' | 'removed' | 'ended' | 'room-full' | 'replaced' }
  /** This node is shutting down: reconnect (with `resume`) and the load balancer picks another. */
  | { type: 'reconnect' }
  | { type: 'error'; code: SignalingErrorCode; message: string };

// ── validation, the same on both ends ──────────────────────────────────────────────

export type Parsed<T> = { ok: true; message: T } | { ok: false; reason: string };

const MEDIA_PATH_FIELDS = ['links', 'relayedLinks', 'relayedSentBytes', 'relayedReceivedBytes'] as const;
const ID = /^[A-Za-z0-9_-]{16,64}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

class Invalid extends Error {}

type Obj = Record<string, unknown>;

function object(value: unknown, what: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Invalid(`${what} must be an object`);
  return value as Obj;
}

function only(obj: Obj, allowed: string[], what: string): void {
  for (const key of Object.keys(obj)) if (!allowed.includes(key)) throw new Invalid(`${what}: unknown field "${key}"`);
}

function string(obj: Obj, key: string, pattern: RegExp | undefined, max: number): string {
  const value = obj[key];
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw new Invalid(`"${key}" must be a string of 1 to ${max} characters`);
  if (pattern && !pattern.test(value)) throw new Invalid(`"${key}" has the wrong format`);
  return value;
}

function optionalString(obj: Obj, key: string, max: number): string | undefined {
  return obj[key] === undefined ? undefined : string(obj, key, undefined, max);
}

function boolean(obj: Obj, key: string): boolean {
  if (typeof obj[key] !== 'boolean') throw new Invalid(`"${key}" must be true or false`);
  return obj[key] as boolean;
}

function count(obj: Obj, key: string, max: number): number {
  const value = obj[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) throw new Invalid(`"${key}" must be a whole number from 0 to ${max}`);
  return value;
}

function description(value: unknown): SessionDescriptionMessage {
  const obj = object(value, 'description');
  only(obj, ['type', 'sdp'], 'description');
  if (obj.type !== 'offer' && obj.type !== 'answer') throw new Invalid('description.type must be offer or answer');
  return { type: obj.type, sdp: string(obj, 'sdp', undefined, MAX_SDP_CHARS) };
}

function candidate(value: unknown): IceCandidateMessage | null {
  // null is the end-of-candidates marker.
  if (value === null) return null;
  const obj = object(value, 'candidate');
  only(obj, ['candidate', 'sdpMid', 'sdpMLineIndex', 'usernameFragment'], 'candidate');
  if (typeof obj.candidate !== 'string' || obj.candidate.length > MAX_CANDIDATE_CHARS) throw new Invalid('candidate.candidate must be a string');
  const result: IceCandidateMessage = { candidate: obj.candidate };
  if (obj.sdpMid !== undefined) {
    if (obj.sdpMid !== null && (typeof obj.sdpMid !== 'string' || obj.sdpMid.length > 64)) throw new Invalid('candidate.sdpMid must be a short string');
    result.sdpMid = obj.sdpMid as string | null;
  }
  if (obj.sdpMLineIndex !== undefined) {
    if (obj.sdpMLineIndex !== null && (typeof obj.sdpMLineIndex !== 'number' || !Number.isInteger(obj.sdpMLineIndex) || obj.sdpMLineIndex < 0 || obj.sdpMLineIndex > 64)) throw new Invalid('candidate.sdpMLineIndex must be a small whole number');
    result.sdpMLineIndex = obj.sdpMLineIndex as number | null;
  }
  if (obj.usernameFragment !== undefined) {
    if (obj.usernameFragment !== null && (typeof obj.usernameFragment !== 'string' || obj.usernameFragment.length > 256)) throw new Invalid('candidate.usernameFragment must be a short string');
    result.usernameFragment = obj.usernameFragment as string | null;
  }
  return result;
}

function signalBody(obj: Obj): { description?: SessionDescriptionMessage; candidate?: IceCandidateMessage | null } {
  const body: { description?: SessionDescriptionMessage; candidate?: IceCandidateMessage | null } = {};
  if (obj.description !== undefined) body.description = description(obj.description);
  if (obj.candidate !== undefined) body.candidate = candidate(obj.candidate);
  if (body.description === undefined && !('candidate' in body)) throw new Invalid('a signal carries a description or a candidate');
  return body;
}

function participantInfo(value: unknown): ParticipantInfo {
  const obj = object(value, 'participant');
  only(obj, ['id', 'kind', 'displayName', 'host', 'e2ee', 'identityKey'], 'participant');
  if (obj.kind !== 'clinician' && obj.kind !== 'patient' && obj.kind !== 'guest') throw new Invalid('participant.kind is unknown');
  return {
    id: string(obj, 'id', ID, 64),
    kind: obj.kind,
    displayName: string(obj, 'displayName', undefined, 120),
    host: boolean(obj, 'host'),
    e2ee: boolean(obj, 'e2ee'),
    identityKey: string(obj, 'identityKey', BASE64URL, 200),
  };
}

function parseJson(raw: string): Obj {
  if (raw.length > MAX_MESSAGE_BYTES) throw new Invalid('message too large');
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new Invalid('message is not JSON');
  }
  const obj = object(value, 'message');
  if (typeof obj.type !== 'string') throw new Invalid('message has no type');
  return obj;
}

function guard<T>(fn: () => T): Parsed<T> {
  try {
    return { ok: true, message: fn() };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, reason: err.message };
    throw err;
  }
}

/** What the server accepts from a browser. Unknown types and fields are refused. */
export function parseClientMessage(raw: string): Parsed<ClientMessage> {
  return guard((): ClientMessage => {
    const obj = parseJson(raw);
    switch (obj.type) {
      case 'join': {
        only(obj, ['type', 'appointmentId', 'guestToken', 'e2ee', 'identityKey', 'displayName', 'resume'], 'join');
        const common = {
          type: 'join' as const,
          e2ee: boolean(obj, 'e2ee'),
          identityKey: string(obj, 'identityKey', BASE64URL, 200),
          ...(obj.displayName !== undefined ? { displayName: optionalString(obj, 'displayName', 80)! } : {}),
        };
        let resume: { participantId: string; secret: string } | undefined;
        if (obj.resume !== undefined) {
          const r = object(obj.resume, 'resume');
          only(r, ['participantId', 'secret'], 'resume');
          resume = { participantId: string(r, 'participantId', ID, 64), secret: string(r, 'secret', ID, 64) };
        }
        const withResume = resume ? { ...common, resume } : common;
        if ((obj.appointmentId === undefined) === (obj.guestToken === undefined)) throw new Invalid('join names either appointmentId or guestToken');
        if (obj.appointmentId !== undefined) return { ...withResume, appointmentId: string(obj, 'appointmentId', FHIR_ID, 64) };
        return { ...withResume, guestToken: string(obj, 'guestToken', ID, 64) };
      }
      case 'admit':
      case 'decline':
      case 'remove':
      case 'mute':
        only(obj, ['type', 'participantId'], obj.type);
        return { type: obj.type, participantId: string(obj, 'participantId', ID, 64) };
      case 'end':
      case 'leave':
        only(obj, ['type'], obj.type);
        return { type: obj.type };
      case 'signal':
        only(obj, ['type', 'to', 'description', 'candidate'], 'signal');
        return { type: 'signal', to: string(obj, 'to', ID, 64), ...signalBody(obj) };
      case 'e2ee-key':
        only(obj, ['type', 'to', 'keyId', 'wrapped', 'iv'], 'e2ee-key');
        return { type: 'e2ee-key', to: string(obj, 'to', ID, 64), keyId: count(obj, 'keyId', 0xffff), wrapped: string(obj, 'wrapped', BASE64URL, MAX_WRAPPED_KEY_CHARS), iv: string(obj, 'iv', BASE64URL, 32) };
      case 'stats': {
        only(obj, ['type', 'sentBytes', 'receivedBytes', 'intervalMs', ...MEDIA_PATH_FIELDS], 'stats');
        // Bounds: a participant cannot report more than ~1 Gbit/s over at most a minute.
        const traffic = { type: 'stats' as const, sentBytes: count(obj, 'sentBytes', 8e9), receivedBytes: count(obj, 'receivedBytes', 8e9), intervalMs: count(obj, 'intervalMs', 60_000) };
        const present = MEDIA_PATH_FIELDS.filter((key) => obj[key] !== undefined);
        if (present.length === 0) return traffic;
        if (present.length !== MEDIA_PATH_FIELDS.length) throw new Invalid(`stats: the path figures come together (${MEDIA_PATH_FIELDS.join(', ')})`);
        // The parts can't exceed the wholes: a link relayed is one of the links, relayed bytes are among the bytes.
        const links = count(obj, 'links', MAX_PARTICIPANTS - 1);
        return {
          ...traffic,
          links,
          relayedLinks: count(obj, 'relayedLinks', links),
          relayedSentBytes: count(obj, 'relayedSentBytes', traffic.sentBytes),
          relayedReceivedBytes: count(obj, 'relayedReceivedBytes', traffic.receivedBytes),
        };
      }
      default:
        throw new Invalid(`unknown message type "${String(obj.type).slice(0, 40)}"`);
    }
  });
}

/** What the browser accepts from the server: a compromised or confused server cannot inject fields. */
export function parseServerMessage(raw: string): Parsed<ServerMessage> {
  return guard((): ServerMessage => {
    const obj = parseJson(raw);
    switch (obj.type) {
      case 'welcome': {
        only(obj, ['type', 'participant', 'resumeSecret', 'state', 'iceServers'], 'welcome');
        if (obj.state !== 'waiting' && obj.state !== 'admitted') throw new Invalid('welcome.state is unknown');
        if (!Array.isArray(obj.iceServers)) throw new Invalid('welcome.iceServers must be a list');
        const iceServers = obj.iceServers.map((s): IceServer => {
          const server = object(s, 'ice server');
          only(server, ['urls', 'username', 'credential'], 'ice server');
          if (!Array.isArray(server.urls) || !server.urls.every((u) => typeof u === 'string' && /^(stun|stuns|turn|turns):/.test(u))) throw new Invalid('ice server urls must be stun:/turn: URLs');
          return { urls: server.urls as string[], ...(server.username !== undefined ? { username: string(server, 'username', undefined, 256) } : {}), ...(server.credential !== undefined ? { credential: string(server, 'credential', undefined, 256) } : {}) };
        });
        return { type: 'welcome', participant: participantInfo(obj.participant), resumeSecret: string(obj, 'resumeSecret', ID, 64), state: obj.state, iceServers };
      }
      case 'lobby':
        only(obj, ['type', 'waiting'], 'lobby');
        if (!Array.isArray(obj.waiting)) throw new Invalid('lobby.waiting must be a list');
        return { type: 'lobby', waiting: obj.waiting.map(participantInfo) };
      case 'admitted':
        only(obj, ['type', 'peers'], 'admitted');
        if (!Array.isArray(obj.peers)) throw new Invalid('admitted.peers must be a list');
        return { type: 'admitted', peers: obj.peers.map(participantInfo) };
      case 'peer-joined':
        only(obj, ['type', 'peer'], 'peer-joined');
        return { type: 'peer-joined', peer: participantInfo(obj.peer) };
      case 'peer-left':
        only(obj, ['type', 'participantId', 'reason'], 'peer-left');
        if (obj.reason !== 'left' && obj.reason !== 'removed' && obj.reason !== 'disconnected') throw new Invalid('peer-left.reason is unknown');
        return { type: 'peer-left', participantId: string(obj, 'participantId', ID, 64), reason: obj.reason };
      case 'signal':
        only(obj, ['type', 'from', 'description', 'candidate'], 'signal');
        return { type: 'signal', from: string(obj, 'from', ID, 64), ...signalBody(obj) };
      case 'e2ee-key':
        only(obj, ['type', 'from', 'keyId', 'wrapped', 'iv'], 'e2ee-key');
        return { type: 'e2ee-key', from: string(obj, 'from', ID, 64), keyId: count(obj, 'keyId', 0xffff), wrapped: string(obj, 'wrapped', BASE64URL, MAX_WRAPPED_KEY_CHARS), iv: string(obj, 'iv', BASE64URL, 32) };
      case 'mute-requested':
      case 'reconnect':
        only(obj, ['type'], obj.type);
        return { type: obj.type };
      case 'closed':
        only(obj, ['type', 'reason'], 'closed');
        if (!['declined', 'removed', 'ended', 'room-full', 'replaced'].includes(obj.reason as string)) throw new Invalid('closed.reason is unknown');
        return { type: 'closed', reason: obj.reason as 'declined' | 'removed' | 'ended' | 'room-full' | 'replaced' };
      case 'error':
        only(obj, ['type', 'code', 'message'], 'error');
        return { type: 'error', code: string(obj, 'code', /^[a-z-]+$/, 40) as SignalingErrorCode, message: string(obj, 'message', undefined, 300) };
      default:
        throw new Invalid(`unknown message type "${String(obj.type).slice(0, 40)}"`);
    }
  });
}
