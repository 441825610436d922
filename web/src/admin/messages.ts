import type { Widen } from '../i18n/widen.js';

/** The admin area's words, in English; messages.es below has every key. */
export const adminEn = {
  title: 'Admin',
};

export const adminEs: Widen<typeof adminEn> = {
  title: 'Admin',
};
