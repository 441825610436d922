import { useEffect, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, api, backToSignIn } from '../app/api.js';
import { currentSession } from './session.js';

/** What the node says an app asks for (src/auth/oauth/authorize-routes.ts). */
interface AuthorizationRequest {
  client: { name: string; type: 'public' | 'confidential'; redirectOrigin: string };
  scopes: { level: 'patient' | 'user'; type: string; interactions: string[] }[];
  launchPatient: boolean;
  offlineAccess: boolean;
  notGranted: string[];
  problem?: ApproverProblem;
}

type ApproverProblem = 'patient-context-needs-patient' | 'no-patient-record' | 'role-not-supported';
const APPROVER_PROBLEMS: readonly string[] = ['patient-context-needs-patient', 'no-patient-record', 'role-not-supported'];
type PageProblem = 'unknown-client' | 'bad-redirect-uri' | 'invalid' | 'failed' | ApproverProblem;
const PAGE_PROBLEMS: readonly string[] = ['unknown-client', 'bad-redirect-uri', 'invalid', 'failed', ...APPROVER_PROBLEMS];

/**
 * `/authorize`: a signed-in person decides whether an app (SMART App Launch) may use their record.
 * The node sent the browser here from /oauth2/authorize with the app's request in the query; the
 * decision goes back to the node, which answers where to send the browser (the app, with a code
 * or with access_denied). Nothing is shared until the person presses Allow.
 */
export function AuthorizePage() {
  const { t } = useTranslation();
  const [request, setRequest] = useState<AuthorizationRequest>();
  const [problem, setProblem] = useState<PageProblem>();
  const [busy, setBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  const query = location.search;

  useEffect(() => {
    let live = true;
    const params = new URLSearchParams(query);
    const fromServer = params.get('problem');
    if (fromServer) {
      setProblem(PAGE_PROBLEMS.includes(fromServer) ? (fromServer as PageProblem) : 'invalid');
      return;
    }
    (async () => {
      // Not signed in: to sign-in, and back here with the same request afterwards.
      if (!(await currentSession())) return backToSignIn();
      const shown = await api<AuthorizationRequest>('GET', `/api/oauth/authorization${query}`);
      if (live) setRequest(shown);
    })().catch((err: unknown) => {
      if (!live) return;
      if (err instanceof ApiError && err.status === 401) return backToSignIn();
      setProblem(err instanceof ApiError && err.status === 400 ? (err.code === 'unknown-client' || err.code === 'bad-redirect-uri' ? err.code : 'invalid') : 'failed');
    });
    return () => {
      live = false;
    };
  }, [query]);

  // Screen readers and keyboards start at the question once it is asked.
  useEffect(() => heading.current?.focus(), [request, problem]);

  async function decide(decision: 'approve' | 'deny') {
    setBusy(true);
    try {
      const { redirect } = await api<{ redirect: string }>('POST', '/api/oauth/authorization', { ...Object.fromEntries(new URLSearchParams(query)), decision });
      // Back to the app (its own origin): a full navigation, never inside this page.
      window.location.assign(redirect);
    } catch (err) {
      setBusy(false);
      setProblem(err instanceof ApiError && err.code && APPROVER_PROBLEMS.includes(err.code) ? (err.code as ApproverProblem) : 'failed');
    }
  }

  if (problem && !request) {
    return (
      <main className="narrow">
        <h1 ref={heading} tabIndex={-1}>{t('app.name')}</h1>
        <p role="alert" className="error" data-testid="authorize-problem">{t(`authorize.problems.${problem}`)}</p>
      </main>
    );
  }
  if (!request) return <main className="narrow" aria-busy="true"><p>{t('authorize.loading')}</p></main>;

  const app = request.client.name;
  const blocked = request.problem ?? (problem && APPROVER_PROBLEMS.includes(problem) ? problem : undefined);
  const what = (type: string) => t(`authorize.types.${type === '*' ? 'all' : type}`, { defaultValue: type });
  const writes = (interactions: string[]) => interactions.some((i) => i === 'c' || i === 'u' || i === 'd');
  return (
    <main className="narrow">
      <h1 ref={heading} tabIndex={-1}>{t('authorize.title', { app })}</h1>
      <p id="authorize-intro">{t('authorize.intro', { app })}</p>
      <ul aria-labelledby="authorize-intro" data-testid="authorize-scopes">
        {request.launchPatient && <li>{t('authorize.patientContext')}</li>}
        {request.scopes.map((s) => (
          <li key={`${s.level}/${s.type}.${s.interactions.join('')}`}>
            {t(`authorize.${writes(s.interactions) ? 'write' : 'read'}${s.level === 'patient' ? 'Patient' : 'User'}`, { what: what(s.type) })}
          </li>
        ))}
      </ul>
      {request.notGranted.length > 0 && <p>{t('authorize.notGranted', { scopes: request.notGranted.join(', ') })}</p>}
      {request.client.type === 'public' && <p>{t('authorize.publicApp')}</p>}
      <p>{t(request.offlineAccess ? 'authorize.offline' : 'authorize.lasts')}</p>
      <p>{t('authorize.returnTo', { origin: request.client.redirectOrigin })}</p>
      {blocked && <p role="alert" className="error" data-testid="authorize-problem">{t(`authorize.problems.${blocked}`)}</p>}
      {problem === 'failed' && <p role="alert" className="error">{t('authorize.problems.failed')}</p>}
      <div className="row">
        <button type="button" className="primary" disabled={busy || blocked !== undefined} onClick={() => void decide('approve')} data-testid="authorize-allow">
          {busy ? t('authorize.busy') : t('authorize.allow')}
        </button>
        <button type="button" disabled={busy} onClick={() => void decide('deny')} data-testid="authorize-deny">
          {t('authorize.deny')}
        </button>
      </div>
    </main>
  );
}
