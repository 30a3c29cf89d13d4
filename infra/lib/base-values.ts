import { createHash } from 'node:crypto';
import { CfnElement, CfnOutput, CfnResource, IResolvable, IResolveContext, Lazy, Stack, Token } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { canonical } from './canonical';
import { StorageKind } from './storage-kind';

/**
 * What a function stack reads from the base stack. Each value is a reference to a base stack
 * output (`Fn::GetStackOutput`), valid in a function stack only.
 */
export interface BaseValues {
  /** Which file system the base stack has (not a reference: decided at synth, context `storage`). */
  readonly storage: StorageKind;
  /** The VPC (the imported VPC's id; nothing in a function template renders it today). */
  readonly vpcId: string;
  /** The isolated subnets, one per availability zone, in the order of `availabilityZones`. */
  readonly subnetIds: string[];
  readonly availabilityZones: string[];
  /** The security group every function's network interfaces are in. */
  readonly functionSecurityGroupId: string;
  readonly fileSystemArn: string;
  /** The access point every function mounts (and the only one the file-system policy admits). */
  readonly accessPointArn: string;
  readonly apiId: string;
  readonly alarmTopicArn: string;
}

/**
 * The properties CloudFormation updates in place, per resource type: changing them never replaces
 * the resource (its id and ARN stay), so they are left out of its identity (`identityDigest`).
 * Every other property counts, so a property missing here (a conditional replacement such as the
 * VPC's `InstanceTenancy`, or one CDK starts setting later) costs at most a needless new version,
 * never a missed replacement; a type missing here counts all of its properties. None of these is in
 * its type's `createOnlyProperties` (the CloudFormation registry schemas: a test checks them
 * against cfn-lint's copy).
 */
export const UPDATED_IN_PLACE: Readonly<Record<string, readonly string[]>> = {
  'AWS::EC2::VPC': ['Tags', 'EnableDnsHostnames', 'EnableDnsSupport'],
  'AWS::EC2::Subnet': ['Tags', 'MapPublicIpOnLaunch', 'AssignIpv6AddressOnCreation', 'EnableDns64', 'PrivateDnsNameOptionsOnLaunch'],
  'AWS::EC2::SecurityGroup': ['Tags', 'SecurityGroupIngress', 'SecurityGroupEgress'],
  'AWS::EFS::FileSystem': [
    'FileSystemTags',
    'FileSystemPolicy',
    'BypassPolicyLockoutSafetyCheck',
    'LifecyclePolicies',
    'BackupPolicy',
    'ThroughputMode',
    'ProvisionedThroughputInMibps',
    'FileSystemProtection',
  ],
  'AWS::EFS::AccessPoint': ['AccessPointTags'],
  // storage=s3files: the file system and access point the functions read, and what the file
  // system's identity names (its bucket and synchronization role: replacing either replaces it).
  'AWS::S3Files::FileSystem': ['SynchronizationConfiguration', 'Tags'],
  'AWS::S3Files::AccessPoint': ['Tags'],
  'AWS::S3::Bucket': [
    'AbacStatus',
    'AccelerateConfiguration',
    'AccessControl',
    'AnalyticsConfigurations',
    'BucketEncryption',
    'CorsConfiguration',
    'IntelligentTieringConfigurations',
    'InventoryConfigurations',
    'LifecycleConfiguration',
    'LoggingConfiguration',
    'MetricsConfigurations',
    'NotificationConfiguration',
    'ObjectLockConfiguration',
    'ObjectLockEnabled',
    'OwnershipControls',
    'PublicAccessBlockConfiguration',
    'ReplicationConfiguration',
    'Tags',
    'VersioningConfiguration',
    'WebsiteConfiguration',
  ],
  'AWS::IAM::Role': ['AssumeRolePolicyDocument', 'Description', 'ManagedPolicyArns', 'MaxSessionDuration', 'PermissionsBoundary', 'Policies', 'Tags'],
  'AWS::ApiGatewayV2::Api': ['Tags', 'Name', 'Description', 'CorsConfiguration', 'DisableExecuteApiEndpoint', 'IpAddressType'],
  'AWS::SNS::Topic': [
    'Tags',
    'DisplayName',
    'KmsMasterKeyId',
    'Subscription',
    'SignatureVersion',
    'TracingConfig',
    'DeliveryStatusLogging',
    'ArchivePolicy',
    'DataProtectionPolicy',
  ],
};

