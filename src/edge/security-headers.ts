import { isIP } from 'node:net';

/**
 * Headers every response carries. A route that sets its own Content-Security-Policy (the web
 * app's HTML) keeps it; everything else gets the API's: nothing may load, nothing may frame it.
 */
export function securityHeaders(publicUrl: string): Record<string, string> {
  const host = new URL(publicUrl).hostname.replace(/^\[|\]$/g, '');
  // Preload only makes sense for a real, public name; a browser would pin localhost or an IP for everyone.
  const realName = host.includes('.') && isIP(host) === 0 && !/(?:^|\.)(?:localhost|local|test|internal|example|invalid)$/.test(host);
  return {
    'strict-transport-security': `max-age=63072000; includeSubDomains${realName ? '; preload' : ''}`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    // Camera, microphone and screen sharing for the consultation, on our own origin only. Passkeys
    // (publickey-credentials-*) stay on our origin too; every other powerful feature is off.
    'permissions-policy': [
      'camera=(self)', 'microphone=(self)', 'display-capture=(self)', 'publickey-credentials-get=(self)', 'publickey-credentials-create=(self)',
      'geolocation=()', 'payment=()', 'usb=()', 'serial=()', 'hid=()', 'bluetooth=()', 'midi=()', 'accelerometer=()', 'gyroscope=()',
      'magnetometer=()', 'ambient-light-sensor=()', 'autoplay=()', 'fullscreen=()', 'picture-in-picture=()', 'screen-wake-lock=()',
      'xr-spatial-tracking=()', 'idle-detection=()', 'browsing-topics=()', 'clipboard-read=()', 'clipboard-write=()', 'encrypted-media=()',
      'gamepad=()', 'local-fonts=()', 'otp-credentials=()', 'storage-access=()', 'window-management=()', 'web-share=()', 'sync-xhr=()',
    ].join(', '),
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'x-frame-options': 'DENY',
    'x-permitted-cross-domain-policies': 'none',
    'origin-agent-cluster': '?1',
  };
}

export const API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
