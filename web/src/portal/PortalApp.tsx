import { useTranslation } from 'react-i18next';

/** The patient portal (/portal/…, /invite/…): loaded only when a patient goes there. */
export default function PortalApp({ path }: { path: string }) {
  const { t } = useTranslation();
  return <main data-path={path}><h1>{t('portal.title')}</h1></main>;
}