/** One value the function stacks read: an attribute (or `Ref`) of a base stack resource. */
export interface BaseValueSource {
  readonly resource: CfnResource;
  /** `undefined` for `Ref`, else the `Fn::GetAtt` attribute. */
  readonly attribute?: string;
}

/**
 * The base stack's side of every value a function stack reads: one output per value, named after
 * the value and a digest of the identity of the resource it comes from (`identityDigest`).
 *
 * Why: the function stacks read these values with `Fn::GetStackOutput` (CloudFormation resolves it
 * when the consuming stack is created or updated, and "if the referenced stack or output is later
 * deleted or modified, the consuming stack is not automatically updated", CloudFormation template
 * reference, Fn::GetStackOutput), and the CDK CLI skips a stack whose template did not change.
 * With output names that never change, replacing the functions' security group, the access point
 * or a subnet changed only the base template: the function stacks were skipped, and their published
 * versions kept the deleted resources. Here the output's name changes exactly when the resource is
 * replaced, so every function-stack resource that reads it (the function and so its version, its
 * role policy, routes, integration, authorizer, permissions, route throttles, alarms) changes too,
 * and the next deploy of that stack updates them; a change that does not replace the resource
 * changes no function stack (no needless version, no canary).
 *
 * Strong references (exports) were the alternative: CloudFormation then refuses to replace an
 * exported resource that a function stack imports, so every such change becomes a planned
 * migration with downtime (destroy the function stacks first), and removing an import later needs
 * the two-step export dance. See infra/README.md, "Changing the base stack".
 */
export class BaseValueOutputs extends Construct {
  /** The values as function stacks reference them. */
  readonly values: BaseValues;
  private readonly outputs = new Map<string, CfnOutput>();

  constructor(
    scope: Construct,
    id: string,
    props: {
      storage: StorageKind;
      vpc: BaseValueSource;
      subnets: BaseValueSource[];
      availabilityZones: string[];
      functionSecurityGroup: BaseValueSource;
      fileSystem: BaseValueSource;
      accessPoint: BaseValueSource;
      api: BaseValueSource;
      alarmTopic: BaseValueSource;
    },
  ) {
    super(scope, id);
    const stack = Stack.of(this);
    this.values = {
      storage: props.storage,
      vpcId: this.output('VpcId', props.vpc),
      subnetIds: props.subnets.map((subnet, i) => this.output(`Subnet${i + 1}Id`, subnet)),
      availabilityZones: props.availabilityZones,
      functionSecurityGroupId: this.output('FunctionSecurityGroupId', props.functionSecurityGroup),
      fileSystemArn: this.output('FileSystemArn', props.fileSystem),
      accessPointArn: this.output('AccessPointArn', props.accessPoint),
      apiId: this.output('ApiId', props.api),
      alarmTopicArn: this.output('AlarmTopicArn', props.alarmTopic),
    };
    for (const source of [props.vpc, ...props.subnets, props.functionSecurityGroup, props.fileSystem, props.accessPoint, props.api, props.alarmTopic]) {
      if (Stack.of(source.resource) !== stack) {
        throw new Error(`${source.resource.node.path} is not in ${stack.stackName}`);
      }
    }
  }

  /** The output (by name without its digest), e.g. for tests and documentation. */
  outputFor(name: string): CfnOutput {
    const output = this.outputs.get(name);
    if (!output) {
      throw new Error(`no base value '${name}'`);
    }
    return output;
  }

  private output(name: string, source: BaseValueSource): string {
    const stack = Stack.of(this);
    const output = new CfnOutput(this, name, {
      value: source.attribute === undefined ? source.resource.ref : source.resource.getAtt(source.attribute).toString(),
      description: `Read by the function stacks; the name's suffix is a digest of the identity of ${source.resource.node.path}`,
    });
    output.overrideLogicalId(
      Lazy.uncachedString({ produce: () => `${name}${identityDigest(source.resource).slice(0, IDENTITY_SUFFIX_LENGTH)}` }),
    );
    this.outputs.set(name, output);
    return Token.asString(new BaseOutputReference(stack, output));
  }
}

