import { Match, Template } from 'aws-cdk-lib/assertions';
import {
  ACCESS_CONTEXT,
  allStatements,
  asList,
  BASE_STACK,
  FUNCTION_NAMES,
  functionStackName,
  renderIntrinsics,
  resourcesOfType,
  expectSdkCallProvider,
  SDK_CALL_PROVIDER_ID,
  sdkCall,
  synth,
} from './helpers';

const CLIENT_ACTIONS = ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientRootAccess', 'elasticfilesystem:ClientWrite'];
const actionsOf = (s: any): string[] => asList<string>(s.Action).sort();

/**
 * The template's own file-system policy: Deny only (a policy exists, so EFS requires IAM
 * authorization), for everyone: without TLS, as root, and without an access point.
 */
function expectTemplatePolicy(statements: any[]): void {
  expect(statements.map((s) => s.Sid)).toEqual(['DenyInsecureTransport', 'DenyRootAccess', 'DenyWithoutAccessPoint']);
  for (const statement of statements) {
    expect(statement).toMatchObject({ Effect: 'Deny', Principal: { AWS: '*' } });
    expect(statement.Resource).toBeUndefined(); // the file system itself
  }
  const [insecure, root, withoutAccessPoint] = statements;
  expect(actionsOf(insecure)).toEqual(CLIENT_ACTIONS);
  expect(insecure.Condition).toEqual({ Bool: { 'aws:SecureTransport': 'false' } });
  expect(actionsOf(root)).toEqual(['elasticfilesystem:ClientRootAccess']);
  expect(root.Condition).toBeUndefined();
  expect(actionsOf(withoutAccessPoint)).toEqual(CLIENT_ACTIONS);
  expect(withoutAccessPoint.Condition).toEqual({ Null: { 'elasticfilesystem:AccessPointArn': 'true' } });
}

