import { utils } from 'ssh2';

/**
 * An ed25519 key pair in OpenSSH form, for tests. ssh2 1.17.0's own
 * generateKeyPairSync('ed25519') drops every leading zero byte of the public
 * key (lib/keygen.js, parseDERs: the loop meant to skip the BIT STRING's
 * unused-bits byte strips key bytes too), so a key whose first byte is 0
 * (1 in 256) comes out 31 bytes long and parses as malformed: a test run
 * that made such a key failed by chance. Generate until the key is whole.
 */
export function ed25519KeyPair(opts: { comment?: string } = {}): { public: string; private: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync('ed25519', opts);
    if (!(utils.parseKey(pair.public) instanceof Error) && !(utils.parseKey(pair.private) instanceof Error)) return pair;
  }
}
