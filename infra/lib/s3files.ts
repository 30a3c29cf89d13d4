import { Aws, CfnElement, CustomResourceProviderBase, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3files from 'aws-cdk-lib/aws-s3files';
import { Construct, DependencyGroup, IDependable } from 'constructs';
import { CLIENT_ACTIONS } from './storage-kind';

// `-c storage=s3files`: the message store on Amazon S3 Files. What each setting here relies on is
// in docs/s3-files.md (section 3, with AWS's documentation cited); the short form is in the
// comments. aws-cdk-lib 2.276 has only the L1 resources for S3 Files (CfnFileSystem,
// CfnMountTarget, CfnAccessPoint, CfnFileSystemPolicy).

/** The service principal S3 Files assumes its synchronization role as (S3 Files user guide, "Prerequisites"). */
export const S3FILES_SERVICE_PRINCIPAL = 'elasticfilesystem.amazonaws.com';

/**
 * How long a noncurrent object version (a deleted or overwritten message, an old `cutoff`) stays
 * in the bucket. Cost and privacy: one day, S3's minimum, so "deleted" means gone from the bucket
 * within about a day (README, "EFS or S3 Files?"), while an accidental delete can still be undone
 * the same day.
 */
export const NONCURRENT_VERSION_DAYS = 1;
/** Multipart uploads S3 Files started and never completed are removed after this many days. */
export const ABORT_INCOMPLETE_UPLOAD_DAYS = 1;
/**
 * Synchronization: a file smaller than this is imported whole the first time its directory is
 * listed. Every message file (at most 768 KiB plus its header) is below 1 MiB, so after a file
 * system replacement, or objects put in the bucket, pages read them from the file system, not
 * one S3 GET at a time. (The service default is 128 KiB: docs/s3-files.md, 3.7.)
 */
export const IMPORT_SIZE_LESS_THAN = 1024 * 1024;
/**
 * Synchronization: a file not read for this many days leaves the high-performance storage (its
 * data stays in the bucket). 30, the service default, equals the default message retention: live
 * messages stay on the fast storage; with a longer `retentionDays`, older pages are read from S3,
 * slower and with a re-import charge (docs/s3-files.md, 2.2).
 */
export const EXPIRATION_DAYS_AFTER_LAST_ACCESS = 30;

/** Lambda's `S3FilesConfig.DirectS3Read` (CloudFormation's enum). */
export type DirectS3ReadMode = 'ENABLED' | 'DISABLED' | 'AUTO';

/**
 * `DirectS3Read` per function, chosen one by one (docs/s3-files.md, 3.5). With direct reads Lambda
 * may stream large reads (1 MiB or more) and reads of data no longer on the high-performance
 * storage straight from the bucket. None of ours gains from that, and each would pay for it:
 *  - it needs `s3:GetObject` and `s3:GetObjectVersion` on the bucket, which bypasses the access
 *    point's POSIX identity and reaches noncurrent versions, i.e. deleted messages;
 *  - the functions run in isolated subnets without an S3 endpoint or NAT, so a direct read could
 *    only fail and fall back to the file system, after a wasted attempt.
 * `AUTO` (the service default) would switch direct reads on silently at 512 MB of memory or more.
 */
export const DIRECT_S3_READ: Readonly<Record<string, { readonly mode: DirectS3ReadMode; readonly why: string }>> = {
  'get-messages': {
    mode: 'DISABLED',
    why: 'reads messages of at most 768 KiB (below the 1 MiB direct-read threshold), kept on the high-performance storage while retained',
  },
  'post-message': { mode: 'DISABLED', why: 'reads only the 64-byte cutoff register' },
  'delete-messages': { mode: 'DISABLED', why: 'reads registers and directory listings (metadata, never direct), never message data' },
};
/** A function the table does not name reads through the file system too. */
export const DEFAULT_DIRECT_S3_READ: DirectS3ReadMode = 'DISABLED';

export function directS3ReadOf(binaryName: string): DirectS3ReadMode {
  return DIRECT_S3_READ[binaryName]?.mode ?? DEFAULT_DIRECT_S3_READ;
}

/** The access point every function mounts: the same identity and root as on EFS. */
export interface S3FilesAccessPointSettings {
  readonly path: string;
  readonly uid: string;
  readonly gid: string;
  /** Octal mode of the root directory S3 Files creates on first use. */
  readonly permissions: string;
}

export interface S3FilesStorageProps {
  readonly vpc: ec2.IVpc;
  /** One mount target per subnet: the subnets the functions run in. */
  readonly subnets: ec2.ISubnet[];
  /** The mount targets' security group (NFS in from the functions only). */
  readonly mountTargetSecurityGroup: ec2.ISecurityGroup;
  readonly accessPoint: S3FilesAccessPointSettings;
  /** The bucket and the file system (the messages). */
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The message store's bucket, the S3 Files file system linked to it, the role it synchronizes
 * with, one mount target per subnet, the functions' access point and the file-system policy.
 */
export class S3FilesStorage extends Construct {
  readonly bucket: MessageBucket;
  readonly syncRole: S3FilesSyncRole;
  readonly fileSystem: s3files.CfnFileSystem;
  readonly mountTargets: s3files.CfnMountTarget[];
  /** Complete once every mount target exists. */
  readonly mountTargetsAvailable: IDependable;
  readonly accessPoint: s3files.CfnAccessPoint;
  readonly policy: s3files.CfnFileSystemPolicy;

  constructor(scope: Construct, id: string, props: S3FilesStorageProps) {
    super(scope, id);
    this.bucket = new MessageBucket(this, 'Bucket', { removalPolicy: props.removalPolicy });
    this.syncRole = new S3FilesSyncRole(this, 'SyncRole', { bucket: this.bucket.bucket });
    this.bucket.onlyWriter(this.syncRole.role);

    this.fileSystem = new s3files.CfnFileSystem(this, 'FileSystem', {
      // The whole bucket (no prefix): it holds the store and nothing else.
      bucket: this.bucket.bucket.bucketArn,
      roleArn: this.syncRole.role.roleArn,
      // No KmsKeyId: the file system's high-performance storage is encrypted with an AWS-owned key
      // (a customer-managed key would add $1/month and request charges, for no gain here).
      // No AcceptBucketWarning: a warning about this bucket's configuration fails the deploy
      // rather than being accepted unread.
      synchronizationConfiguration: {
        importDataRules: [{ prefix: '', trigger: 'ON_DIRECTORY_FIRST_ACCESS', sizeLessThan: IMPORT_SIZE_LESS_THAN }],
        expirationDataRules: [{ daysAfterLastAccess: EXPIRATION_DAYS_AFTER_LAST_ACCESS }],
      },
    });
    this.fileSystem.applyRemovalPolicy(props.removalPolicy);
    // The bucket is emptied (removalPolicy=destroy) only once the file system is gone: deleting a
    // file system waits until its changes are exported, which would refill an emptied bucket.
    this.bucket.emptyAfter(this.fileSystem);

    // One mount target per subnet the functions run in ("You must have a mount target in each
    // subnet where your function is deployed", Lambda developer guide), behind the group that
    // accepts NFS from the functions only.
    this.mountTargets = props.subnets.map(
      (subnet, i) =>
        new s3files.CfnMountTarget(this, `MountTarget${i + 1}`, {
          fileSystemId: this.fileSystem.attrFileSystemId,
          subnetId: subnet.subnetId,
          securityGroups: [props.mountTargetSecurityGroup.securityGroupId],
        }),
    );
    this.mountTargetsAvailable = new DependencyGroup(...this.mountTargets);

    // The same access point as on EFS: every function acts as uid/gid 1001 and sees
    // /export/lambda as its root, which S3 Files creates (1001:1001, mode 750) on first use.
    // Without creation permissions a missing root directory is not created and every mount fails.
    const ap = props.accessPoint;
    this.accessPoint = new s3files.CfnAccessPoint(this, 'AccessPoint', {
      fileSystemId: this.fileSystem.attrFileSystemId,
      posixUser: { uid: ap.uid, gid: ap.gid },
      rootDirectory: {
        path: ap.path,
        creationPermissions: { ownerUid: ap.uid, ownerGid: ap.gid, permissions: ap.permissions },
      },
    });
    // Created only once every mount target exists, so no function (they reference the access
    // point) can be created, and invoked, before it can mount.
    this.accessPoint.node.addDependency(this.mountTargetsAvailable);

    // Unlike EFS's, S3 Files' policy is a resource of its own, so it can name the access point.
    this.policy = new s3files.CfnFileSystemPolicy(this, 'Policy', {
      fileSystemId: this.fileSystem.attrFileSystemId,
      policy: new iam.PolicyDocument({ statements: s3FilesFileSystemStatements(this.accessPoint.attrAccessPointArn) }),
    });
    // Security: a retained file system keeps its policy, which then admits no access point at all
    // (its only one is deleted) instead of none.
    this.policy.applyRemovalPolicy(props.removalPolicy);
  }
}

/**
 * The file-system policy: Deny statements only. Functions get their rights from their own roles
 * (scoped to the access point); nobody may act as root, and nobody may mount or write but through
 * the access point, so no client can bypass /export/lambda and uid 1001. The TLS statement mirrors
 * EFS's: S3 Files encrypts all traffic with TLS, so it never matches a mount (and a Bool condition
 * on an absent key does not match either).
 */
export function s3FilesFileSystemStatements(accessPointArn: string): iam.PolicyStatement[] {
  const everyone = [new iam.AnyPrincipal()];
  const { mount, write, rootAccess, accessPointArnKey } = CLIENT_ACTIONS.s3files;
  const all = [mount, write, rootAccess];
  return [
    new iam.PolicyStatement({
      sid: 'DenyInsecureTransport',
      effect: iam.Effect.DENY,
      principals: everyone,
      actions: all,
      conditions: { Bool: { 'aws:SecureTransport': 'false' } },
    }),
    new iam.PolicyStatement({ sid: 'DenyRootAccess', effect: iam.Effect.DENY, principals: everyone, actions: [rootAccess] }),
    new iam.PolicyStatement({
      sid: 'DenyOtherThanTheAccessPoint',
      effect: iam.Effect.DENY,
      principals: everyone,
      actions: all,
      // Also true when the key is absent: a mount of the file system's root.
      conditions: { StringNotEquals: { [accessPointArnKey]: accessPointArn } },
    }),
  ];
}

export interface MessageBucketProps {
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The bucket S3 Files keeps in sync with the file system: versioned (S3 Files requires it),
 * encrypted, private, TLS only, and writable through the S3 API by S3 Files alone.
 */
export class MessageBucket extends Construct {
  readonly bucket: s3.Bucket;
  /** Besides the sync role: CDK's emptying function (removalPolicy=destroy). */
  private readonly otherWriters: string[] = [];

  constructor(scope: Construct, id: string, props: MessageBucketProps) {
    super(scope, id);
    const destroy = props.removalPolicy === RemovalPolicy.DESTROY;
    this.bucket = new s3.Bucket(this, 'Bucket', {
      // S3 Files requires versioning: new files become objects, changes new versions, deletions
      // delete markers.
      versioned: true,
      // Security: SSE-S3 (S3 Files accepts SSE-S3 or SSE-KMS; a customer-managed key would cost
      // $1/month plus requests, and the sync role would need KMS rights).
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      // Security: a bucket policy denies every request without TLS.
      enforceSSL: true,
      // ACLs are not kept through the file system anyway.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        {
          id: 'NoncurrentVersionsAndIncompleteUploads',
          // Cost: every delete and every rewrite of a register leaves a noncurrent version; they
          // go after NONCURRENT_VERSION_DAYS, then their delete markers.
          noncurrentVersionExpiration: Duration.days(NONCURRENT_VERSION_DAYS),
          expiredObjectDeleteMarker: true,
          abortIncompleteMultipartUploadAfter: Duration.days(ABORT_INCOMPLETE_UPLOAD_DAYS),
          // Never an expiration of current versions (it would delete `cutoff`: deleted messages
          // would come back) and never a transition to an archive class (archived objects cannot
          // be read through the file system): docs/s3-files.md, 3.2.
        },
      ],
      removalPolicy: props.removalPolicy,
      // `cdk destroy` must not fail on a versioned bucket that still holds objects: with
      // removalPolicy=destroy, CDK's custom resource empties it (every version) first.
      autoDeleteObjects: destroy,
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'No server access logs: the bucket policy lets only S3 Files write or delete objects, and every object ' +
        'is written through the messages API, whose access log records each request; S3 access logs would add ' +
        'one log object per synchronization request to a demo.',
    });
    if (destroy) {
      this.otherWriters.push(autoDeleteProvider(this.bucket).roleArn);
    }
  }

  /**
   * Security and integrity: S3 wins every conflict with the file system (a changed or deleted
   * object replaces or removes the store's file; a restored old `cutoff` brings deleted messages
   * back: docs/s3-files.md, 1.6 and 1.13). So only `syncRole` (S3 Files) and, on stack deletion,
   * CDK's emptying function may write, delete or restore objects; reads stay governed by IAM.
   */
  onlyWriter(syncRole: iam.IRole): void {
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyS3FilesWritesObjects',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:PutObject*', 's3:DeleteObject*', 's3:RestoreObject'],
        resources: [this.bucket.arnForObjects('*')],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': [syncRole.roleArn, ...this.otherWriters] } },
      }),
    );
  }

  /** Empty the bucket on stack deletion (removalPolicy=destroy) only after `dependable` is deleted. */
  emptyAfter(dependable: IDependable): void {
    this.bucket.node.tryFindChild('AutoDeleteObjectsCustomResource')?.node.addDependency(dependable);
  }
}