/** Hex digits of the identity digest in an output's name: 64 bits. */
export const IDENTITY_SUFFIX_LENGTH = 16;

/**
 * `Fn::GetStackOutput` of one base stack output, for use in another stack of the same account and
 * region. (CDK's own weak references are `Fn::GetStackOutput` too, with names that never change.)
 */
class BaseOutputReference implements IResolvable {
  readonly creationStack: string[] = [];

  constructor(
    private readonly base: Stack,
    private readonly output: CfnOutput,
  ) {}

  resolve(context: IResolveContext): unknown {
    if (Stack.of(context.scope) === this.base) {
      throw new Error(`${this.output.node.path}: a base value is for the function stacks; in ${this.base.stackName} use the resource itself`);
    }
    return {
      'Fn::GetStackOutput': {
        StackName: this.base.stackName,
        Region: { Ref: 'AWS::Region' },
        OutputName: context.resolve((this.output as CfnElement).logicalId),
      },
    };
  }

  toString(): string {
    return Token.asString(this);
  }
}

/**
 * A digest of what identifies a resource: its logical id, type and every property but those
 * updated in place (UPDATED_IN_PLACE), with every reference to another resource of its stack replaced by that
 * resource's own identity digest (a subnet is replaced when its VPC is, though its template text
 * still says `Ref: Vpc`). Two templates that give a resource different digests may replace it; two
 * that give it the same digest update it in place, or not at all.
 */
export function identityDigest(resource: CfnResource): string {
  const stack = Stack.of(resource);
  const byLogicalId = new Map<string, CfnResource>();
  for (const child of stack.node.findAll()) {
    if (CfnResource.isCfnResource(child) && Stack.of(child) === stack) {
      byLogicalId.set(stack.resolve(child.logicalId), child);
    }
  }
  const memo = new Map<string, string>();
  const digestOf = (logicalId: string, path: string[]): string => {
    const known = memo.get(logicalId);
    if (known !== undefined) {
      return known;
    }
    if (path.includes(logicalId)) {
      throw new Error(`identity of ${logicalId}: a cycle through ${path.join(' -> ')}`);
    }
    const cfn = byLogicalId.get(logicalId)!;
    const rendered = stack.resolve((cfn as unknown as { _toCloudFormation(): any })._toCloudFormation()).Resources[logicalId];
    const inPlace = UPDATED_IN_PLACE[rendered.Type] ?? [];
    const properties: Record<string, unknown> = rendered.Properties ?? {};
    const identity = Object.fromEntries(Object.entries(properties).filter(([k]) => !inPlace.includes(k)));
    const substituted = substitute(identity, (id) => (byLogicalId.has(id) ? digestOf(id, [...path, logicalId]) : undefined));
    const digest = createHash('sha256').update(JSON.stringify(canonical([logicalId, rendered.Type, substituted]))).digest('hex');
    memo.set(logicalId, digest);
    return digest;
  };
  return digestOf(stack.resolve(resource.logicalId), []);
}

/** `{Ref: X}` and `{Fn::GetAtt: [X, a]}` of a resource X of the stack become `{Identity: …}`. */
function substitute(value: unknown, identityOf: (logicalId: string) => string | undefined): unknown {
  if (Array.isArray(value)) {
    return value.map((v) => substitute(v, identityOf));
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 1) {
      const [[key, arg]] = entries;
      if (key === 'Ref' && typeof arg === 'string') {
        const id = identityOf(arg);
        return id === undefined ? value : { Identity: id };
      }
      if (key === 'Fn::GetAtt' && Array.isArray(arg) && typeof arg[0] === 'string') {
        const id = identityOf(arg[0]);
        return id === undefined ? value : { Identity: id, Attribute: arg.slice(1) };
      }
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, substitute(v, identityOf)]));
  }
  return value;
}
