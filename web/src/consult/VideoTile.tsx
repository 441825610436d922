import { useEffect, useRef, type ReactNode } from 'react';

/** One video with its caption; `muted` for the self view (no echo of our own microphone). */
export function VideoTile({ stream, track, muted, mirrored, label, children, testId }: { stream?: MediaStream | undefined; track?: MediaStreamTrack | null; muted?: boolean; mirrored?: boolean; label: string; children?: ReactNode; testId?: string }) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    const video = ref.current;
    if (!video) return;
    const source = stream ?? (track ? new MediaStream([track]) : null);
    if (video.srcObject !== source) video.srcObject = source;
    if (source) void video.play().catch(() => undefined);
  }, [stream, track]);
  return (
    <figure className="tile" data-testid={testId}>
      <video ref={ref} autoPlay playsInline muted={muted} className={mirrored ? 'mirrored' : undefined} />
      <figcaption>
        <span className="name">{label}</span>
        {children}
      </figcaption>
    </figure>
  );
}
