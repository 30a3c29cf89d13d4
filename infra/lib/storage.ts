import { createHash } from 'node:crypto';
import { CfnResource, IResolveContext, Lazy, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as efs from 'aws-cdk-lib/aws-efs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { BaseValueSource } from './base-values';
import { S3FilesStorage } from './s3files';
import { SdkCallProvider } from './sdk-call';
import { CLIENT_ACTIONS, DEFAULT_STORAGE, MonitoredStorage, StorageKind } from './storage-kind';

/** Where every function mounts the access point (the contract's `MESSAGES_DIR`). */
export const MOUNT_PATH = '/mnt/msg';
/** The directory the access point exposes as its root, created on first use. */
export const ACCESS_POINT_PATH = '/export/lambda';
/** The POSIX identity every function acts as on the file system. */
export const POSIX_UID = '1001';
export const POSIX_GID = '1001';
/** Owner rwx, group r-x, others nothing: only uid 1001 can write. */
export const ACCESS_POINT_PERMISSIONS = '750';
/** The NFS port, the only one open between the functions and the mount targets. */
export const NFS_PORT = 2049;

/** EFS's client actions and access-point condition key (storage-kind.ts, CLIENT_ACTIONS). */
const EFS_CLIENT = CLIENT_ACTIONS.efs;
/** Every client action: what the file-system policy's Deny statements cover. */
const ALL_CLIENT_ACTIONS = [EFS_CLIENT.mount, EFS_CLIENT.write, EFS_CLIENT.rootAccess];

export interface MessageStorageProps {
  /**
   * What happens to the file system (and so every stored message) when the stack is deleted.
   * @default RemovalPolicy.DESTROY (a demo: `cdk destroy` leaves nothing billable behind)
   */
  readonly removalPolicy?: RemovalPolicy;
  /** Retention of the deploy-time SDK calls' log group (see AccessPointOnlyPolicy). @default ONE_WEEK */
  readonly logRetention?: logs.RetentionDays;
  /** Context `storage`: which file system the functions share. @default DEFAULT_STORAGE (EFS) */
  readonly kind?: StorageKind;
}

/**
 * The deployed file system, whatever its kind: what the function stacks mount, what the outputs
 * name and what the alarms watch.
 */
export interface SharedFileSystem {
  readonly fileSystemId: string;
  readonly accessPointId: string;
  /**
   * Where the function stacks read the two ARNs from (BaseValueOutputs): the L1 resources of the
   * file system and of the access point, and the attribute.
   */
  readonly fileSystemArnSource: BaseValueSource;
  readonly accessPointArnSource: BaseValueSource;
  /** What the alarms and the dashboard watch. */
  readonly monitored: MonitoredStorage;
}

/**
 * The network and the file system: a VPC with no route to the internet, and one encrypted file
 * system with one access point that all three functions share: EFS with elastic throughput
 * (`storage=efs`, the default), or S3 Files and its bucket (`storage=s3files`, see S3FilesStorage).
 */
export class MessageStorage extends Construct {
  readonly kind: StorageKind;
  readonly vpc: ec2.Vpc;
  /** Attached to every function; the only source allowed to reach the mount targets. */
  readonly functionSecurityGroup: ec2.SecurityGroup;
  readonly fileSystemSecurityGroup: ec2.SecurityGroup;
  /** The file system and access point the functions mount, whichever the kind. */
  readonly files: SharedFileSystem;
  /** `storage=efs` only. */
  readonly fileSystem?: efs.FileSystem;
  readonly accessPoint?: efs.AccessPoint;
  /** `storage=efs` only: installs the policy that admits this access point only (see AccessPointOnlyPolicy). */
  readonly accessPointOnlyPolicy?: AccessPointOnlyPolicy;
  /** `storage=s3files` only: the bucket, the S3 Files file system, its mount targets and access point. */
  readonly s3Files?: S3FilesStorage;
  /** The subnets of both the functions' network interfaces and the mount targets. */
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

  constructor(scope: Construct, id: string, props: MessageStorageProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;
    this.kind = props.kind ?? DEFAULT_STORAGE;

    // Cost: isolated subnets only, so no NAT gateway (about $65/month for two AZs, idle or not)
    // and no internet gateway. Nothing here needs the internet: Lambda's control plane (logs,
    // runtime API) does not go through the function's VPC interfaces, and EFS is in the VPC.
    // Two AZs so the file system stays reachable when one AZ is down.
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
      // The default security group is never attached to anything; stripping its rules would take
      // a custom-resource Lambda function (with an AWS-managed-policy role) in this stack.
      restrictDefaultSecurityGroup: false,
    });
    Validations.of(this.vpc).acknowledge({
      id: 'AwsSolutions-VPC7',
      reason:
        'No flow logs: the VPC has isolated subnets only (no internet or NAT path) and carries nothing but ' +
        'NFS between the functions and EFS; flow logs would add CloudWatch ingestion cost to a demo. ' +
        'API access is logged by the HTTP API access log.',
    });

    // Security: both groups allow nothing outbound by default; the functions may open NFS (2049)
    // to the mount targets and the mount targets accept NFS only from the functions. The functions'
    // group is the same for both kinds of storage (switching does not replace it, nor so the
    // network interfaces of the versions still deployed).
    this.functionSecurityGroup = new ec2.SecurityGroup(this, 'FunctionSecurityGroup', {
      vpc: this.vpc,
      description: 'Message functions: NFS out to the EFS mount targets only',
      allowAllOutbound: false,
    });
    this.fileSystemSecurityGroup = new ec2.SecurityGroup(this, 'FileSystemSecurityGroup', {
      vpc: this.vpc,
      description: `${this.kind === 'efs' ? 'EFS' : 'S3 Files'} mount targets: NFS in from the message functions only`,
      allowAllOutbound: false,
    });
    this.functionSecurityGroup.connections.allowTo(
      this.fileSystemSecurityGroup,
      ec2.Port.tcp(NFS_PORT),
      'NFS to the EFS mount targets',
    );

    if (this.kind === 'efs') {
      const built = this.createEfs(removalPolicy, props.logRetention);
      this.fileSystem = built.fileSystem;
      this.accessPoint = built.accessPoint;
      this.accessPointOnlyPolicy = built.accessPointOnlyPolicy;
      this.files = {
        fileSystemId: built.fileSystem.fileSystemId,
        accessPointId: built.accessPoint.accessPointId,
        fileSystemArnSource: { resource: built.fileSystem.node.defaultChild as CfnResource, attribute: 'Arn' },
        accessPointArnSource: { resource: built.accessPoint.node.defaultChild as CfnResource, attribute: 'Arn' },
        monitored: { kind: 'efs', fileSystemId: built.fileSystem.fileSystemId },
      };
    } else {
      this.s3Files = new S3FilesStorage(this, 'S3Files', {
        vpc: this.vpc,
        subnets: this.vpc.selectSubnets(this.subnets).subnets,
        mountTargetSecurityGroup: this.fileSystemSecurityGroup,
        accessPoint: { path: ACCESS_POINT_PATH, uid: POSIX_UID, gid: POSIX_GID, permissions: ACCESS_POINT_PERMISSIONS },
        removalPolicy,
      });
      const { fileSystem, accessPoint, bucket } = this.s3Files;
      this.files = {
        fileSystemId: fileSystem.attrFileSystemId,
        accessPointId: accessPoint.attrAccessPointId,
        fileSystemArnSource: { resource: fileSystem, attribute: 'FileSystemArn' },
        accessPointArnSource: { resource: accessPoint, attribute: 'AccessPointArn' },
        monitored: { kind: 's3files', fileSystemId: fileSystem.attrFileSystemId, bucketName: bucket.bucket.bucketName },
      };
    }
  }

  /** `storage=efs`: the file system, its access point and the policy that admits only it. */
  private createEfs(removalPolicy: RemovalPolicy, logRetention: logs.RetentionDays | undefined) {
    const fileSystem = new efs.FileSystem(this, 'FileSystem', {
      vpc: this.vpc,
      vpcSubnets: this.subnets,
      securityGroup: this.fileSystemSecurityGroup,
      // Security: encrypted at rest with the AWS-managed key (a customer-managed KMS key would
      // add $1/month plus request charges for no gain in this demo).
      encrypted: true,
      // Cost: elastic throughput bills per GB read/written, nothing while idle; no provisioned
      // throughput to pay for at rest. (Elastic requires the General Purpose performance mode.)
      throughputMode: efs.ThroughputMode.ELASTIC,
      performanceMode: efs.PerformanceMode.GENERAL_PURPOSE,
      // Messages are demo data: no AWS Backup plan (it would bill per GB-month of backups).
      enableAutomaticBackups: false,
      removalPolicy,
      // The template's policy: see AccessPointOnlyPolicy for the one EFS enforces once deployed.
      fileSystemPolicy: new iam.PolicyDocument({ statements: templateFileSystemStatements() }),
      // CDK's own "deny anonymous access" default works by ALLOWING ClientWrite and
      // ClientRootAccess to every IAM principal. The policy above replaces it: because a policy
      // exists, EFS requires IAM authorization and anonymous (non-IAM) clients get nothing, and
      // root access is denied to everyone.
      allowAnonymousAccess: true,
    });

    // The single access point: every function sees `/export/lambda` as its root and acts as
    // uid/gid 1001, whatever user the Lambda runtime runs as. EFS creates the directory
    // (owner 1001:1001, mode 750) the first time the access point is used.
    const accessPoint = fileSystem.addAccessPoint('AccessPoint', {
      path: ACCESS_POINT_PATH,
      posixUser: { uid: POSIX_UID, gid: POSIX_GID },
      createAcl: { ownerUid: POSIX_UID, ownerGid: POSIX_GID, permissions: ACCESS_POINT_PERMISSIONS },
    });
    // The access point (which every function stack references) is only created once both mount
    // targets are available, so no function can be created, and invoked, before it can mount.
    accessPoint.node.addDependency(fileSystem.mountTargetsAvailable);

    const accessPointOnlyPolicy = new AccessPointOnlyPolicy(this, 'AccessPointOnlyPolicy', {
      fileSystem,
      accessPoint,
      provider: SdkCallProvider.of(this, { logRetention, removalPolicy }),
    });
    return { fileSystem, accessPoint, accessPointOnlyPolicy };
  }
}

