/**
 * The version of the privacy notice a patient accepts for telehealth. The notice's text lives in
 * the web app (web/src/privacy/, Spanish and English); change this whenever its substance changes
 * (what is stored, why, for how long, who sees it): every patient is then asked to accept again
 * before their next consultation, and the consents already given keep the version they were for.
 */
export const PRIVACY_NOTICE_VERSION = '2026-11-22.2';
