import { lazy, Suspense, useEffect, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { backToSignIn } from '../app/api.js';
import { navigate } from '../app/navigation.js';
import { currentSession, type Account } from '../auth/session.js';
import { ConsentStep } from '../privacy/ConsentStep.js';
import { telehealthConsent } from '../privacy/consent.js';
import { CallSession } from './call-session.js';
import { CallScreen } from './CallScreen.js';
import { DeviceCheck } from './DeviceCheck.js';
import { useGuestPreview } from './guest-preview.js';
import { clinicZoneName, formatClinicTime } from '../app/clinic-time.js';
import { useCallState } from './useCallState.js';
import { VideoTile } from './VideoTile.js';

const GUEST_TOKEN = /^[A-Za-z0-9_-]{16,64}$/;
const PARTICIPANT_ID = /^[A-Za-z0-9_-]{16,64}$/;

// The clinician's call with the chart beside it: its own chunk, so a patient's phone never loads it.
const ClinicianCall = lazy(() => import('../clinic/ClinicianCall.js'));

/** `?admit=<participant id>` (the schedule's "join and admit"): taken from the address once, so a reload does not admit again. */
function takeAdmitRequest(): string | undefined {
  const params = new URLSearchParams(location.search);
  const id = params.get('admit');
  if (id === null) return undefined;
  params.delete('admit');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : ''));
  return PARTICIPANT_ID.test(id) ? id : undefined;
}

/** Takes the guest token from the address (#token) and removes it, so it is not left in history or shown on screen. */
function takeGuestToken(): string | undefined {
  const token = location.hash.slice(1);
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  return GUEST_TOKEN.test(token) ? token : undefined;
}

/**
 * /consult/<Appointment id> (signed in) and /consult/guest#<token>: device check → join →
 * waiting room → call.
 */
export function ConsultPage({ appointmentId, guest }: { appointmentId?: string; guest?: boolean }) {
  const { t, i18n } = useTranslation();
  const [guestToken] = useState(() => (guest ? takeGuestToken() : undefined));
  const preview = useGuestPreview(guestToken);
  const [ready, setReady] = useState(!!guest);
  const [session, setSession] = useState<CallSession>();
  const [account, setAccount] = useState<Account>();
  const [admitRequest] = useState(() => (guest ? undefined : takeAdmitRequest()));
  // A patient who has not accepted the current privacy notice is asked first: the notice version to accept.
  const [consentFor, setConsentFor] = useState<string>();

  useEffect(() => {
    if (guest) return;
    let cancelled = false;
    void currentSession()
      .then(async (account) => {
        if (cancelled) return;
        if (!account) return navigate(`/sign-in?next=${encodeURIComponent(location.pathname)}`, true);
        setAccount(account);
        if (account.role === 'patient') {
          const consent = await telehealthConsent();
          if (!cancelled && consent.required) setConsentFor(consent.currentVersion);
        }
        if (!cancelled) setReady(true);
      })
      .catch(() => !cancelled && setReady(true));
    return () => {
      cancelled = true;
    };
  }, [guest]);

  useEffect(() => () => session?.close(), [session]);

  if (guest && !guestToken) return <Refusal text={t('consult.noToken')} />;
  if (guest && preview.state === 'unusable') return <Refusal title={t('consult.refused.title')} text={t('consult.guestPreview.unusable')} testId="guest-link-unusable" />;
  if (!ready || preview.state === 'loading') return <main className="narrow" aria-busy="true" />;
  if (consentFor) return <ConsentStep noticeVersion={consentFor} onConsented={() => setConsentFor(undefined)} />;
  if (!session) {
    return (
      <DeviceCheck
        notice={
          preview.state === 'usable' && preview.start ? (
            <p data-testid="guest-appointment-time">
              {t('consult.guestPreview.scheduled', { time: formatClinicTime(preview.start, i18n.language, { dateStyle: 'full', timeStyle: 'short' }), zone: clinicZoneName(preview.start, i18n.language) })}
            </p>
          ) : undefined
        }
        onJoin={(media) => {
          const target = guestToken ? { guestToken } : { appointmentId: appointmentId! };
          // Only the benchmark's own build can turn encryption off; in the product this is constant true.
          const e2ee = !(__BENCH_BUILD__ && new URLSearchParams(location.search).get('e2ee') === 'off');
          const s = new CallSession({ target, media, e2ee });
          setSession(s);
          void s.start();
        }}
      />
    );
  }
  return <InCall session={session} appointmentId={appointmentId} account={account} admitRequest={admitRequest} />;
}

