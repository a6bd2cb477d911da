/**
 * "Open to the world" by what a range admits, not by how it is spelled: the
 * config rules (infra/config.ts) and the policy pack (policy/rules.ts) read
 * ranges through infra/cidr.ts. Written as the attacker would try them.
 */
import { parseCidr, worldOpenReason } from '../infra/cidr';
import { parseStackConfig } from '../infra/config';
import { appliesTo, securityRules, stackRules } from '../policy/rules';
import { TEST_SSH_PUBLIC_KEY } from './support/pulumi-mocks';

const SG = 'aws:ec2/securityGroup:SecurityGroup';
const SG_RULE = 'aws:ec2/securityGroupRule:SecurityGroupRule';
const VPC_INGRESS = 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule';

describe('what a range admits', () => {
  test.each([
    [['0.0.0.0/0'], 'the whole IPv4 internet'],
    [['0.0.0.0/1', '128.0.0.0/1'], 'split into halves'],
    [['0.0.0.0/2', '64.0.0.0/2', '128.0.0.0/2', '192.0.0.0/2'], 'split into quarters'],
    [['8.0.0.0/8'], 'one /8'],
    [['203.0.0.0/17', '203.0.128.0/17', '204.0.0.0/17'], 'three /17s, each under the limit'],
    [['::/0'], 'the whole IPv6 internet'],
    [['0::/0'], '::/0 spelled another way'],
    [['0000:0000::/0'], '::/0 spelled a third way'],
    [['2000::/3'], 'all global unicast IPv6'],
    [['2001:db8::/47'], 'an IPv6 range wider than a /48'],
  ])('%j is open to the world (%s)', (ranges) => {
    expect(worldOpenReason(ranges)).toMatch(/open to the world$/);
  });

  test.each([
    [['203.0.113.7/32'], 'one address'],
    [['198.51.0.0/16'], 'exactly a /16'],
    [['203.0.0.0/17', '203.0.128.0/17'], 'two /17s: a /16 in all'],
    [['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'], 'private ranges, however wide'],
    [['100.64.0.0/10'], 'carrier-grade NAT'],
    [['2001:db8:1::/48'], 'one IPv6 site'],
    [['fd00::/8'], 'unique-local IPv6'],
  ])('%j is not (%s)', (ranges) => {
    expect(worldOpenReason(ranges)).toBeUndefined();
  });

  test('the reason names the ranges and the limit', () => {
    expect(worldOpenReason(['0.0.0.0/1', '128.0.0.0/1'])).toBe('0.0.0.0/1, 128.0.0.0/1 admit more public IPv4 addresses than a /16: open to the world');
  });

  test('what does not parse counts as open', () => {
    expect(worldOpenReason(['10.0.0.0/8', 'everyone'])).toBe('everyone: not an address range, so counted as open to the world');
  });

  test.each([
    ['10.0.0.0/33', /"10.0.0.0\/33" is not an address range/],
    ['10.1/16', /IPv4 needs four decimal parts/],
    ['0x0a.0.0.0/8', /IPv4 needs four decimal parts/],
    ['203.0.113.7/24', /"203.0.113.7\/24" has bits set past its \/24: write 203.0.113.0\/24 for the range, or 203.0.113.7\/32 for the one address/],
    ['2001:db8::1/64', /has bits set past its \/64: write 2001:db8::\/64/],
  ])('%s is refused: %s', (text, message) => {
    expect(parseCidr(text)).toMatch(message);
  });
});