/**
 * The statements of the policy in the template (the `AWS::EFS::FileSystem`'s own
 * `FileSystemPolicy`). Only Deny statements: callers get their rights from their own IAM roles
 * (the functions' roles are scoped to the access point), while the mere presence of a policy makes
 * EFS require IAM authorization, so anonymous NFS clients are refused. Nobody may mount, write or
 * act as root without TLS, nobody may act as root, and nobody may mount without an access point.
 */
export function templateFileSystemStatements(): iam.PolicyStatement[] {
  const everyone = [new iam.AnyPrincipal()];
  return [
    new iam.PolicyStatement({
      sid: 'DenyInsecureTransport',
      effect: iam.Effect.DENY,
      principals: everyone,
      actions: ALL_CLIENT_ACTIONS,
      conditions: { Bool: { 'aws:SecureTransport': 'false' } },
    }),
    new iam.PolicyStatement({
      sid: 'DenyRootAccess',
      effect: iam.Effect.DENY,
      principals: everyone,
      actions: [EFS_CLIENT.rootAccess],
    }),
    new iam.PolicyStatement({
      sid: 'DenyWithoutAccessPoint',
      effect: iam.Effect.DENY,
      principals: everyone,
      actions: ALL_CLIENT_ACTIONS,
      // The key is absent when a client mounts the file system's root directly.
      conditions: { Null: { [EFS_CLIENT.accessPointArnKey]: 'true' } },
    }),
  ];
}

