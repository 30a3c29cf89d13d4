import { App, CfnResource, RemovalPolicy } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIRECT_S3_READ, EXPIRATION_DAYS_AFTER_LAST_ACCESS, IMPORT_SIZE_LESS_THAN, NONCURRENT_VERSION_DAYS } from '../lib/s3files';
import { PENDING_EXPORTS_THRESHOLD, S3FILES_NAMESPACE } from '../lib/s3files-monitoring';
import { BaseStack } from '../lib/stacks';
import { ACCESS_POINT_PATH, ACCESS_POINT_PERMISSIONS, NFS_PORT, POSIX_GID, POSIX_UID } from '../lib/storage';
import { parseStorage } from '../lib/storage-kind';
import {
  ACCESS_CONTEXT,
  allStatements,
  asList,
  BASE_STACK,
  baseValueOutput,
  copyWorkspace,
  FUNCTION_NAMES,
  functionStackName,
  resourcesOfType,
  synth,
} from './helpers';

// `-c storage=s3files` in every access mode: one synthesis per mode serves the resource, grant and
// cdk-nag checks (the EFS mode's are in base-stack, function-stacks, operations and nag.test.ts).

type Mode = keyof typeof ACCESS_CONTEXT;
const MODES = Object.keys(ACCESS_CONTEXT) as Mode[];
const S3FILES = { storage: 's3files' };
const WRITERS = ['post-message', 'delete-messages'];
const S3FILES_CLIENT = ['s3files:ClientMount', 's3files:ClientRootAccess', 's3files:ClientWrite'];
const actionsOf = (s: any): string[] => asList<string>(s.Action).sort();
const only = (template: any, type: string): [string, any] => {
  const found = resourcesOfType(template, type);
  expect(found.map(([id]) => id)).toHaveLength(1);
  return found[0];
};
const getAtt = (id: string, attribute: string) => ({ 'Fn::GetAtt': [id, attribute] });
const objectsOf = (bucketId: string) => ({ 'Fn::Join': ['', [getAtt(bucketId, 'Arn'), '/*']] });
/** The names of the base stack's outputs whose value is `value`. */
const outputsWithValue = (base: any, value: unknown): string[] =>
  Object.entries(base.Outputs ?? {})
    .filter(([, o]: [string, any]) => JSON.stringify(o.Value) === JSON.stringify(value))
    .map(([name]) => name);
/** A reference, in a function stack, to one of the base stack's `outputs`. */
const expectBaseOutput = (reference: any, outputs: string[]) => {
  expect(outputs.length).toBeGreaterThan(0);
  expect(reference?.['Fn::GetStackOutput']?.StackName).toBe(BASE_STACK);
  expect(outputs).toContain(reference['Fn::GetStackOutput'].OutputName);
};
/** The message function of a function stack (the other is CDK's SDK-call provider). */
const handler = (template: any): any => resourcesOfType(template, 'AWS::Lambda::Function').find(([id]) => id.startsWith('HandlerFunction'))![1];
const codeKey = (template: any) => handler(template).Properties.Code.S3Key;

/** Every acknowledged cdk-nag finding (rule -> construct paths), reported as if unacknowledged. */
function nagFindings(app: App): Record<string, string[]> {
  const pack = new AwsSolutionsChecks(app);
  (pack as any).isAcknowledged = () => false; // cdk-nag 3.x keeps this check in a private method
  const found: Record<string, string[]> = {};
  for (const violation of pack.validateScope(app).violations) {
    found[violation.ruleName] = violation.violatingResources.map((r: any) => r.constructPath).sort();
  }
  return found;
}

