// Issue 17, item 1: a function stack reads the base stack's resources through outputs named after
// their identity (lib/base-values.ts), so replacing a base resource changes every function stack
// that uses it (and so publishes a new version), while a change that replaces nothing changes none.
import { CfnResource, Tags } from 'aws-cdk-lib';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { UPDATED_IN_PLACE } from '../lib/base-values';
import { STORAGE_KINDS } from '../lib/storage-kind';
import { MessagesApp } from '../lib/app';
import { ACCESS_CONTEXT, BASE_STACK, baseValueOutput, FUNCTION_NAMES, functionStackName, resourcesOfType, synth } from './helpers';

const MODES = Object.keys(ACCESS_CONTEXT) as Array<keyof typeof ACCESS_CONTEXT>;
const cfn = (construct: { node: { defaultChild?: unknown } }) => construct.node.defaultChild as CfnResource;
const versionOf = (template: any) => resourcesOfType(template, 'AWS::Lambda::Version')[0][0];

/** Every `Fn::GetStackOutput` output name in a template. */
function stackOutputsRead(node: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(node)) {
    node.forEach((n) => stackOutputsRead(n, out));
  } else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'Fn::GetStackOutput') {
        out.add((value as any).OutputName);
      } else {
        stackOutputsRead(value, out);
      }
    }
  }
  return out;
}

/**
 * Changes that make CloudFormation replace a base resource the functions use: a property in the
 * type's createOnlyProperties, or a new logical id. `reads` is the base value whose output changes;
 * `version` says whether the function's own configuration (VPC, mount) changes, hence its version.
 */
const REPLACEMENTS: Array<{ what: string; reads: string[]; version: boolean; mutate: (b: MessagesApp) => void }> = [
  {
    what: "the functions' security group's description",
    reads: ['FunctionSecurityGroupId'],
    version: true,
    mutate: (b) => cfn(b.base.storage.functionSecurityGroup).addPropertyOverride('GroupDescription', 'Message functions: NFS out, v2'),
  },
  {
    what: "the access point's path",
    reads: ['AccessPointArn'],
    version: true,
    mutate: (b) => cfn(b.base.storage.accessPoint!).addPropertyOverride('RootDirectory.Path', '/export/lambda2'),
  },
  {
    what: "the access point's POSIX user",
    reads: ['AccessPointArn'],
    version: true,
    mutate: (b) => cfn(b.base.storage.accessPoint!).addPropertyOverride('PosixUser.Uid', '1002'),
  },
  {
    what: "a subnet's CIDR block",
    reads: ['Subnet2Id'],
    version: true,
    mutate: (b) => cfn(b.base.storage.vpc.isolatedSubnets[1]).addPropertyOverride('CidrBlock', '10.0.7.0/24'),
  },
  {
    // The subnets' and security group's template text still says `Ref: <the VPC>`: they are
    // replaced with it all the same.
    what: "the VPC's CIDR block (its subnets and security groups are replaced with it)",
    reads: ['VpcId', 'Subnet1Id', 'Subnet2Id', 'FunctionSecurityGroupId'],
    version: true,
    mutate: (b) => cfn(b.base.storage.vpc).addPropertyOverride('CidrBlock', '10.0.0.0/17'),
  },
  {
    what: "the file system's performance mode (its access point is replaced with it)",
    reads: ['FileSystemArn', 'AccessPointArn'],
    version: true,
    mutate: (b) => cfn(b.base.storage.fileSystem!).addPropertyOverride('PerformanceMode', 'maxIO'),
  },
  {
    what: "the API's protocol (a new API: routes, integrations, permissions, throttles and authorizers move)",
    reads: ['ApiId'],
    version: false,
    mutate: (b) => {
      cfn(b.base.api.httpApi).addPropertyOverride('ProtocolType', 'WEBSOCKET');
      cfn(b.base.api.httpApi).addPropertyOverride('RouteSelectionExpression', '$request.body.action');
    },
  },
  {
    what: "the alarm topic's name",
    reads: ['AlarmTopicArn'],
    version: false,
    mutate: (b) => cfn(b.base.alarmTopic.topic).addPropertyOverride('TopicName', 'EfsMessages-alarms'),
  },
];

