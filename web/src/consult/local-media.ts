/**
 * The camera and microphone of this page: device choice and preview before joining, then the
 * tracks every peer connection sends. A participant without a camera (or who refused it)
 * still joins — with audio only, or even without a microphone to listen in.
 */
export type MediaProblem = 'blocked' | 'not-found' | 'in-use' | 'other';

export interface DeviceChoice {
  cameraId?: string;
  microphoneId?: string;
}

export interface DeviceLists {
  cameras: MediaDeviceInfo[];
  microphones: MediaDeviceInfo[];
}

// 640×480 is what a consultation needs and what a phone uplink carries.
const VIDEO: MediaTrackConstraints = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24, max: 30 } };

export function problemOf(err: unknown): MediaProblem {
  const name = err instanceof DOMException ? err.name : '';
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'blocked';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'not-found';
  if (name === 'NotReadableError' || name === 'AbortError') return 'in-use';
  return 'other';
}

export async function listDevices(): Promise<DeviceLists> {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return { cameras: devices.filter((d) => d.kind === 'videoinput'), microphones: devices.filter((d) => d.kind === 'audioinput') };
}

/** Camera and microphone together, or whatever part of them the browser grants. */
export async function openLocalMedia(choice: DeviceChoice): Promise<{ stream: MediaStream; problem?: MediaProblem }> {
  const audio: MediaTrackConstraints = { echoCancellation: true, noiseSuppression: true, ...(choice.microphoneId ? { deviceId: { exact: choice.microphoneId } } : {}) };
  const video: MediaTrackConstraints = { ...VIDEO, ...(choice.cameraId ? { deviceId: { exact: choice.cameraId } } : {}) };
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio, video }) };
  } catch (err) {
    const problem = problemOf(err);
    for (const only of [{ audio }, { video }]) {
      try {
        return { stream: await navigator.mediaDevices.getUserMedia(only), problem };
      } catch {
        // try the other half
      }
    }
    return { stream: new MediaStream(), problem };
  }
}

export function stopStream(stream: MediaStream | undefined): void {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

export async function openScreen(): Promise<MediaStreamTrack | undefined> {
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { max: 15 } }, audio: false });
    return stream.getVideoTracks()[0];
  } catch {
    return undefined;
  }
}