/** The findings only storage=s3files has, each acknowledged in lib/s3files.ts with its reason. */
const S3FILES_FINDINGS: Record<string, string[]> = {
  'AwsSolutions-S1': [`${BASE_STACK}/Storage/S3Files/Bucket/Bucket/Resource`],
  ...Object.fromEntries(
    [
      'Action::s3:DeleteObject*',
      'Action::s3:GetObject*',
      'Action::s3:List*',
      'Action::s3:PutObject*',
      'Resource::<StorageS3FilesBucketB3395EE4.Arn>/*',
      'Resource::arn:aws:events:*:*:rule/DO-NOT-DELETE-S3-Files*',
      'Resource::arn:aws:events:*:*:rule/*',
    ].map((f) => [`AwsSolutions-IAM5[${f}]`, [`${BASE_STACK}/Storage/S3Files/SyncRole/Role/Resource`]]),
  ),
};
const isS3FilesPath = (path: string) => path.includes('/Storage/S3Files/') || path.includes('S3AutoDeleteObjects');

describe('context storage', () => {
  test('efs (the default) or s3files, case-insensitive; anything else is refused at synth', () => {
    expect(parseStorage(undefined)).toBe('efs');
    expect(parseStorage('S3Files')).toBe('s3files');
    expect(parseStorage(' efs ')).toBe('efs');
    expect(() => parseStorage('s3')).toThrow(/context 'storage' must be one of efs, s3files, got 's3'/);
    expect(() => synth({ context: { storage: 'fsx' } })).toThrow(/context 'storage'/);
  });
});