/** Changes that update base resources in place (or touch none the functions use). */
const IN_PLACE: Array<{ what: string; context?: Record<string, unknown>; mutate?: (b: MessagesApp) => void }> = [
  { what: 'a tag on every base resource', mutate: (b) => Tags.of(b.base).add('CostCenter', '42') },
  { what: 'the storage alarm threshold (-c storageAlarmGiB)', context: { storageAlarmGiB: '20' } },
  { what: "the file system's throughput mode", mutate: (b) => cfn(b.base.storage.fileSystem!).addPropertyOverride('ThroughputMode', 'bursting') },
  { what: "the API's description", mutate: (b) => cfn(b.base.api.httpApi).addPropertyOverride('Description', 'the messages API') },
  { what: "the VPC's DNS hostnames", mutate: (b) => cfn(b.base.storage.vpc).addPropertyOverride('EnableDnsHostnames', false) },
  { what: "the alarm topic's display name", mutate: (b) => cfn(b.base.alarmTopic.topic).addPropertyOverride('DisplayName', 'Alarms') },
];

describe.each(MODES)('access=%s: base values reach the function stacks', (mode) => {
  const context = ACCESS_CONTEXT[mode];
  const before = synth({ context });
  const base = before.templates[BASE_STACK];

  test('every value a function stack reads of the base stack is an output named after its identity; nothing else crosses', () => {
    const named = ['VpcId', 'Subnet1Id', 'Subnet2Id', 'FunctionSecurityGroupId', 'FileSystemArn', 'AccessPointArn', 'ApiId', 'AlarmTopicArn'];
    const outputs = new Set(named.map((n) => baseValueOutput(base, n)));
    for (const binary of FUNCTION_NAMES) {
      const template = before.templates[functionStackName(binary)];
      const read = stackOutputsRead(template);
      // All but the VPC's id (the function's configuration names only the subnets and the group).
      expect([...read].sort()).toEqual([...outputs].filter((o) => !o.startsWith('VpcId')).sort());
      expect(before.templateText[functionStackName(binary)]).not.toMatch(/Fn::ImportValue|PublishOutput/);
    }
    // CDK's own weak references would be outputs under Publish/: there are none.
    expect(Object.keys(base.Outputs).filter((id) => id.startsWith('PublishOutput'))).toEqual([]);
  });

  test.each(REPLACEMENTS)('replacing a base resource, $what, changes every function stack that reads it', ({ reads, version, mutate }) => {
    const after = synth({ context, mutate });
    expect(after.templateText[BASE_STACK]).not.toEqual(before.templateText[BASE_STACK]);
    const changedOutputs = Object.keys(after.templates[BASE_STACK].Outputs).filter((id) => !(id in base.Outputs));
    expect(changedOutputs.map((id) => id.replace(/[0-9a-f]{16}$/, '')).sort()).toEqual([...reads].sort());
    for (const binary of FUNCTION_NAMES) {
      const name = functionStackName(binary);
      const read = stackOutputsRead(after.templates[name]);
      expect(after.templateText[name]).not.toEqual(before.templateText[name]);
      for (const output of changedOutputs.filter((id) => !id.startsWith('VpcId'))) {
        expect(read).toContain(output);
      }
      // The function's VPC or file-system configuration changed: CloudFormation publishes a new
      // version, which CodeDeploy shifts `live` to.
      if (version) {
        expect(versionOf(after.templates[name])).not.toEqual(versionOf(before.templates[name]));
      }
    }
  });

  test.each(IN_PLACE)('a change that replaces nothing, $what, leaves every function stack byte-identical', ({ context: extra, mutate }) => {
    const after = synth({ context: { ...context, ...extra }, mutate });
    expect(after.templateText[BASE_STACK]).not.toEqual(before.templateText[BASE_STACK]);
    for (const binary of FUNCTION_NAMES) {
      const name = functionStackName(binary);
      expect([name, after.templateText[name]]).toEqual([name, before.templateText[name]]);
    }
  });
});

