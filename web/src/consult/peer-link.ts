/**
 * One RTCPeerConnection to one peer of the mesh. The later arrival offers first (it knows
 * who is already there); after that either side may offer — to restart ICE after a network
 * change — with perfect negotiation settling a collision (the earlier arrival is polite).
 *
 * Encryption transforms go on the senders and receivers right after addTrack, before any
 * offer or answer: Chromium silently ignores a transform set later (in ontrack).
 */
import type { IceCandidateMessage, ParticipantInfo, SessionDescriptionMessage } from '../../../src/consult/signaling-protocol.js';
import type { KeyManager } from './e2ee/key-manager.js';
import { TypedEmitter } from './typed-emitter.js';

export type LinkState = 'connecting' | 'connected' | 'reconnecting' | 'failed' | 'closed';

type Events = {
  state: [LinkState];
  stream: [MediaStream];
  chat: [string];
  chatOpen: [];
};

export interface LinkOptions {
  peer: ParticipantInfo;
  /** We arrived later: we make the first offer. */
  offerer: boolean;
  iceServers: RTCIceServer[];
  /** Present when both ends encrypt frames. */
  keys: KeyManager | undefined;
  /** The tracks to send now (null: a transceiver with nothing on it yet). */
  audio: MediaStreamTrack | null;
  video: MediaStreamTrack | null;
  sendSignal(body: { description?: SessionDescriptionMessage; candidate?: IceCandidateMessage | null }): void;
}

/** While ICE is not connected, the side that acts tries a restart this often. */
const RESTART_EVERY_MS = 2500;
/** A 'disconnected' link often heals by itself within a second; restart if it doesn't. */
const DISCONNECTED_GRACE_MS = 1000;

export class PeerLink extends TypedEmitter<Events> {
  readonly pc: RTCPeerConnection;
  readonly peer: ParticipantInfo;
  readonly encrypted: boolean;
  readonly audioSender: RTCRtpSender;
  readonly videoSender: RTCRtpSender;
  readonly remoteStream = new MediaStream();
  private readonly chatChannel: RTCDataChannel;
  private makingOffer = false;
  private ignoreOffer = false;
  private negotiated = false;
  private pendingCandidates: RTCIceCandidateInit[] = [];
  private restartTimer: ReturnType<typeof setInterval> | undefined;
  private stateNow: LinkState = 'connecting';
  private everConnected = false;
  /** Times the link came back after being lost (for the UI and the tests). */
  recoveries = 0;

  constructor(private readonly options: LinkOptions) {
    super();
    this.peer = options.peer;
    this.encrypted = options.keys !== undefined;
    const config: RTCConfiguration & { encodedInsertableStreams?: boolean } = { iceServers: options.iceServers, bundlePolicy: 'max-bundle' };
    if (options.keys?.method === 'insertable-streams') config.encodedInsertableStreams = true;
    this.pc = new RTCPeerConnection(config);
    const stream = new MediaStream();
    this.audioSender = this.addTrack('audio', options.audio, stream);
    this.videoSender = this.addTrack('video', options.video, stream);
    // Negotiated on both ends with a fixed id: no extra round trip, no ondatachannel race.
    this.chatChannel = this.pc.createDataChannel('chat', { negotiated: true, id: 0, ordered: true });
    this.chatChannel.onmessage = (event) => {
      if (typeof event.data === 'string' && event.data.length <= 16_384) this.emit('chat', event.data);
    };
    this.chatChannel.onopen = () => this.emit('chatOpen');

    this.pc.ontrack = (event) => {
      if (!this.remoteStream.getTracks().includes(event.track)) this.remoteStream.addTrack(event.track);
      this.emit('stream', this.remoteStream);
    };
    this.pc.onicecandidate = (event) => options.sendSignal({ candidate: event.candidate ? (event.candidate.toJSON() as IceCandidateMessage) : null });
    this.pc.onnegotiationneeded = () => void this.offer();
    this.pc.onconnectionstatechange = () => this.onConnectionState();
    this.pc.oniceconnectionstatechange = () => this.onConnectionState();
    this.restartTimer = setInterval(() => this.maybeRestart(), RESTART_EVERY_MS);
  }

  private addTrack(kind: 'audio' | 'video', track: MediaStreamTrack | null, stream: MediaStream): RTCRtpSender {
    let sender: RTCRtpSender;
    let transceiver: RTCRtpTransceiver;
    if (track) {
      sender = this.pc.addTrack(track, stream);
      transceiver = this.pc.getTransceivers().find((t) => t.sender === sender)!;
    } else {
      // Nothing to send (no camera): still receive, and keep a sender to replaceTrack() into later.
      transceiver = this.pc.addTransceiver(kind, { direction: 'sendrecv', streams: [stream] });
      sender = transceiver.sender;
    }
    if (kind === 'video') preferVp8(transceiver);
    if (this.options.keys) {
      this.options.keys.protectSender(sender, kind);
      this.options.keys.protectReceiver(transceiver.receiver, kind, this.peer.id);
    }
    return sender;
  }