describe.each(MODES)('storage=s3files, access=%s', (mode) => {
  const result = synth({ context: { ...ACCESS_CONTEXT[mode], ...S3FILES } });
  const base = result.templates[BASE_STACK];
  const [bucketId, bucket] = only(base, 'AWS::S3::Bucket');
  const [roleId, role] = resourcesOfType(base, 'AWS::IAM::Role').find(([id]) => id.startsWith('StorageS3FilesSyncRole'))!;
  const [fsId, fileSystem] = only(base, 'AWS::S3Files::FileSystem');
  const [apId, accessPoint] = only(base, 'AWS::S3Files::AccessPoint');
  const mountTargets = resourcesOfType(base, 'AWS::S3Files::MountTarget');
  const [autoDeleteRoleId] = resourcesOfType(base, 'AWS::IAM::Role').find(([id]) => id.startsWith('CustomS3AutoDeleteObjects'))!;

  describe('base stack', () => {
    test('the S3 Files resources replace EFS entirely', () => {
      expect(Object.values(base.Resources).filter((r: any) => r.Type.startsWith('AWS::EFS::'))).toEqual([]);
      expect(JSON.stringify(base)).not.toMatch(/elasticfilesystem:Client|AWS\/EFS/);
      expect(resourcesOfType(base, 'AWS::S3Files::FileSystemPolicy')).toHaveLength(1);
      expect(base.Description).toMatch(/S3 Files/);
    });

    test('the bucket: versioned, SSE-S3, public access blocked, bucket owner enforced', () => {
      expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
      expect(bucket.Properties.BucketEncryption).toEqual({
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      });
      expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(bucket.Properties.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
      expect(bucket.Properties.BucketName).toBeUndefined();
      // No notification configuration of ours: S3 Files manages its own EventBridge rule.
      expect(bucket.Properties.NotificationConfiguration).toBeUndefined();
    });

    test('one lifecycle rule: noncurrent versions expire, incomplete uploads abort; never current versions, never a transition', () => {
      expect(bucket.Properties.LifecycleConfiguration).toEqual({
        Rules: [
          {
            Id: 'NoncurrentVersionsAndIncompleteUploads',
            Status: 'Enabled',
            NoncurrentVersionExpiration: { NoncurrentDays: NONCURRENT_VERSION_DAYS },
            ExpiredObjectDeleteMarker: true,
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          },
        ],
      });
    });

    test('the bucket policy: TLS only, and only S3 Files (and the emptying function) may write, delete or restore objects', () => {
      const [, policy] = only(base, 'AWS::S3::BucketPolicy');
      expect(policy.Properties.Bucket).toEqual({ Ref: bucketId });
      const statements = policy.Properties.PolicyDocument.Statement;
      const tls = statements.find((s: any) => s.Condition?.Bool?.['aws:SecureTransport'] === 'false');
      expect(tls).toMatchObject({ Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:*' });
      expect(tls.Resource).toEqual([getAtt(bucketId, 'Arn'), objectsOf(bucketId)]);
      const writers = statements.find((s: any) => s.Sid === 'OnlyS3FilesWritesObjects');
      expect(writers).toEqual({
        Sid: 'OnlyS3FilesWritesObjects',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: ['s3:DeleteObject*', 's3:PutObject*', 's3:RestoreObject'],
        Resource: objectsOf(bucketId),
        Condition: { ArnNotEquals: { 'aws:PrincipalArn': [getAtt(roleId, 'Arn'), getAtt(autoDeleteRoleId, 'Arn')] } },
      });
      // The one Allow is CDK's emptying function, on this bucket only.
      const allows = statements.filter((s: any) => s.Effect === 'Allow');
      expect(allows).toHaveLength(1);
      expect(allows[0].Principal).toEqual({ AWS: getAtt(autoDeleteRoleId, 'Arn') });
      expect(allows[0].Resource).toEqual([getAtt(bucketId, 'Arn'), objectsOf(bucketId)]);
    });

    test('the bucket and the file system go with the stack (removalPolicy=destroy); the bucket is emptied after the file system is deleted', () => {
      expect(bucket.DeletionPolicy).toBe('Delete');
      expect(fileSystem.DeletionPolicy).toBe('Delete');
      const [, emptying] = only(base, 'Custom::S3AutoDeleteObjects');
      expect(emptying.Properties.BucketName).toEqual({ Ref: bucketId });
      expect(emptying.DependsOn).toContain(fsId);
    });

    test('the synchronization role: S3 Files only, for this account\'s file systems; AWS\'s documented statements, this bucket only', () => {
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        {
          Action: 'sts:AssumeRole',
          Effect: 'Allow',
          Principal: { Service: 'elasticfilesystem.amazonaws.com' },
          Condition: {
            StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
            ArnLike: {
              'aws:SourceArn': {
                'Fn::Join': [
                  '',
                  ['arn:', { Ref: 'AWS::Partition' }, ':s3files:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':file-system/*'],
                ],
              },
            },
          },
        },
      ]);
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      const thisAccount = { StringEquals: { 'aws:ResourceAccount': { Ref: 'AWS::AccountId' } } };
      expect(role.Properties.Policies).toEqual([
        {
          PolicyName: 'S3FilesSynchronization',
          PolicyDocument: {
            Version: '2012-10-17',
            Statement: [
              {
                Sid: 'S3BucketPermissions',
                Effect: 'Allow',
                Action: ['s3:ListBucket', 's3:ListBucketVersions'],
                Resource: getAtt(bucketId, 'Arn'),
                Condition: thisAccount,
              },
              {
                Sid: 'S3ObjectPermissions',
                Effect: 'Allow',
                Action: ['s3:AbortMultipartUpload', 's3:DeleteObject*', 's3:GetObject*', 's3:List*', 's3:PutObject*'],
                Resource: objectsOf(bucketId),
                Condition: thisAccount,
              },
              {
                Sid: 'EventBridgeManage',
                Effect: 'Allow',
                Action: ['events:DeleteRule', 'events:DisableRule', 'events:EnableRule', 'events:PutRule', 'events:PutTargets', 'events:RemoveTargets'],
                Resource: 'arn:aws:events:*:*:rule/DO-NOT-DELETE-S3-Files*',
                Condition: { StringEquals: { 'events:ManagedBy': 'elasticfilesystem.amazonaws.com' } },
              },
              {
                Sid: 'EventBridgeRead',
                Effect: 'Allow',
                Action: ['events:DescribeRule', 'events:ListRuleNamesByTarget', 'events:ListRules', 'events:ListTargetsByRule'],
                Resource: 'arn:aws:events:*:*:rule/*',
              },
            ],
          },
        },
      ]);
      // No other policy is attached to it (the permissions exist as soon as the role does).
      const attached = resourcesOfType(base, 'AWS::IAM::Policy').filter(([, p]) => JSON.stringify(p.Properties.Roles ?? []).includes(roleId));
      expect(attached).toEqual([]);
    });

    test('the file system: this bucket, the sync role, every message imported whole, 30 days on the fast storage', () => {
      expect(fileSystem.Properties).toEqual({
        Bucket: getAtt(bucketId, 'Arn'),
        RoleArn: getAtt(roleId, 'Arn'),
        SynchronizationConfiguration: {
          ImportDataRules: [{ Prefix: '', Trigger: 'ON_DIRECTORY_FIRST_ACCESS', SizeLessThan: IMPORT_SIZE_LESS_THAN }],
          ExpirationDataRules: [{ DaysAfterLastAccess: EXPIRATION_DAYS_AFTER_LAST_ACCESS }],
        },
      });
      // The largest message file (768 KiB + its header) is imported whole.
      expect(IMPORT_SIZE_LESS_THAN).toBeGreaterThan(768 * 1024 + 4096);
    });

    test('one mount target in each isolated subnet, behind the group that admits NFS from the functions only', () => {
      const isolated = resourcesOfType(base, 'AWS::EC2::Subnet')
        .filter(([, s]) => JSON.stringify(s.Properties.Tags).includes('"Isolated"'))
        .map(([id]) => id)
        .sort();
      expect(isolated).toHaveLength(2);
      expect(mountTargets.map(([, m]) => m.Properties.SubnetId.Ref).sort()).toEqual(isolated);
      const groups = resourcesOfType(base, 'AWS::EC2::SecurityGroup');
      expect(groups).toHaveLength(2);
      const [mtGroup] = groups.find(([, g]) => /^S3 Files mount targets/.test(g.Properties.GroupDescription))!;
      const [fnGroup] = groups.find(([, g]) => /^Message functions/.test(g.Properties.GroupDescription))!;
      for (const [, mountTarget] of mountTargets) {
        expect(mountTarget.Properties).toEqual({
          FileSystemId: getAtt(fsId, 'FileSystemId'),
          SubnetId: mountTarget.Properties.SubnetId,
          SecurityGroups: [getAtt(mtGroup, 'GroupId')],
        });
      }
      const ingress = resourcesOfType(base, 'AWS::EC2::SecurityGroupIngress');
      expect(ingress.map(([, i]) => i.Properties)).toEqual([
        expect.objectContaining({
          IpProtocol: 'tcp',
          FromPort: NFS_PORT,
          ToPort: NFS_PORT,
          GroupId: getAtt(mtGroup, 'GroupId'),
          SourceSecurityGroupId: getAtt(fnGroup, 'GroupId'),
        }),
      ]);
    });

    test('one access point: the same POSIX identity and root directory as on EFS, created after every mount target', () => {
      expect(accessPoint.Properties).toEqual({
        FileSystemId: getAtt(fsId, 'FileSystemId'),
        PosixUser: { Uid: POSIX_UID, Gid: POSIX_GID },
        RootDirectory: {
          Path: ACCESS_POINT_PATH,
          CreationPermissions: { OwnerUid: POSIX_UID, OwnerGid: POSIX_GID, Permissions: ACCESS_POINT_PERMISSIONS },
        },
      });
      expect([POSIX_UID, POSIX_GID, ACCESS_POINT_PATH, ACCESS_POINT_PERMISSIONS]).toEqual(['1001', '1001', '/export/lambda', '750']);
      expect([...accessPoint.DependsOn].sort()).toEqual(mountTargets.map(([id]) => id).sort());
    });

    test('the file-system policy denies, to everyone: non-TLS, root, and anything but this access point; it allows nothing', () => {
      const [, policy] = only(base, 'AWS::S3Files::FileSystemPolicy');
      expect(policy.Properties.FileSystemId).toEqual(getAtt(fsId, 'FileSystemId'));
      const statements = policy.Properties.Policy.Statement;
      expect(statements.map((s: any) => s.Sid)).toEqual(['DenyInsecureTransport', 'DenyRootAccess', 'DenyOtherThanTheAccessPoint']);
      for (const statement of statements) {
        expect(statement).toMatchObject({ Effect: 'Deny', Principal: { AWS: '*' } });
      }
      const [tls, root, others] = statements;
      expect(actionsOf(tls)).toEqual(S3FILES_CLIENT);
      expect(tls.Condition).toEqual({ Bool: { 'aws:SecureTransport': 'false' } });
      expect(actionsOf(root)).toEqual(['s3files:ClientRootAccess']);
      expect(root.Condition).toBeUndefined();
      expect(actionsOf(others)).toEqual(S3FILES_CLIENT);
      expect(others.Condition).toEqual({ StringNotEquals: { 's3files:AccessPointArn': getAtt(apId, 'AccessPointArn') } });
      expect(policy.DeletionPolicy).toBe('Delete');
    });

    test('outputs: the bucket name, the file system and access point ids', () => {
      expect(base.Outputs.BucketName.Value).toEqual({ Ref: bucketId });
      expect(base.Outputs.FileSystemId.Value).toEqual(getAtt(fsId, 'FileSystemId'));
      expect(base.Outputs.AccessPointId.Value).toEqual(getAtt(apId, 'AccessPointId'));
    });

    test('alarms: the API\'s two and six S3 Files ones, each notifying the topic; no EFS alarm', () => {
      const alarms = Object.fromEntries(
        resourcesOfType(base, 'AWS::CloudWatch::Alarm').map(([id, a]) => [id.replace(/^Alarms/, '').replace(/[0-9A-F]{8}$/, ''), a.Properties]),
      );
      expect(Object.keys(alarms).sort()).toEqual(
        [
          'Api5xxRate',
          'ApiLatencyP99',
          'S3FilesClientConnections',
          'S3FilesExportFailures',
          'S3FilesImportFailures',
          'S3FilesLostAndFound',
          'S3FilesPendingExports',
          'S3FilesStorage',
        ].sort(),
      );
      const [topicId] = only(base, 'AWS::SNS::Topic');
      for (const alarm of Object.values(alarms) as any[]) {
        expect(alarm.AlarmActions).toEqual([{ Ref: topicId }]);
        expect(JSON.stringify(alarm.AlarmDescription)).toMatch(/Look first at/);
        if (alarm.Namespace !== 'AWS/ApiGateway') {
          expect(alarm.Namespace).toBe(S3FILES_NAMESPACE);
          expect(alarm.Dimensions).toEqual([{ Name: 'FileSystemId', Value: getAtt(fsId, 'FileSystemId') }]);
        }
      }
      for (const [name, metric] of [
        ['S3FilesLostAndFound', 'LostAndFoundFiles'],
        ['S3FilesExportFailures', 'ExportFailures'],
        ['S3FilesImportFailures', 'ImportFailures'],
      ]) {
        expect(alarms[name]).toMatchObject({ MetricName: metric, Statistic: 'Maximum', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' });
      }
      expect(alarms.S3FilesPendingExports).toMatchObject({
        MetricName: 'PendingExports',
        Statistic: 'Minimum',
        Threshold: PENDING_EXPORTS_THRESHOLD,
        EvaluationPeriods: 6,
        Period: 300,
      });
      expect(alarms.S3FilesClientConnections).toMatchObject({ MetricName: 'ClientConnections', Threshold: 20000, Period: 60 });
      expect(alarms.S3FilesStorage).toMatchObject({ MetricName: 'StorageBytes', Statistic: 'Maximum', Threshold: 10 * 1024 ** 3, Period: 3600 });
    });

    test('the dashboard shows S3 Files and the bucket, not EFS', () => {
      const [, dashboard] = only(base, 'AWS::CloudWatch::Dashboard');
      const body = JSON.stringify(dashboard.Properties.DashboardBody);
      expect(body).toContain('AWS/S3/Files');
      for (const metric of ['PendingExports', 'ExportAge', 'ImportAge', 'LostAndFoundFiles', 'ExportFailures', 'ImportFailures', 'StorageBytes', 'BucketSizeBytes']) {
        expect(body).toContain(metric);
      }
      expect(body).toContain(bucketId);
      expect(body).not.toContain('AWS/EFS');
    });
  });

  describe.each(FUNCTION_NAMES)('%s', (binary) => {
    const json = result.templates[functionStackName(binary)];
    const fn = handler(json);
    const accessPointOutputs = outputsWithValue(base, getAtt(apId, 'AccessPointArn'));
    const fileSystemOutputs = outputsWithValue(base, getAtt(fsId, 'FileSystemArn'));

    test(`mounts the access point at /mnt/msg with DirectS3Read ${DIRECT_S3_READ[binary].mode} (a deliberate choice)`, () => {
      const configs = fn.Properties.FileSystemConfigs;
      expect(configs).toHaveLength(1);
      expect(configs[0].LocalMountPath).toBe('/mnt/msg');
      expectBaseOutput(configs[0].Arn, accessPointOutputs);
      expect(configs[0].S3FilesConfig).toEqual({ DirectS3Read: 'DISABLED' });
      expect(DIRECT_S3_READ[binary]).toEqual({ mode: 'DISABLED', why: expect.stringMatching(/\w/) });
      expect(fn.Properties.Environment.Variables.MESSAGES_DIR).toBe('/mnt/msg');
    });

    test('its alarms send an operator to the S3 Files widgets, never to EFS ones', () => {
      const descriptions = resourcesOfType(json, 'AWS::CloudWatch::Alarm').map(([, alarm]) => JSON.stringify(alarm.Properties.AlarmDescription));
      expect(descriptions.filter((d) => d.includes('S3 Files widgets'))).toHaveLength(2);
      for (const description of descriptions) {
        expect(description).not.toMatch(/EFS/);
      }
    });

    test(`${WRITERS.includes(binary) ? 'ClientMount + ClientWrite' : 'ClientMount only (read-only)'}, on the file system, through the access point; no S3 or EFS rights`, () => {
      const grants = allStatements(json).filter((s) => asList<string>(s.Action).some((a) => a.startsWith('s3files:')));
      expect(grants).toHaveLength(1);
      const [grant] = grants;
      expect(grant.Effect).toBe('Allow');
      expect(actionsOf(grant)).toEqual(WRITERS.includes(binary) ? ['s3files:ClientMount', 's3files:ClientWrite'] : ['s3files:ClientMount']);
      expectBaseOutput(grant.Resource, fileSystemOutputs);
      expect(Object.keys(grant.Condition)).toEqual(['StringEquals']);
      expect(grant.Condition.StringEquals['s3files:AccessPointArn']).toEqual(fn.Properties.FileSystemConfigs[0].Arn);
      const text = JSON.stringify(json);
      expect(text).not.toMatch(/elasticfilesystem:|"s3:|s3files:ClientRootAccess/);
      if (!WRITERS.includes(binary)) {
        expect(text).not.toContain('s3files:ClientWrite');
      }
    });
  });

  test('cdk-nag: no unacknowledged finding; the S3 Files ones are exactly those documented in lib/s3files.ts', () => {
    const report = JSON.parse(readFileSync(join(result.outdir, 'validation-report.json'), 'utf8'));
    const violations = (report.pluginReports ?? [])
      .flatMap((r: any) => r.violations ?? [])
      .filter((v: any) => !v.ruleName.startsWith('Annotation::'));
    expect(violations).toEqual([]);
    const found = nagFindings(result.app);
    const s3filesOnly = Object.fromEntries(
      Object.entries(found)
        .map(([rule, paths]) => [rule, paths.filter(isS3FilesPath)] as const)
        .filter(([, paths]) => paths.length > 0),
    );
    expect(s3filesOnly).toEqual(S3FILES_FINDINGS);
    // Every other finding is one the EFS mode has too (nag.test.ts lists them): none in the
    // storage but the VPC's.
    const storagePaths = Object.values(found)
      .flat()
      .filter((p) => p.includes('/Storage/') && !isS3FilesPath(p));
    expect(storagePaths).toEqual([`${BASE_STACK}/Storage/Vpc/Resource`]);
  });
});

describe('switching storage', () => {
  const root = copyWorkspace();
  const efs = synth({ workspaceRoot: root });
  const s3files = synth({ workspaceRoot: root, context: S3FILES });

  test.each(FUNCTION_NAMES)('%s: the same code asset, environment, memory and role actions (but the mount\'s) on EFS and on S3 Files', (binary) => {
    const name = functionStackName(binary);
    expect(codeKey(s3files.templates[name])).toMatch(/^[0-9a-f]{64}\.zip$/);
    expect(codeKey(s3files.templates[name])).toEqual(codeKey(efs.templates[name]));
    const props = (t: any) => {
      const { FileSystemConfigs, ...rest } = handler(t).Properties;
      return { rest, mountPath: FileSystemConfigs[0].LocalMountPath };
    };
    // The VPC, subnets and security group references are the same too.
    expect(props(s3files.templates[name])).toEqual(props(efs.templates[name]));
    const otherActions = (t: any) =>
      allStatements(t)
        .flatMap((s) => asList<string>(s.Action))
        .filter((a) => !/^(s3files|elasticfilesystem):Client/.test(a))
        .sort();
    expect(otherActions(s3files.templates[name])).toEqual(otherActions(efs.templates[name]));
  });

  test('the functions\' security group is the same in both modes (switching does not replace it)', () => {
    const group = (t: any) => resourcesOfType(t, 'AWS::EC2::SecurityGroup').find(([, g]) => /^Message functions/.test(g.Properties.GroupDescription));
    expect(group(s3files.templates[BASE_STACK])).toEqual(group(efs.templates[BASE_STACK]));
  });

  test('independent deploys on S3 Files: changing get-messages\' code changes its stack alone', () => {
    const src = join(root, 'functions/get', 'src');
    appendFileSync(join(src, readdirSync(src).filter((f) => f.endsWith('.rs')).sort()[0]), '\n// a code change\n');
    const after = synth({ workspaceRoot: root, context: S3FILES });
    const changed = Object.keys(after.templateText).filter((n) => after.templateText[n] !== s3files.templateText[n]);
    expect(changed).toEqual([functionStackName('get-messages')]);
    expect(codeKey(after.templates[changed[0]])).not.toEqual(codeKey(s3files.templates[changed[0]]));
  });
});

describe('storage=s3files: base values reach the function stacks (lib/base-values.ts)', () => {
  const cfn = (construct: { node: { defaultChild?: unknown } }) => construct.node.defaultChild as CfnResource;
  const before = synth({ context: S3FILES });
  const base = before.templates[BASE_STACK];
  const [fsId] = only(base, 'AWS::S3Files::FileSystem');
  const [apId] = only(base, 'AWS::S3Files::AccessPoint');
  const versionOf = (template: any) => resourcesOfType(template, 'AWS::Lambda::Version')[0][0];

  test("the file system's and access point's ARNs are outputs named after their identity", () => {
    expect(base.Outputs[baseValueOutput(base, 'FileSystemArn')].Value).toEqual(getAtt(fsId, 'FileSystemArn'));
    expect(base.Outputs[baseValueOutput(base, 'AccessPointArn')].Value).toEqual(getAtt(apId, 'AccessPointArn'));
  });

  test('replacing the bucket replaces the file system and its access point: every function stack reads new outputs, and publishes a new version', () => {
    const after = synth({ context: S3FILES, mutate: (b) => cfn(b.base.storage.s3Files!.bucket.bucket).addPropertyOverride('BucketName', 'efs-messages-v2') });
    const renamed = Object.keys(after.templates[BASE_STACK].Outputs).filter((id) => !(id in base.Outputs));
    expect(renamed.map((id) => id.replace(/[0-9a-f]{16}$/, '')).sort()).toEqual(['AccessPointArn', 'FileSystemArn']);
    for (const binary of FUNCTION_NAMES) {
      const name = functionStackName(binary);
      expect(versionOf(after.templates[name])).not.toEqual(versionOf(before.templates[name]));
      expect(JSON.stringify(after.templates[name])).toContain(renamed[0]);
    }
  });

  test("changes made in place (the bucket's lifecycle, synchronization, the sync role's policy, tags) leave every function stack byte-identical", () => {
    const after = synth({
      context: S3FILES,
      mutate: (b) => {
        const s3Files = b.base.storage.s3Files!;
        cfn(s3Files.bucket.bucket).addPropertyOverride('LifecycleConfiguration.Rules.0.NoncurrentVersionExpiration.NoncurrentDays', 7);
        s3Files.fileSystem.addPropertyOverride('SynchronizationConfiguration.ExpirationDataRules.0.DaysAfterLastAccess', 60);
        cfn(s3Files.syncRole.role).addPropertyOverride('Description', 'the sync role, v2');
        s3Files.accessPoint.addPropertyOverride('Tags', [{ Key: 'CostCenter', Value: '42' }]);
      },
    });
    expect(after.templateText[BASE_STACK]).not.toEqual(before.templateText[BASE_STACK]);
    for (const binary of FUNCTION_NAMES) {
      const name = functionStackName(binary);
      expect([name, after.templateText[name]]).toEqual([name, before.templateText[name]]);
    }
  });
});

describe('storage=s3files with removalPolicy=retain', () => {
  // The base stack alone (no function stacks): what the removal policy changes.
  const app = new App();
  const stack = new BaseStack(app, 'Retained', {
    deploymentName: 'Retained',
    routes: [],
    functions: [],
    removalPolicy: RemovalPolicy.RETAIN,
    storage: 's3files',
    // Without routes, iam mode's policies would be empty: jwt has none.
    access: { mode: 'jwt', issuer: 'https://issuer.example.com', audience: ['example'] },
  });
  const json = Template.fromStack(stack).toJSON();

  test('the bucket, the file system and its policy are kept; nothing empties the bucket, and only S3 Files may write it', () => {
    const [bucketId, bucket] = only(json, 'AWS::S3::Bucket');
    expect(bucket.DeletionPolicy).toBe('Retain');
    expect(only(json, 'AWS::S3Files::FileSystem')[1].DeletionPolicy).toBe('Retain');
    expect(only(json, 'AWS::S3Files::FileSystemPolicy')[1].DeletionPolicy).toBe('Retain');
    expect(resourcesOfType(json, 'Custom::S3AutoDeleteObjects')).toEqual([]);
    expect(resourcesOfType(json, 'AWS::Lambda::Function')).toEqual(resourcesOfType(json, 'AWS::Lambda::Function').filter(([id]) => !/AutoDelete/.test(id)));
    const [roleId] = resourcesOfType(json, 'AWS::IAM::Role').find(([id]) => id.startsWith('StorageS3FilesSyncRole'))!;
    const [, policy] = only(json, 'AWS::S3::BucketPolicy');
    const writers = policy.Properties.PolicyDocument.Statement.find((s: any) => s.Sid === 'OnlyS3FilesWritesObjects');
    expect(writers.Condition).toEqual({ ArnNotEquals: { 'aws:PrincipalArn': [getAtt(roleId, 'Arn')] } });
    expect(writers.Resource).toEqual(objectsOf(bucketId));
    expect(policy.Properties.PolicyDocument.Statement.filter((s: any) => s.Effect === 'Allow')).toEqual([]);
  });
});