/** cfn-lint's copy of the CloudFormation registry schemas (cfn-lint is what `npm run synth` lints with). */
function registrySchemas(): { schemaOf: (type: string) => any; version: string } {
  const venvLint = join(__dirname, '..', '..', '.venv', 'bin', 'cfn-lint');
  const lint = existsSync(venvLint) ? venvLint : execFileSync('sh', ['-c', 'command -v cfn-lint'], { encoding: 'utf8' }).trim();
  // The interpreter cfn-lint runs with (its shebang), and so the package it imports.
  const python = readFileSync(lint, 'utf8').split('\n')[0].replace(/^#!\s*/, '').trim();
  const dir = execFileSync(python, ['-c', 'import cfnlint, os; print(os.path.dirname(cfnlint.__file__))'], { encoding: 'utf8' }).trim();
  const schemas = join(dir, 'data', 'schemas');
  const region = readdirSync(join(schemas, 'providers')).includes('us-east-1.json') ? 'us-east-1.json' : readdirSync(join(schemas, 'providers'))[0];
  const index = JSON.parse(readFileSync(join(schemas, 'providers', region), 'utf8'));
  const version = execFileSync(lint, ['--version'], { encoding: 'utf8' }).trim();
  return { schemaOf: (type) => JSON.parse(readFileSync(join(schemas, 'resources', `${index[type]}.json`), 'utf8')), version };
}

describe('UPDATED_IN_PLACE against the CloudFormation registry schemas (cfn-lint\'s copy)', () => {
  const { schemaOf, version } = registrySchemas();
  const topLevel = (paths: string[] | undefined) => new Set((paths ?? []).map((p) => p.split('/')[2]));
  // A read-only path below a property (S3 Files' SynchronizationConfiguration/LatestVersionNumber)
  // does not make the property read-only; a create-only one below it does make it replace.
  const readOnlyTopLevel = (paths: string[] | undefined) => topLevel((paths ?? []).filter((p) => p.split('/').length === 3));

  test(`${version}: every property left out of an identity is an updatable property of its type, never a create-only one`, () => {
    for (const [type, properties] of Object.entries(UPDATED_IN_PLACE)) {
      const schema = schemaOf(type);
      const createOnly = topLevel(schema.createOnlyProperties);
      const readOnly = readOnlyTopLevel(schema.readOnlyProperties);
      expect(createOnly.size + Object.keys(schema.properties).length).toBeGreaterThan(1);
      for (const property of properties) {
        expect([type, property, property in schema.properties]).toEqual([type, property, true]);
        expect([type, property, createOnly.has(property) || readOnly.has(property)]).toEqual([type, property, false]);
      }
    }
  });

  test('the types listed are those of the base resources the function stacks read and those their identities name, with either storage', () => {
    const types = new Set<string>();
    for (const storage of STORAGE_KINDS) {
      const base = synth({ context: { storage } }).templates[BASE_STACK];
      const seen = new Set<string>();
      // A resource, and every resource its identity (its properties but those updated in place) names.
      const visit = (logicalId: string) => {
        if (seen.has(logicalId) || !(logicalId in base.Resources)) {
          return;
        }
        seen.add(logicalId);
        const { Type: type, Properties: properties = {} } = base.Resources[logicalId];
        types.add(type);
        const identity = Object.entries(properties).filter(([k]) => !(UPDATED_IN_PLACE[type] ?? []).includes(k));
        JSON.stringify(identity, (key, value) => {
          if (key === 'Ref' && typeof value === 'string') visit(value);
          if (key === 'Fn::GetAtt' && Array.isArray(value)) visit(value[0]);
          return value;
        });
      };
      for (const output of Object.values<any>(base.Outputs).filter((o) => /^Read by the function stacks/.test(o.Description))) {
        visit(output.Value.Ref ?? output.Value['Fn::GetAtt'][0]);
      }
    }
    // The VPC, subnets, security group, file system, access point, API and alarm topic; with S3
    // Files its file system and access point, and the bucket and role that file system names.
    expect(types.size).toBe(11);
    expect([...types].sort()).toEqual(Object.keys(UPDATED_IN_PLACE).sort());
  });
});
