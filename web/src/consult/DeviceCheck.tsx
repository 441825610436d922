import { useEffect, useRef, useState, type ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { e2eeMethod } from './e2ee/e2ee-support.js';
import { listDevices, openLocalMedia, stopStream, type DeviceChoice, type DeviceLists, type MediaProblem } from './local-media.js';
import { VideoTile } from './VideoTile.js';

/**
 * Camera and microphone preview and choice before joining: one click to go on. When the
 * browser blocks the devices the page says how to unblock them, and joining still works
 * (to listen and be heard in chat).
 */
export function DeviceCheck({ onJoin, notice }: { onJoin(stream: MediaStream): void; /** Shown under the title (a guest's appointment time). */ notice?: ReactNode }) {
  const { t } = useTranslation();
  const [choice, setChoice] = useState<DeviceChoice>({});
  const [stream, setStream] = useState<MediaStream>();
  const [problem, setProblem] = useState<MediaProblem>();
  const [devices, setDevices] = useState<DeviceLists>({ cameras: [], microphones: [] });
  const [attempt, setAttempt] = useState(0);
  const handedOver = useRef(false);
  const current = useRef<MediaStream | undefined>(undefined);

  useEffect(() => {
    let cancelled = false;
    void openLocalMedia(choice).then(async (result) => {
      if (cancelled) return stopStream(result.stream);
      stopStream(current.current);
      current.current = result.stream;
      setStream(result.stream);
      setProblem(result.problem);
      setDevices(await listDevices().catch(() => ({ cameras: [], microphones: [] })));
    });
    return () => {
      cancelled = true;
    };
  }, [choice, attempt]);

  // Leaving the page without joining releases the camera.
  useEffect(() => () => void (!handedOver.current && stopStream(current.current)), []);

  const problemText = problem === 'blocked' ? t('consult.blocked') : problem === 'not-found' ? t('consult.notFound') : problem === 'in-use' ? t('consult.inUse') : problem ? t('consult.otherProblem') : undefined;
  const videoTrack = stream?.getVideoTracks()[0] ?? null;
  return (
    <main className="narrow stack" data-testid="device-check">
      <h1>{t('consult.checkTitle')}</h1>
      {notice}
      <p>{t('consult.checkIntro')}</p>
      <VideoTile track={videoTrack} muted mirrored label={t('consult.you')} />
      {problemText && (
        <div role="alert" className="warning" data-testid="media-problem" data-problem={problem}>
          <p>{problemText}</p>
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            {t('consult.retry')}
          </button>
        </div>
      )}
      {e2eeMethod() === 'none' && (
        <p role="alert" className="warning">
          {t('consult.e2eeUnsupported')}
        </p>
      )}
      <label>
        {t('consult.camera')}
        <select value={choice.cameraId ?? videoTrack?.getSettings().deviceId ?? ''} onChange={(e) => setChoice({ ...choice, cameraId: e.target.value })}>
          {devices.cameras.length === 0 && <option value="">{t('consult.noCamera')}</option>}
          {devices.cameras.map((d, i) => (
            <option key={d.deviceId || i} value={d.deviceId}>
              {d.label || `${t('consult.camera')} ${i + 1}`}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t('consult.microphone')}
        <select value={choice.microphoneId ?? stream?.getAudioTracks()[0]?.getSettings().deviceId ?? ''} onChange={(e) => setChoice({ ...choice, microphoneId: e.target.value })}>
          {devices.microphones.map((d, i) => (
            <option key={d.deviceId || i} value={d.deviceId}>
              {d.label || `${t('consult.microphone')} ${i + 1}`}
            </option>
          ))}
        </select>
      </label>
      <button
        type="button"
        className="primary"
        data-testid="join"
        disabled={!stream}
        onClick={() => {
          if (!stream) return;
          handedOver.current = true;
          onJoin(stream);
        }}
      >
        {t('consult.join')}
      </button>
    </main>
  );
}