describe('the policy pack, on every form of ingress', () => {
  const fired = (type: string, props: Record<string, unknown>, stack = 'dev') =>
    securityRules.filter((r) => appliesTo(r, type)).flatMap((r) => r.check(props, { stack, type }).map((m) => `${r.name}: ${m}`));

  test.each([
    ['inline, split halves', SG, { ingress: [{ protocol: 'tcp', fromPort: 22, toPort: 22, cidrBlocks: ['0.0.0.0/1', '128.0.0.0/1'] }] }],
    ['inline, halves in two rules', SG, { ingress: [{ protocol: 'tcp', fromPort: 22, toPort: 22, cidrBlocks: ['0.0.0.0/1'] }, { protocol: 'tcp', fromPort: 20, toPort: 30, cidrBlocks: ['128.0.0.0/1'] }] }],
    ['inline, IPv6', SG, { ingress: [{ protocol: 'tcp', fromPort: 22, toPort: 22, ipv6CidrBlocks: ['2000::/3'] }] }],
    ['inline, every protocol by number', SG, { ingress: [{ protocol: '-1', fromPort: 0, toPort: 0, cidrBlocks: ['0.0.0.0/0'] }] }],
    ['a SecurityGroupRule', SG_RULE, { type: 'ingress', protocol: 'tcp', fromPort: 22, toPort: 22, cidrBlocks: ['0.0.0.0/1', '128.0.0.0/1'] }],
    ['a VPC ingress rule', VPC_INGRESS, { ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidrIpv4: '0.0.0.0/0' }],
    ['a VPC ingress rule, IPv6, all protocols', VPC_INGRESS, { ipProtocol: '-1', cidrIpv6: '::/0' }],
  ])('SSH open in prod through %s is refused', (_what, type, props) => {
    expect(fired(type, props, 'prod-eu')).toContainEqual(expect.stringMatching(/^no-public-ssh-in-prod: SSH in prod \(port 22\): .* open to the world$/));
  });

  test('an egress SecurityGroupRule is not ingress', () => {
    expect(fired(SG_RULE, { type: 'egress', protocol: '-1', fromPort: 0, toPort: 0, cidrBlocks: ['0.0.0.0/0'] }, 'prod')).toEqual([]);
  });

  test.each([
    // One half alone is wider than a /16: refused by itself, not only with its other half.
    ['PostgreSQL to half the internet', VPC_INGRESS, { ipProtocol: '6', fromPort: 5432, toPort: 5432, cidrIpv4: '0.0.0.0/1' }, ['no-postgres-from-anywhere', 'only-web-and-ssh-from-anywhere']],
    ['PostgreSQL to all of IPv6', SG_RULE, { type: 'ingress', protocol: 'tcp', fromPort: 5432, toPort: 5432, ipv6CidrBlocks: ['::/0'] }, ['no-postgres-from-anywhere', 'only-web-and-ssh-from-anywhere']],
    ['the app port to a /8', SG, { ingress: [{ protocol: 'tcp', fromPort: 3000, toPort: 3000, cidrBlocks: ['8.0.0.0/8'] }] }, ['only-web-and-ssh-from-anywhere']],
    ['HTTPS by protocol number', SG, { ingress: [{ protocol: '6', fromPort: 443, toPort: 443, cidrBlocks: ['0.0.0.0/0'] }] }, []],
    ['the app port to a VPN /24', SG, { ingress: [{ protocol: 'tcp', fromPort: 3000, toPort: 3000, cidrBlocks: ['198.51.100.0/24'] }] }, []],
  ])('%s', (_what, type, props, expected) => {
    expect(fired(type, props).map((m) => m.split(':')[0])).toEqual(expected);
  });

  describe('split over several resources', () => {
    const rule = stackRules.find((r) => r.name === 'no-world-open-port-across-resources')!;
    const slice = (i: number, cidr: string) => ({ type: VPC_INGRESS, name: `ssh-${i}`, props: { ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidrIpv4: cidr } });
    // Three /17s, each allowed alone: together more than a /16.
    const slices = [slice(1, '203.0.0.0/17'), slice(2, '203.0.128.0/17'), slice(3, '204.0.0.0/17')];

    test('each resource alone passes the resource rules', () => {
      for (const r of slices) expect(fired(r.type, r.props, 'prod')).toEqual([]);
    });

    test('together they are refused in prod, naming every resource', () => {
      expect(rule.check(slices, { stack: 'prod' })).toEqual([
        'ssh-1, ssh-2, ssh-3 together: SSH in prod (port 22): 203.0.0.0/17, 203.0.128.0/17, 204.0.0.0/17 admit more public IPv4 addresses than a /16: open to the world',
      ]);
    });

    test('outside prod, SSH may be open; the app port may not', () => {
      expect(rule.check(slices, { stack: 'dev' })).toEqual([]);
      const app = slices.map((r) => ({ ...r, props: { ...r.props, fromPort: 3000, toPort: 3000 } }));
      expect(rule.check(app, { stack: 'dev' })).toEqual([expect.stringMatching(/^ssh-1, ssh-2, ssh-3 together: ingress tcp 3000-3000, .*open to the world; only 22, 80, 443 may be/)]);
    });

    test('what one resource opens alone is reported there, not twice', () => {
      const open = [slice(1, '0.0.0.0/0'), slice(2, '203.0.0.0/17')];
      expect(rule.check(open, { stack: 'prod' })).toEqual([]);
      expect(fired(open[0].type, open[0].props, 'prod')).toHaveLength(1);
    });
  });
});

describe('the config rule for SSH', () => {
  const prod = (cidrs: string[]) => () =>
    parseStackConfig(
      {
        sshAllowedCidrs: JSON.stringify(cidrs),
        domainName: 'cemetery.example.org',
        hostedZoneId: 'Z0123456789ABCDEFGHIJ',
        alertEmail: 'oncall@example.org',
        instanceType: 'c7i.xlarge',
        sshPublicKey: TEST_SSH_PUBLIC_KEY,
      },
      'prod',
      'eu-central-1',
      { preview: true },
    );

  test.each([
    [['0.0.0.0/1', '128.0.0.0/1'], /sshAllowedCidrs = \["0.0.0.0\/1","128.0.0.0\/1"\]: prod does not open SSH to the whole internet \(0.0.0.0\/1, 128.0.0.0\/1 admit more public IPv4 addresses than a \/16: open to the world\)/],
    [['8.0.0.0/8'], /prod does not open SSH to the whole internet \(8.0.0.0\/8 admits more/],
    [['2001:db8::/48'], /sshAllowedCidrs.0 = "2001:db8::\/48": expected IPv4 CIDRs such as 203.0.113.7\/32: "2001:db8::\/48" is IPv6, and the VPC is IPv4 only/],
    [['198.51.100.7/24'], /expected IPv4 CIDRs such as 203.0.113.7\/32: "198.51.100.7\/24" has bits set past its \/24/],
  ])('prod with %j is refused', (cidrs, message) => {
    expect(prod(cidrs)).toThrow(message);
  });

  test('prod with a VPN range and a private one is accepted', () => {
    expect(prod(['198.51.100.0/28', '10.0.0.0/8'])().sshAllowedCidrs).toEqual(['198.51.100.0/28', '10.0.0.0/8']);
  });
});