describe('base stack: network, file system, HTTP API', () => {
  const { templates } = synth();
  const json = templates[BASE_STACK];
  const template = Template.fromJSON(json);

  describe('network (no NAT: nothing billed per hour at rest)', () => {
    test('no NAT gateway, internet gateway, EIP or public subnet', () => {
      template.resourceCountIs('AWS::EC2::NatGateway', 0);
      template.resourceCountIs('AWS::EC2::InternetGateway', 0);
      template.resourceCountIs('AWS::EC2::VPCGatewayAttachment', 0);
      template.resourceCountIs('AWS::EC2::EIP', 0);
      template.resourceCountIs('AWS::EC2::Route', 0);
      template.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
      for (const [, subnet] of resourcesOfType(json, 'AWS::EC2::Subnet')) {
        expect(subnet.Properties.MapPublicIpOnLaunch).toBe(false);
      }
    });

    test('two isolated subnets in two different availability zones', () => {
      const subnets = resourcesOfType(json, 'AWS::EC2::Subnet');
      expect(subnets).toHaveLength(2);
      const azs = subnets.map(([, s]) => JSON.stringify(s.Properties.AvailabilityZone));
      expect(new Set(azs).size).toBe(2);
      for (const [, subnet] of subnets) {
        expect(subnet.Properties.Tags).toEqual(
          expect.arrayContaining([{ Key: 'aws-cdk:subnet-type', Value: 'Isolated' }]),
        );
      }
    });

    test('the mount targets accept NFS (2049) from the functions\' security group only', () => {
      const groups = resourcesOfType(json, 'AWS::EC2::SecurityGroup');
      expect(groups).toHaveLength(2);
      const fsGroup = groups.find(([, g]) => /^EFS mount targets/.test(g.Properties.GroupDescription))!;
      const fnGroup = groups.find(([, g]) => /^Message functions/.test(g.Properties.GroupDescription))!;
      // No inline rules that open anything.
      for (const [, group] of groups) {
        expect(group.Properties.SecurityGroupIngress).toBeUndefined();
        for (const egress of asList(group.Properties.SecurityGroupEgress)) {
          expect(egress).toMatchObject({ CidrIp: '255.255.255.255/32', Description: 'Disallow all traffic' });
        }
      }
      const ingress = resourcesOfType(json, 'AWS::EC2::SecurityGroupIngress');
      expect(ingress).toHaveLength(1);
      expect(ingress[0][1].Properties).toMatchObject({
        IpProtocol: 'tcp',
        FromPort: 2049,
        ToPort: 2049,
        GroupId: { 'Fn::GetAtt': [fsGroup[0], 'GroupId'] },
        SourceSecurityGroupId: { 'Fn::GetAtt': [fnGroup[0], 'GroupId'] },
      });
      const egress = resourcesOfType(json, 'AWS::EC2::SecurityGroupEgress');
      expect(egress).toHaveLength(1);
      expect(egress[0][1].Properties).toMatchObject({
        IpProtocol: 'tcp',
        FromPort: 2049,
        ToPort: 2049,
        GroupId: { 'Fn::GetAtt': [fnGroup[0], 'GroupId'] },
        DestinationSecurityGroupId: { 'Fn::GetAtt': [fsGroup[0], 'GroupId'] },
      });
      for (const [, mountTarget] of resourcesOfType(json, 'AWS::EFS::MountTarget')) {
        expect(mountTarget.Properties.SecurityGroups).toEqual([{ 'Fn::GetAtt': [fsGroup[0], 'GroupId'] }]);
      }
    });
  });

  describe('file system', () => {
    test('encrypted at rest, elastic throughput, general purpose, no backups, destroyed with the stack', () => {
      template.resourceCountIs('AWS::EFS::FileSystem', 1);
      template.hasResource('AWS::EFS::FileSystem', {
        Properties: Match.objectLike({
          Encrypted: true,
          ThroughputMode: 'elastic',
          PerformanceMode: 'generalPurpose',
          BackupPolicy: Match.absent(),
          ProvisionedThroughputInMibps: Match.absent(),
        }),
        DeletionPolicy: 'Delete',
        UpdateReplacePolicy: 'Delete',
      });
    });

    test('one mount target in each isolated subnet', () => {
      const subnets = resourcesOfType(json, 'AWS::EC2::Subnet').map(([id]) => id);
      const mountTargets = resourcesOfType(json, 'AWS::EFS::MountTarget');
      expect(mountTargets.map(([, m]) => m.Properties.SubnetId.Ref).sort()).toEqual(subnets.sort());
    });

    test('the template\'s file-system policy denies non-TLS, root and mounts without an access point, and allows nothing', () => {
      const [[, fs]] = resourcesOfType(json, 'AWS::EFS::FileSystem');
      expectTemplatePolicy(fs.Properties.FileSystemPolicy.Statement);
    });

    test('one access point: /export/lambda, uid/gid 1001, created 1001:1001 mode 750', () => {
      template.resourceCountIs('AWS::EFS::AccessPoint', 1);
      template.hasResourceProperties('AWS::EFS::AccessPoint', {
        PosixUser: { Uid: '1001', Gid: '1001' },
        RootDirectory: {
          Path: '/export/lambda',
          CreationInfo: { OwnerUid: '1001', OwnerGid: '1001', Permissions: '750' },
        },
      });
    });

    test('the access point waits for every mount target (functions reference the access point)', () => {
      const [[, accessPoint]] = resourcesOfType(json, 'AWS::EFS::AccessPoint');
      const mountTargets = resourcesOfType(json, 'AWS::EFS::MountTarget').map(([id]) => id);
      expect(mountTargets).toHaveLength(2);
      expect(asList(accessPoint.DependsOn).sort()).toEqual(expect.arrayContaining(mountTargets.sort()));
    });
  });

  describe('HTTP API', () => {
    test('an HTTP API with no routes, integrations or quick-create target of its own', () => {
      template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
      template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
        ProtocolType: 'HTTP',
        Target: Match.absent(),
        RouteKey: Match.absent(),
      });
      template.resourceCountIs('AWS::ApiGatewayV2::Route', 0);
      template.resourceCountIs('AWS::ApiGatewayV2::Integration', 0);
    });

    test('one $default stage: auto-deployed, throttled, access-logged to a log group with retention', () => {
      template.resourceCountIs('AWS::ApiGatewayV2::Stage', 1);
      const [[logGroupId, logGroup]] = resourcesOfType(json, 'AWS::Logs::LogGroup').filter(([id]) => id.startsWith('ApiAccessLogs'));
      expect(logGroup.Properties.RetentionInDays).toBe(7);
      const [[, stage]] = resourcesOfType(json, 'AWS::ApiGatewayV2::Stage');
      expect(stage.Properties).toMatchObject({
        StageName: '$default',
        AutoDeploy: true,
        DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
        AccessLogSettings: { DestinationArn: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
      });
      const format = JSON.parse(stage.Properties.AccessLogSettings.Format);
      expect(format).toMatchObject({ requestId: '$context.requestId', routeKey: '$context.routeKey', status: '$context.status' });
    });

    test('the API URL is a stack output', () => {
      const [[apiId]] = resourcesOfType(json, 'AWS::ApiGatewayV2::Api');
      template.hasOutput('ApiUrl', {
        Value: {
          'Fn::Join': ['', ['https://', { Ref: apiId }, '.execute-api.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }, '/']],
        },
      });
    });
  });
});

describe.each(Object.keys(ACCESS_CONTEXT) as Array<keyof typeof ACCESS_CONTEXT>)(
  'access=%s: the access point is the only way into the file system',
  (mode) => {
    const { templates } = synth({ context: ACCESS_CONTEXT[mode] });
    const json = templates[BASE_STACK];
    const [[fileSystemId, fileSystem]] = resourcesOfType(json, 'AWS::EFS::FileSystem');
    const [[accessPointId]] = resourcesOfType(json, 'AWS::EFS::AccessPoint');
    const installers = resourcesOfType(json, 'Custom::EfsAccessPointOnlyPolicy');
    const accessPointArn = `arn:\${AWS::Partition}:elasticfilesystem:\${AWS::Region}:\${AWS::AccountId}:access-point/\${${accessPointId}}`;

    test('one custom resource puts the enforced policy on this file system, on create and on every update', () => {
      expect(installers).toHaveLength(1);
      const [[, installer]] = installers;
      for (const which of ['Create', 'Update'] as const) {
        const call = sdkCall(installer, which);
        expect(call).toMatchObject({
          service: 'EFS',
          action: 'putFileSystemPolicy',
          parameters: { FileSystemId: `\${${fileSystemId}}` },
          physicalResourceId: { id: `\${${fileSystemId}}` },
        });
        const policy = JSON.parse(call.parameters.Policy);
        expect(Object.keys(call.parameters).sort()).toEqual(['FileSystemId', 'Policy']); // no lockout bypass
        // The template's statements, then a Deny of every client action through any other access point.
        expectTemplatePolicy(policy.Statement.slice(0, 3));
        expect(policy.Statement).toHaveLength(4);
        expect(policy.Statement[3]).toEqual({
          Sid: 'DenyOtherAccessPoints',
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: CLIENT_ACTIONS,
          Condition: { StringNotEquals: { 'elasticfilesystem:AccessPointArn': accessPointArn } },
        });
        expect(policy.Statement.every((st: any) => st.Effect === 'Deny')).toBe(true);
      }
    });

    test('the access point it admits is the one every function mounts and is granted', () => {
      for (const binary of FUNCTION_NAMES) {
        const fnJson = templates[functionStackName(binary)];
        const [[, fn]] = resourcesOfType(fnJson, 'AWS::Lambda::Function');
        const mounted = renderIntrinsics(fn.Properties.FileSystemConfigs[0].Arn);
        const grant = allStatements(fnJson).find((st) => asList<string>(st.Action).includes('elasticfilesystem:ClientMount'));
        expect(renderIntrinsics(grant.Condition.StringEquals['elasticfilesystem:AccessPointArn'])).toBe(mounted);
        // The base stack's output of that access point's id, in the same ARN.
        const output = Object.entries(json.Outputs).find(([name]) => mounted === `\${Output:${name}}`);
        expect(output).toBeDefined();
        // The ARN of the access point the policy names (as an ARN built from its id).
        expect((output![1] as any).Value).toEqual({ 'Fn::GetAtt': [accessPointId, 'Arn'] });
        expect(accessPointArn).toContain(`access-point/\${${accessPointId}}`);
      }
    });

    test('it runs after the file system and the access point, and puts the template\'s policy back when deleted', () => {
      const [[, installer]] = installers;
      const create = renderIntrinsics(installer.Properties.Create);
      expect(create).toContain(`\${${fileSystemId}}`);
      expect(create).toContain(`\${${accessPointId}}`);
      const remove = sdkCall(installer, 'Delete');
      expect(remove).toMatchObject({
        service: 'EFS',
        action: 'putFileSystemPolicy',
        parameters: { FileSystemId: `\${${fileSystemId}}` },
        ignoreErrorCodesMatching: 'FileSystemNotFound',
      });
      expect(JSON.parse(remove.parameters.Policy)).toEqual(fileSystem.Properties.FileSystemPolicy);
    });

    test('its provider may put this file system\'s policy and write its own logs, nothing else', () => {
      const [[, installer]] = installers;
      expect(installer.Properties.ServiceToken).toEqual({ 'Fn::GetAtt': [SDK_CALL_PROVIDER_ID, 'Arn'] });
      const [[policyId, policy]] = resourcesOfType(json, 'AWS::IAM::Policy').filter(([id]) => id.startsWith('StorageAccessPointOnlyPolicy'));
      expect(policy.Properties.PolicyDocument.Statement).toEqual([
        { Action: 'elasticfilesystem:PutFileSystemPolicy', Effect: 'Allow', Resource: { 'Fn::GetAtt': [fileSystemId, 'Arn'] } },
      ]);
      expect(asList(installer.DependsOn)).toContain(policyId);
      expectSdkCallProvider(json);
    });

    test('a digest of the file system\'s resource is a property: a change to it re-runs the installer', () => {
      const [[, installer]] = installers;
      expect(installer.Properties.FileSystemResourceDigest).toMatch(/^[0-9a-f]{64}$/);
    });
  },
);

describe('the access-point policy installer re-runs when the file system changes, and only then', () => {
  const digest = (context: Record<string, unknown>) => {
    const [[, installer]] = resourcesOfType(synth({ context }).templates[BASE_STACK], 'Custom::EfsAccessPointOnlyPolicy');
    return installer.Properties.FileSystemResourceDigest;
  };

  test('the same in every access mode; another when the file system\'s resource changes (retain)', () => {
    const iam = digest({});
    expect(digest(ACCESS_CONTEXT.public)).toBe(iam);
    expect(digest({ retentionDays: '7' })).toBe(iam);
    expect(digest({ removalPolicy: 'retain' })).not.toBe(iam);
  });
});

describe('base stack settings from context', () => {
  test('removalPolicy=retain keeps the file system and logs; throttling is configurable', () => {
    const { templates } = synth({
      context: { removalPolicy: 'retain', throttleRateLimit: '5', throttleBurstLimit: '7', logRetentionDays: '30' },
    });
    const template = Template.fromJSON(templates[BASE_STACK]);
    template.hasResource('AWS::EFS::FileSystem', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    template.hasResource('AWS::Logs::LogGroup', { DeletionPolicy: 'Retain', Properties: { RetentionInDays: 30 } });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 7 },
    });
  });

  test('invalid settings are rejected', () => {
    expect(() => synth({ context: { removalPolicy: 'snapshot' } })).toThrow(/removalPolicy/);
    expect(() => synth({ context: { logRetentionDays: '8' } })).toThrow(/logRetentionDays/);
    expect(() => synth({ context: { reservedConcurrency: '-1' } })).toThrow(/reservedConcurrency/);
    // Function names are `<stackPrefix>-<binary>`: Lambda allows 64 characters.
    expect(() => synth({ context: { stackPrefix: 'X'.repeat(60) } })).toThrow(/stackPrefix/);
    expect(() => synth({ context: { stackPrefix: 'with.dot' } })).toThrow(/stackPrefix/);
  });
});