  get state(): LinkState {
    return this.stateNow;
  }

  /** The earlier arrival answers; only after the first exchange may it offer (ICE restarts). */
  private get polite(): boolean {
    return !this.options.offerer;
  }

  private async offer(): Promise<void> {
    if (!this.options.offerer && !this.negotiated) return;
    if (this.pc.signalingState === 'closed') return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      const local = this.pc.localDescription;
      if (local && local.type === 'offer') this.options.sendSignal({ description: { type: 'offer', sdp: local.sdp } });
    } catch {
      // A collision or a closed connection: the other side's offer or the restart timer takes over.
    } finally {
      this.makingOffer = false;
    }
  }

  async handleSignal(body: { description?: SessionDescriptionMessage; candidate?: IceCandidateMessage | null }): Promise<void> {
    if (this.pc.signalingState === 'closed') return;
    if (body.description) {
      const description = body.description;
      const collision = description.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      if (description.type === 'answer' && this.pc.signalingState !== 'have-local-offer') return;
      await this.pc.setRemoteDescription(description);
      this.negotiated = true;
      for (const candidate of this.pendingCandidates.splice(0)) await this.addCandidate(candidate);
      if (description.type === 'offer') {
        await this.pc.setLocalDescription();
        const local = this.pc.localDescription;
        if (local) this.options.sendSignal({ description: { type: 'answer', sdp: local.sdp } });
      }
    }
    if (body.candidate !== undefined) {
      const candidate: RTCIceCandidateInit = body.candidate ?? { candidate: '' };
      if (!this.pc.remoteDescription) this.pendingCandidates.push(candidate);
      else await this.addCandidate(candidate);
    }
  }

  private async addCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch {
      // A candidate of an offer we ignored, or of an ICE generation already restarted.
    }
  }

  private onConnectionState(): void {
    const ice = this.pc.iceConnectionState;
    const conn = this.pc.connectionState;
    let state: LinkState;
    if (conn === 'closed') state = 'closed';
    else if (conn === 'connected' || ice === 'connected' || ice === 'completed') state = 'connected';
    else if (!this.everConnected) state = conn === 'failed' ? 'failed' : 'connecting';
    else state = 'reconnecting';
    if (state === 'connected') {
      if (this.everConnected && this.stateNow !== 'connected') this.recoveries++;
      this.everConnected = true;
    }
    if (ice === 'failed') this.restartIce();
    else if (ice === 'disconnected') setTimeout(() => this.pc.iceConnectionState === 'disconnected' && this.restartIce(), DISCONNECTED_GRACE_MS);
    this.setState(state);
  }

  private setState(state: LinkState): void {
    if (state === this.stateNow) return;
    this.stateNow = state;
    this.emit('state', state);
  }

  private lastRestartAt = 0;

  /** New ICE credentials and a new offer; a lost offer is rolled back and made again. */
  restartIce(): void {
    if (this.pc.signalingState === 'closed' || (!this.options.offerer && !this.negotiated)) return;
    this.lastRestartAt = Date.now();
    if (this.pc.signalingState === 'have-local-offer') {
      void this.pc.setLocalDescription({ type: 'rollback' }).then(() => this.pc.restartIce(), () => undefined);
      return;
    }
    this.pc.restartIce();
  }

  private maybeRestart(): void {
    if (this.stateNow === 'connected' || this.stateNow === 'closed') return;
    if (!this.everConnected && !this.options.offerer) return;
    if (Date.now() - this.lastRestartAt >= RESTART_EVERY_MS - 100) this.restartIce();
  }

  /**
   * Our signaling socket came back after a drop, usually a network change: restart ICE now
   * (new interfaces, new candidates) rather than wait for the old path to time out.
   */
  signalingResumed(): void {
    if (this.everConnected || this.options.offerer) this.restartIce();
  }

  sendChat(text: string): boolean {
    if (this.chatChannel.readyState !== 'open') return false;
    this.chatChannel.send(text);
    return true;
  }

  get chatReady(): boolean {
    return this.chatChannel.readyState === 'open';
  }

  close(): void {
    clearInterval(this.restartTimer);
    this.pc.close();
    this.setState('closed');
    this.removeAllListeners();
  }
}

/** The clear-header rule of the frame cryptor is VP8's; VP8 also decodes everywhere. */
function preferVp8(transceiver: RTCRtpTransceiver): void {
  const capabilities = RTCRtpReceiver.getCapabilities?.('video');
  if (!capabilities || typeof transceiver.setCodecPreferences !== 'function') return;
  const vp8 = capabilities.codecs.filter((c) => /video\/vp8/i.test(c.mimeType));
  const repair = capabilities.codecs.filter((c) => /video\/(rtx|red|ulpfec)/i.test(c.mimeType));
  if (vp8.length > 0) transceiver.setCodecPreferences([...vp8, ...repair]);
}