/**
 * The statements EFS enforces once the access point exists: the template's, and a Deny of every
 * client action through any access point but `accessPoint`. (`StringNotEquals` is also true when
 * the key is absent, so it repeats the template's `DenyWithoutAccessPoint`.)
 */
export function enforcedFileSystemStatements(accessPoint: efs.IAccessPoint): iam.PolicyStatement[] {
  return [
    ...templateFileSystemStatements(),
    new iam.PolicyStatement({
      sid: 'DenyOtherAccessPoints',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ALL_CLIENT_ACTIONS,
      conditions: { StringNotEquals: { [EFS_CLIENT.accessPointArnKey]: accessPoint.accessPointArn } },
    }),
  ];
}

export interface AccessPointOnlyPolicyProps {
  readonly fileSystem: efs.FileSystem;
  readonly accessPoint: efs.AccessPoint;
  readonly provider: SdkCallProvider;
}

/**
 * Makes the access point the only way in: installs, with `efs:PutFileSystemPolicy`, the policy of
 * `enforcedFileSystemStatements`, which names this access point.
 *
 * Why not in the template: the policy is a property of the `AWS::EFS::FileSystem`, and the access
 * point (`AWS::EFS::AccessPoint`) needs the file system's id, so a policy naming the access point's
 * ARN would be a dependency cycle. Instead:
 *  1. the file system is created with the template's policy, which already denies TLS-less and
 *     root access and any mount WITHOUT an access point (`templateFileSystemStatements`);
 *  2. once the access point exists, this custom resource (which references both, so CloudFormation
 *     runs it after them) replaces that policy with the same statements plus a Deny of every other
 *     access point. The function stacks deploy after the base stack, so no function mounts before.
 *
 * It runs again whenever the enforced policy changes (it is a property of the resource) and
 * whenever the file system's resource changes in the template (a digest of it is a property too),
 * because CloudFormation may put the template's policy back when it updates the file system. On
 * deletion it restores the template's policy, so a retained file system (`removalPolicy=retain`)
 * is not left naming a deleted access point. The provider may call PutFileSystemPolicy on this
 * file system and nothing else.
 */
