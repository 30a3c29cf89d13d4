import { Match, Template } from 'aws-cdk-lib/assertions';
import { asList, BASE_STACK, resourcesOfType, synth } from './helpers';

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

    test('the file-system policy denies non-TLS access and root access, and allows nothing', () => {
      const [[, fs]] = resourcesOfType(json, 'AWS::EFS::FileSystem');
      const statements = fs.Properties.FileSystemPolicy.Statement;
      expect(statements.length).toBeGreaterThan(0); // a policy exists: IAM authorization is required
      for (const statement of statements) {
        expect(statement.Effect).toBe('Deny');
      }
      const actions = (s: any) => asList<string>(s.Action);
      const insecure = statements.find((s: any) => s.Condition?.Bool?.['aws:SecureTransport'] === 'false');
      expect(insecure).toBeDefined();
      expect(insecure.Principal).toEqual({ AWS: '*' });
      expect(actions(insecure).sort()).toEqual([
        'elasticfilesystem:ClientMount',
        'elasticfilesystem:ClientRootAccess',
        'elasticfilesystem:ClientWrite',
      ]);
      const root = statements.find((s: any) => s.Condition === undefined && actions(s).includes('elasticfilesystem:ClientRootAccess'));
      expect(root).toMatchObject({ Effect: 'Deny', Principal: { AWS: '*' } });
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
      const [[logGroupId, logGroup]] = resourcesOfType(json, 'AWS::Logs::LogGroup');
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
