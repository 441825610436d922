import { useTranslation } from 'react-i18next';

/** The admin console (/admin/…): loaded only when an administrator goes there. */
export default function AdminApp({ path }: { path: string }) {
  const { t } = useTranslation();
  return <main data-path={path}><h1>{t('admin.title')}</h1></main>;
}
