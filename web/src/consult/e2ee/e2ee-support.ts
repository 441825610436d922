/** Which way this browser can put a transform on RTP frames, if any. */
export type E2eeMethod = 'script-transform' | 'insertable-streams' | 'none';

export function e2eeMethod(): E2eeMethod {
  if (typeof window === 'undefined' || typeof Worker === 'undefined') return 'none';
  if ('RTCRtpScriptTransform' in window) return 'script-transform';
  if ('createEncodedStreams' in RTCRtpSender.prototype) return 'insertable-streams';
  return 'none';
}