function InCall({ session, appointmentId, account, admitRequest }: { session: CallSession; appointmentId: string | undefined; account: Account | undefined; admitRequest: string | undefined }) {
  const { t } = useTranslation();
  const state = useCallState(session);
  // The schedule's "join and admit": once the host is in and that participant still waits, admit them (once).
  const admitted = useRef(false);
  useEffect(() => {
    if (admitted.current || !admitRequest || !state.self?.host) return;
    if (state.lobby.some((p) => p.id === admitRequest && p.e2ee)) {
      admitted.current = true;
      session.admit(admitRequest);
    }
  }, [admitRequest, session, state.self?.host, state.lobby]);
  // Refused as unauthenticated: when the session has ended meanwhile, sign in and come back to this consultation.
  const unauthenticated = state.phase === 'refused' && state.refusal?.code === 'unauthenticated' && appointmentId !== undefined;
  useEffect(() => {
    if (!unauthenticated) return;
    let live = true;
    currentSession().then((found) => live && !found && backToSignIn(), () => undefined);
    return () => {
      live = false;
    };
  }, [unauthenticated]);
  switch (state.phase) {
    case 'connecting':
      return <main className="narrow" aria-busy="true" data-testid="connecting"><p>{t('consult.joining')}</p></main>;
    case 'waiting':
      return (
        <main className="narrow stack" data-testid="waiting-room">
          <h1>{t('consult.waitingTitle')}</h1>
          <p role="status">{t('consult.waitingText')}</p>
          {state.signaling === 'reconnecting' && <p role="status" className="warning">{t('consult.reconnecting')}</p>}
          <span className={`badge ${state.e2ee ? 'ok' : 'bad'}`} data-testid="e2ee-status" data-state={state.e2ee ? 'on' : 'off'}>
            {state.e2ee ? t('consult.e2eeOn') : t('consult.e2eeOff')}
          </span>
          <VideoTile track={session.outgoingVideo} muted mirrored label={t('consult.you')} />
          <button type="button" onClick={() => session.hangUp()}>{t('consult.leave')}</button>
        </main>
      );
    case 'in-call':
      if (account?.role === 'clinician' && state.self?.host) {
        return (
          <Suspense fallback={<CallScreen session={session} state={state} appointmentId={appointmentId} />}>
            <ClinicianCall session={session} state={state} appointmentId={appointmentId} account={account} />
          </Suspense>
        );
      }
      return <CallScreen session={session} state={state} appointmentId={appointmentId} />;
    case 'ended':
      return <Refusal testId="call-ended" reason={state.endReason} text={t(`consult.ended.${state.endReason ?? 'ended'}`)} />;
    case 'refused': {
      const code = state.refusal?.code;
      const known = code === 'unauthenticated' || code === 'not-allowed' || code === 'not-found' || code === 'room-full';
      return <Refusal testId="refused" reason={code} title={t('consult.refused.title')} text={known ? t(`consult.refused.${code}`) : t('consult.refused.generic')} />;
    }
  }
}

function Refusal({ title, text, testId = 'refused', reason }: { title?: string; text: string; testId?: string; reason?: string | undefined }) {
  return (
    <main className="narrow stack" data-testid={testId} data-reason={reason}>
      {title && <h1>{title}</h1>}
      <p role="alert">{text}</p>
    </main>
  );
}
