import i18next from 'i18next';
import { initReactI18next } from 'react-i18next';
import { en } from './en.js';
import { es } from './es.js';
import type { Widen } from './widen.js';

/** Every language has every key of the English catalogue. */
export type Messages = Widen<typeof en>;

export const LANGUAGES = ['es', 'en'] as const;
export type Language = (typeof LANGUAGES)[number];
const STORAGE_KEY = 'telesalud.language';

/** The user's choice if made, else the browser's first language we speak, else Spanish. */
function initialLanguage(): Language {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === 'es' || saved === 'en') return saved;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split('-')[0];
    if (base === 'es' || base === 'en') return base;
  }
  return 'es';
}

export function setupI18n(): typeof i18next {
  void i18next.use(initReactI18next).init({
    // Each area adds its own catalogue (web/src/<area>/messages.ts) when its chunk loads: addAreaMessages.
    resources: { en: { translation: en }, es: { translation: es } },
    lng: initialLanguage(),
    fallbackLng: 'es',
    // React escapes already.
    interpolation: { escapeValue: false },
    initAsync: false,
  });
  document.documentElement.lang = i18next.language;
  i18next.on('languageChanged', (lng) => {
    document.documentElement.lang = lng;
    localStorage.setItem(STORAGE_KEY, lng);
  });
  return i18next;
}

/**
 * An area's words (portal, clinic, admin), under its name, added by the area's chunk when it
 * loads: a patient's phone never downloads the clinician's or the administrator's catalogue.
 */
export function addAreaMessages(area: 'portal' | 'clinic' | 'admin', english: object, spanish: object): void {
  i18next.addResourceBundle('en', 'translation', { [area]: english }, true, true);
  i18next.addResourceBundle('es', 'translation', { [area]: spanish }, true, true);
}
