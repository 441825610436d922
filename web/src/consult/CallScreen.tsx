import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { MAX_CHAT_CHARS, type CallSession, type CallState, type PeerView } from './call-session.js';
import { HostPanel } from './HostPanel.js';
import { VideoTile } from './VideoTile.js';

/** The call itself: the peers' videos, our own, the controls, the chat, and what the call's protection is. */
export function CallScreen({ session, state, appointmentId }: { session: CallSession; state: CallState; appointmentId: string | undefined }) {
  const { t } = useTranslation();
  const allEncrypted = state.e2ee && state.peers.every((p) => p.info.e2ee);
  return (
    <main className="call" data-testid="call">
      <div className="status-bar">
        <span className={`badge ${allEncrypted ? 'ok' : 'bad'}`} data-testid="e2ee-status" data-state={allEncrypted ? 'on' : 'off'}>
          {allEncrypted ? '🔒 ' + t('consult.e2eeOn') : '⚠ ' + t('consult.e2eeOff')}
        </span>
        <span className={`badge quality-${state.quality}`} data-testid="quality" data-level={state.quality}>
          {t(`consult.quality.${state.quality}`)}
        </span>
      </div>
      {state.signaling === 'reconnecting' && (
        <p role="status" className="warning" data-testid="reconnecting">
          {t('consult.reconnecting')}
        </p>
      )}
      {state.fallback > 0 && !state.audioOnly && (
        <p role="status" className="notice" data-testid="fallback" data-step={state.fallback}>
          {state.fallback === 1 ? t('consult.fallback1') : t('consult.fallback2')}
        </p>
      )}
      {state.muteRequested && <p role="status" className="notice">{t('consult.muteRequested')}</p>}
      <div className="grid" data-count={state.peers.length + 1}>
        {state.peers.map((peer) => (
          <PeerTile key={peer.info.id} peer={peer} />
        ))}
        <VideoTile track={state.cameraOff && !state.sharing ? null : session.outgoingVideo} muted mirrored={!state.sharing} label={t('consult.you')} testId="self-tile" />
      </div>
      {state.peers.length === 0 && <p>{t('consult.alone')}</p>}
      <div className="controls" role="toolbar">
        <button type="button" aria-pressed={state.muted} data-testid="toggle-mute" onClick={() => session.toggleMute()}>
          {state.muted ? t('consult.unmute') : t('consult.mute')}
        </button>
        <button type="button" aria-pressed={state.cameraOff} data-testid="toggle-camera" onClick={() => session.toggleCamera()}>
          {state.cameraOff ? t('consult.cameraOn') : t('consult.cameraOff')}
        </button>
        {'getDisplayMedia' in (navigator.mediaDevices ?? {}) && (
          <button type="button" aria-pressed={state.sharing} data-testid="toggle-share" onClick={() => void session.toggleScreenShare()}>
            {state.sharing ? t('consult.stopShare') : t('consult.share')}
          </button>
        )}
        <button type="button" aria-pressed={state.audioOnly} data-testid="toggle-audio-only" onClick={() => session.setAudioOnly(!state.audioOnly)}>
          {state.audioOnly ? t('consult.videoOn') : t('consult.audioOnly')}
        </button>
        <button type="button" className="danger" data-testid="hang-up" onClick={() => session.hangUp()}>
          {state.self?.host ? t('consult.endForAll') : t('consult.hangUp')}
        </button>
      </div>
      <Chat session={session} state={state} />
      {state.self?.host && <HostPanel appointmentId={appointmentId} lobby={state.lobby} onAdmit={(id) => session.admit(id)} onDecline={(id) => session.decline(id)} />}
    </main>
  );
}

function PeerTile({ peer }: { peer: PeerView }) {
  const { t } = useTranslation();
  const encryptionText = { encrypted: t('consult.peerEncrypted'), 'waiting-for-key': t('consult.peerWaitingKey'), 'cannot-decrypt': t('consult.peerCannotDecrypt'), 'not-encrypted': t('consult.peerNotEncrypted') }[peer.encryption];
  return (
    <VideoTile stream={peer.stream} label={`${peer.info.displayName} · ${t(`consult.kind.${peer.info.kind}`)}`} testId="peer-tile">
      <span className={`badge ${peer.encryption === 'encrypted' ? 'ok' : 'bad'}`} data-testid="peer-encryption" data-state={peer.encryption}>
        {encryptionText}
      </span>
      {peer.link !== 'connected' && (
        <span className="badge" data-testid="peer-link" data-state={peer.link}>
          {peer.link === 'reconnecting' ? t('consult.peerReconnecting') : t('consult.peerConnecting')}
        </span>
      )}
      {peer.sample && <span className={`dot quality-${peer.sample.level}`} title={t(`consult.quality.${peer.sample.level}`)} />}
      {peer.safetyCode && (
        <span className="safety" title={t('consult.safetyHelp')}>
          {t('consult.safetyCode')}: <code data-testid="safety-code">{peer.safetyCode}</code>
        </span>
      )}
    </VideoTile>
  );
}

function Chat({ session, state }: { session: CallSession; state: CallState }) {
  const { t } = useTranslation();
  const [text, setText] = useState('');
  const end = useRef<HTMLLIElement>(null);
  useEffect(() => {
    // Braces: newer browsers return a promise from scrollIntoView, and an effect may return only a cleanup.
    void end.current?.scrollIntoView({ block: 'nearest' });
  }, [state.chat.length]);
  function submit(event: FormEvent) {
    event.preventDefault();
    void session.sendChat(text);
    setText('');
  }
  return (
    <section className="panel chat" aria-labelledby="chat-title">
      <h2 id="chat-title">{t('consult.chat')}</h2>
      <ul data-testid="chat-log" aria-live="polite">
        {state.chat.map((line) => (
          <li key={line.id} className={line.own ? 'own' : undefined}>
            <strong>{line.own ? t('consult.you') : line.name}:</strong> {line.text}
          </li>
        ))}
        <li ref={end} aria-hidden="true" />
      </ul>
      <form onSubmit={submit} className="row">
        <input type="text" maxLength={MAX_CHAT_CHARS} value={text} onChange={(e) => setText(e.target.value)} placeholder={t('consult.chatPlaceholder')} aria-label={t('consult.chatPlaceholder')} data-testid="chat-input" />
        <button type="submit" data-testid="chat-send">
          {t('consult.send')}
        </button>
      </form>
    </section>
  );
}
