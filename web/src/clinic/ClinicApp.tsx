import { useTranslation } from 'react-i18next';

/** The clinician workspace (/clinic/…): loaded only when a clinician goes there. */
export default function ClinicApp({ path }: { path: string }) {
  const { t } = useTranslation();
  return <main data-path={path}><h1>{t('clinic.title')}</h1></main>;
}
