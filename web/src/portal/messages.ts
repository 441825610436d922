import type { Widen } from '../i18n/widen.js';

/** The portal area's words, in English; messages.es below has every key. */
export const portalEn = {
  title: 'Portal',
};

export const portalEs: Widen<typeof portalEn> = {
  title: 'Portal',
};
