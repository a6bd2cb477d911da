/**
 * OpenSSH keys, parsed by ssh2's key parser (the SSH library the tests' sshd
 * stand-in uses too), not by a pattern: a key is valid when its wire format
 * parses, and two keys are the same when their public blobs are.
 */
import { createHash } from 'node:crypto';
import { utils } from 'ssh2';

export type SshPublicKey = { type: string; blob: Buffer; fingerprint: string };

const ofParsed = (parsed: ReturnType<typeof utils.parseKey>, privateKey: boolean): SshPublicKey | string => {
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key instanceof Error) return key.message;
  if (key.isPrivateKey() !== privateKey) return privateKey ? 'a public key, not a private one' : 'a private key, not a public one';
  const blob = key.getPublicSSH();
  return { type: key.type, blob, fingerprint: fingerprintOf(blob) };
};

/** As `ssh-keygen -l` prints it: SHA256:<base64 of the blob's SHA-256, unpadded>. */
export const fingerprintOf = (blob: Buffer) => `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;

/** `ssh-ed25519 AAAA... comment` (authorized_keys form) → the key, or why it is not one. */
export const parsePublicKey = (text: string) => ofParsed(utils.parseKey(text.trim()), false);

/** An unencrypted OpenSSH/PEM private key → its public key, or why it is not one. */
export const publicKeyOfPrivate = (text: string) => ofParsed(utils.parseKey(text), true);

export const sameKey = (a: SshPublicKey, b: SshPublicKey) => a.blob.equals(b.blob);
