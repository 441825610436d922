/**
 * Attachments a clinic exchanges, each checked by its leading bytes as well as its declared
 * type: a file that claims to be a PDF must start like one.
 */
export interface AcceptedType {
  contentType: string;
  extension: string;
  looksRight(bytes: Buffer): boolean;
}

const startsWith = (signature: number[], offset = 0) => (bytes: Buffer) => bytes.length >= offset + signature.length && signature.every((b, i) => bytes[offset + i] === b);

function isUtf8Text(bytes: Buffer): boolean {
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export const ACCEPTED_TYPES: readonly AcceptedType[] = [
  { contentType: 'application/pdf', extension: 'pdf', looksRight: startsWith([0x25, 0x50, 0x44, 0x46, 0x2d]) },
  { contentType: 'image/png', extension: 'png', looksRight: startsWith([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
  { contentType: 'image/jpeg', extension: 'jpg', looksRight: startsWith([0xff, 0xd8, 0xff]) },
  { contentType: 'text/plain', extension: 'txt', looksRight: isUtf8Text },
  { contentType: 'application/dicom', extension: 'dcm', looksRight: startsWith([0x44, 0x49, 0x43, 0x4d], 128) },
];

export function acceptedType(contentType: string | undefined): AcceptedType | undefined {
  const bare = contentType?.split(';')[0]?.trim().toLowerCase();
  return ACCEPTED_TYPES.find((t) => t.contentType === bare);
}
