/** JSON schemas of WebAuthn credentials as routes take them (also the shield's positive model). */

export const b64url = { type: 'string', pattern: '^[A-Za-z0-9_-]*$', maxLength: 4096 } as const;

/** A PublicKeyCredential as JSON (what @simplewebauthn/browser hands over); the library checks the rest. */
export const credentialJson = (inner: Record<string, unknown>, required: string[]) =>
  ({
    type: 'object',
    required: ['id', 'rawId', 'type', 'response'],
    properties: {
      id: { type: 'string', pattern: '^[A-Za-z0-9_-]+$', maxLength: 1400 },
      rawId: b64url,
      type: { type: 'string', const: 'public-key' },
      authenticatorAttachment: { type: 'string', maxLength: 40 },
      clientExtensionResults: { type: 'object' },
      response: { type: 'object', required, properties: inner },
    },
  }) as const;

/** navigator.credentials.get() answered: a passkey assertion. */
export const assertionJson = credentialJson({ clientDataJSON: b64url, authenticatorData: b64url, signature: b64url, userHandle: b64url }, ['clientDataJSON', 'authenticatorData', 'signature']);
