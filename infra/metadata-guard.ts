/**
 * The metadata guard: only root reaches the instance metadata service. The
 * user data (host.ts) holds the host's SSH private key, and IMDSv2's hop limit
 * of 1 stops containers, not local users: without this rule the app user (or
 * anything that breaks into it) could read the key and later pose as the host
 * to a deploy. iptables, because Debian's AMIs ship it and not nft
 * (debian-cloud-images config_space/13/package_config/SYSTEM_BOOT). Rejected,
 * so a refused process fails at once; each rule added only when missing, so
 * running it again changes nothing. Pure (no Pulumi): for the user data, the
 * wait-for-host step's check and the VM tier.
 */
export const METADATA_GUARD_TAG = 'cemetery-metadata-guard';

const ENDPOINTS = [
  ['iptables', '169.254.169.254'],
  ['ip6tables', 'fd00:ec2::254'],
] as const;

const rule = (command: string, address: string, action: '-C' | '-I') =>
  `${command} -w ${action} OUTPUT -d ${address} -m owner ! --uid-owner 0 -m comment --comment ${METADATA_GUARD_TAG} -j REJECT`;

/** Installs the rules, as root: cloud-init's bootcmd at every boot (before users and SSH), and the VM tier on the local VM. */
export const metadataGuardCommand = () => ENDPOINTS.map(([command, address]) => `${rule(command, address, '-C')} 2>/dev/null || ${rule(command, address, '-I')}`).join('\n');