export class AccessPointOnlyPolicy extends Construct {
  readonly resource: cr.AwsCustomResource;
  /** The policy EFS enforces after deployment (also in the resource's properties). */
  readonly document: iam.PolicyDocument;

  constructor(scope: Construct, id: string, props: AccessPointOnlyPolicyProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { fileSystem } = props;
    this.document = new iam.PolicyDocument({ statements: enforcedFileSystemStatements(props.accessPoint) });
    const templateDocument = new iam.PolicyDocument({ statements: templateFileSystemStatements() });
    const put = (document: iam.PolicyDocument): cr.AwsSdkCall => ({
      service: 'EFS',
      action: 'putFileSystemPolicy',
      parameters: { FileSystemId: fileSystem.fileSystemId, Policy: stack.toJsonString(document) },
      physicalResourceId: cr.PhysicalResourceId.of(fileSystem.fileSystemId),
    });
    this.resource = props.provider.call(this, 'Resource', {
      resourceType: 'Custom::EfsAccessPointOnlyPolicy',
      onCreate: put(this.document),
      onDelete: { ...put(templateDocument), ignoreErrorCodesMatching: 'FileSystemNotFound' },
      statements: [
        new iam.PolicyStatement({
          actions: ['elasticfilesystem:PutFileSystemPolicy'],
          resources: [fileSystem.fileSystemArn],
        }),
      ],
    });
    // The file system's resource as the template renders it (properties, tags, policies): any
    // change to it changes this property, and so re-runs the call after the file system's update.
    const cfnFileSystem = fileSystem.node.defaultChild as efs.CfnFileSystem;
    const digest = Lazy.uncachedString({
      produce: (context: IResolveContext) =>
        createHash('sha256').update(JSON.stringify(context.resolve(cfnFileSystem._toCloudFormation()))).digest('hex'),
    });
    const cfnResource = this.resource.node.findChild('Resource').node.defaultChild as CfnResource;
    cfnResource.addPropertyOverride('FileSystemResourceDigest', digest);
  }
}
