/**
 * Connection quality from getStats: packet loss, round-trip time and bitrate per peer, a
 * level for the indicator, and the automatic fall-back on a poor uplink — first a lower
 * resolution, then audio only — stepping back up once the link has been good for a while.
 */
export type QualityLevel = 'good' | 'fair' | 'poor' | 'unknown';
/** 0 full video, 1 reduced resolution and bitrate, 2 audio only. */
export type FallbackStep = 0 | 1 | 2;

export interface LinkSample {
  /** Fraction 0..1 of packets lost, in either direction, over the last interval. */
  loss: number;
  rttMs: number | undefined;
  sendKbps: number;
  receiveKbps: number;
  level: QualityLevel;
}

interface Counters {
  at: number;
  bytesSent: number;
  bytesReceived: number;
  packetsLost: number;
  packetsReceived: number;
}

export const POOR_SAMPLES_TO_STEP_DOWN = 3;
export const GOOD_SAMPLES_TO_STEP_UP = 8;

export function levelOf(loss: number, rttMs: number | undefined): QualityLevel {
  if (loss > 0.1 || (rttMs ?? 0) > 700) return 'poor';
  if (loss > 0.03 || (rttMs ?? 0) > 350) return 'fair';
  return 'good';
}

/** How a link's media travels: straight between the browsers (host, srflx, prflx) or through a TURN relay. */
export type MediaPath = 'direct' | 'relay';

/**
 * The path of the candidate pair the connection uses: the transport's selectedCandidatePairId
 * (Chromium, Safari), else the pair flagged `selected` (Firefox), else a nominated, succeeded pair.
 * Relayed when either end's candidate is a `relay` one (ours or the peer's allocation).
 */
export function selectedPath(report: RTCStatsReport): MediaPath | undefined {
  const all: Record<string, unknown>[] = [];
  report.forEach((s: Record<string, unknown>) => all.push(s));
  const pairs = all.filter((s) => s.type === 'candidate-pair');
  const selectedId = all.find((s) => s.type === 'transport' && typeof s.selectedCandidatePairId === 'string')?.selectedCandidatePairId;
  const pair = (selectedId !== undefined ? pairs.find((p) => p.id === selectedId) : undefined) ?? pairs.find((p) => p.selected === true) ?? pairs.find((p) => p.nominated === true && p.state === 'succeeded');
  if (!pair) return undefined;
  const typeOf = (id: unknown) => (typeof id === 'string' ? (report.get(id) as Record<string, unknown> | undefined)?.candidateType : undefined);
  return typeOf(pair.localCandidateId) === 'relay' || typeOf(pair.remoteCandidateId) === 'relay' ? 'relay' : 'direct';
}

/** Reads one connection's stats and turns counters into rates since the previous read. */
export class LinkStatsReader {
  private previous: Counters | undefined;
  /** Transport bytes since the last traffic report, for the `stats` message. */
  unreportedSent = 0;
  unreportedReceived = 0;
  /** Of those, the bytes of samples taken while the link ran over a TURN relay. */
  unreportedRelayedSent = 0;
  unreportedRelayedReceived = 0;
  /** The path of the selected candidate pair at the last sample; undefined while none is selected. */
  path: MediaPath | undefined;

  async sample(pc: RTCPeerConnection): Promise<LinkSample> {
    const report = await pc.getStats();
    const now: Counters = { at: performance.now(), bytesSent: 0, bytesReceived: 0, packetsLost: 0, packetsReceived: 0 };
    let remoteLoss = 0;
    let remoteLossCount = 0;
    let rtt: number | undefined;
    this.path = selectedPath(report);
    report.forEach((s: Record<string, unknown>) => {
      if (s.type === 'transport') {
        now.bytesSent += Number(s.bytesSent ?? 0);
        now.bytesReceived += Number(s.bytesReceived ?? 0);
      } else if (s.type === 'inbound-rtp') {
        now.packetsLost += Math.max(0, Number(s.packetsLost ?? 0));
        now.packetsReceived += Number(s.packetsReceived ?? 0);
      } else if (s.type === 'remote-inbound-rtp') {
        if (typeof s.fractionLost === 'number') {
          remoteLoss += s.fractionLost;
          remoteLossCount++;
        }
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && typeof s.currentRoundTripTime === 'number') {
        rtt = s.currentRoundTripTime * 1000;
      }
    });
    const prev = this.previous;
    this.previous = now;
    if (!prev) return { loss: 0, rttMs: rtt, sendKbps: 0, receiveKbps: 0, level: 'unknown' };
    const seconds = Math.max(0.001, (now.at - prev.at) / 1000);
    const sent = Math.max(0, now.bytesSent - prev.bytesSent);
    const received = Math.max(0, now.bytesReceived - prev.bytesReceived);
    this.unreportedSent += sent;
    this.unreportedReceived += received;
    // The interval is counted on the path the link has now: a path changes rarely within a call.
    if (this.path === 'relay') {
      this.unreportedRelayedSent += sent;
      this.unreportedRelayedReceived += received;
    }
    const lost = Math.max(0, now.packetsLost - prev.packetsLost);
    const got = Math.max(0, now.packetsReceived - prev.packetsReceived);
    const inboundLoss = lost + got > 0 ? lost / (lost + got) : 0;
    const loss = Math.max(inboundLoss, remoteLossCount > 0 ? remoteLoss / remoteLossCount : 0);
    return { loss, rttMs: rtt, sendKbps: (sent * 8) / 1000 / seconds, receiveKbps: (received * 8) / 1000 / seconds, level: levelOf(loss, rtt) };
  }
}

/** Decides the fall-back step from the worst link's level, with hysteresis. */
export class FallbackController {
  private poorRun = 0;
  private goodRun = 0;
  step: FallbackStep = 0;

  /** Returns the new step when it changes. */
  observe(level: QualityLevel): FallbackStep | undefined {
    if (level === 'unknown') return undefined;
    this.poorRun = level === 'poor' ? this.poorRun + 1 : 0;
    this.goodRun = level === 'good' ? this.goodRun + 1 : 0;
    if (this.poorRun >= POOR_SAMPLES_TO_STEP_DOWN && this.step < 2) {
      this.poorRun = 0;
      return (this.step = (this.step + 1) as FallbackStep);
    }
    if (this.goodRun >= GOOD_SAMPLES_TO_STEP_UP && this.step > 0) {
      this.goodRun = 0;
      return (this.step = (this.step - 1) as FallbackStep);
    }
    return undefined;
  }
}

/** Applies a fall-back step (or the manual audio-only switch) to a video sender. */
export async function applyVideoStep(sender: RTCRtpSender, step: FallbackStep): Promise<void> {
  const params = sender.getParameters();
  if (!params.encodings || params.encodings.length === 0) return;
  for (const encoding of params.encodings) {
    encoding.active = step < 2;
    encoding.scaleResolutionDownBy = step === 1 ? 2 : 1;
    if (step === 1) encoding.maxBitrate = 200_000;
    else delete encoding.maxBitrate;
  }
  try {
    await sender.setParameters(params);
  } catch {
    // Parameters changed under us (a renegotiation): the next sample applies the step again.
  }
}