/** CDK's singleton provider behind `autoDeleteObjects` (the stack holds one). */
function autoDeleteProvider(bucket: s3.Bucket): CustomResourceProviderBase {
  const provider = Stack.of(bucket).node.tryFindChild('Custom::S3AutoDeleteObjectsCustomResourceProvider');
  if (!provider) {
    throw new Error(`${bucket.node.path}: autoDeleteObjects created no provider`);
  }
  return provider as CustomResourceProviderBase;
}

export interface S3FilesSyncRoleProps {
  readonly bucket: MessageBucket['bucket'];
}

/**
 * The role S3 Files assumes to keep the file system and the bucket in sync, exactly as AWS
 * documents it (S3 Files user guide, "Prerequisites": "IAM role for accessing your bucket from the
 * file system"; the Sids are AWS's), minus the KMS statement, which only an SSE-KMS bucket needs.
 * AWS advises not to change this role once it works (best practices), so it is not narrowed
 * further; see docs/s3-files.md, 3.3.
 */
export class S3FilesSyncRole extends Construct {
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: S3FilesSyncRoleProps) {
    super(scope, id);
    const { bucket } = props;
    const thisAccount = { StringEquals: { 'aws:ResourceAccount': Aws.ACCOUNT_ID } };
    // Security: only S3 Files, acting for a file system of this account and region, may assume
    // it (the confused-deputy guard). The file system's own ARN cannot be named: it needs the role.
    const trust = new iam.ServicePrincipal(S3FILES_SERVICE_PRINCIPAL).withConditions({
      StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
      ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:s3files:${Aws.REGION}:${Aws.ACCOUNT_ID}:file-system/*` },
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: trust,
      description: 'Assumed by Amazon S3 Files to synchronize the message file system with its bucket',
      // Inline in the role itself, so the permissions exist as soon as the file system can use it.
      inlinePolicies: {
        S3FilesSynchronization: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'S3BucketPermissions',
              actions: ['s3:ListBucket', 's3:ListBucketVersions'],
              resources: [bucket.bucketArn],
              conditions: thisAccount,
            }),
            new iam.PolicyStatement({
              sid: 'S3ObjectPermissions',
              actions: ['s3:AbortMultipartUpload', 's3:DeleteObject*', 's3:GetObject*', 's3:List*', 's3:PutObject*'],
              resources: [bucket.arnForObjects('*')],
              conditions: thisAccount,
            }),
            new iam.PolicyStatement({
              sid: 'EventBridgeManage',
              actions: ['events:DeleteRule', 'events:DisableRule', 'events:EnableRule', 'events:PutRule', 'events:PutTargets', 'events:RemoveTargets'],
              resources: ['arn:aws:events:*:*:rule/DO-NOT-DELETE-S3-Files*'],
              conditions: { StringEquals: { 'events:ManagedBy': S3FILES_SERVICE_PRINCIPAL } },
            }),
            new iam.PolicyStatement({
              sid: 'EventBridgeRead',
              actions: ['events:DescribeRule', 'events:ListRuleNamesByTarget', 'events:ListRules', 'events:ListTargetsByRule'],
              resources: ['arn:aws:events:*:*:rule/*'],
            }),
          ],
        }),
      },
    });
    for (const finding of [
      'AwsSolutions-IAM5[Action::s3:DeleteObject*]',
      'AwsSolutions-IAM5[Action::s3:GetObject*]',
      'AwsSolutions-IAM5[Action::s3:List*]',
      'AwsSolutions-IAM5[Action::s3:PutObject*]',
      `AwsSolutions-IAM5[Resource::<${Stack.of(bucket).getLogicalId(bucket.node.defaultChild as CfnElement)}.Arn>/*]`,
      'AwsSolutions-IAM5[Resource::arn:aws:events:*:*:rule/DO-NOT-DELETE-S3-Files*]',
      'AwsSolutions-IAM5[Resource::arn:aws:events:*:*:rule/*]',
    ]) {
      Validations.of(this.role).acknowledge({
        id: finding,
        reason:
          'The S3 Files synchronization role exactly as AWS documents it (S3 Files user guide, Prerequisites): ' +
          'S3 Files uses version-specific object operations (GetObjectVersion, PutObjectTagging, ...) on every ' +
          "object of this bucket, and manages its own EventBridge rules (DO-NOT-DELETE-S3-Files*, events:ManagedBy). " +
          'Every S3 statement is limited to this bucket and this account.',
      });
    }
  }
}
