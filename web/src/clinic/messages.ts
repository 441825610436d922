import type { Widen } from '../i18n/widen.js';

/** The clinic area's words, in English; messages.es below has every key. */
export const clinicEn = {
  title: 'Clinic',
};

export const clinicEs: Widen<typeof clinicEn> = {
  title: 'Clinic',
};
