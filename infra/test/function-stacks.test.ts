import { Match, Template } from 'aws-cdk-lib/assertions';
import {
  allStatements,
  asList,
  BASE_STACK,
  baseOutputRef,
  baseValueOutput,
  CONTRACT_ROUTES,
  FUNCTION_NAMES,
  functionStackName,
  resourcesOfType,
  SDK_CALL_PROVIDER_ID,
  synth,
} from './helpers';

const WRITERS = ['post-message', 'delete-messages'];

describe('function stacks', () => {
  const { templates, assembly } = synth();
  const template = (binary: string) => templates[functionStackName(binary)];

  test('one stack per function, besides the base stack', () => {
    expect(Object.keys(templates).sort()).toEqual([BASE_STACK, ...FUNCTION_NAMES.map(functionStackName)].sort());
  });

  describe.each(FUNCTION_NAMES)('%s', (binary) => {
    const json = template(binary);
    const t = Template.fromJSON(json);
    const fnId = () => resourcesOfType(json, 'AWS::Lambda::Function')[0][0];
    const aliasId = () => resourcesOfType(json, 'AWS::Lambda::Alias')[0][0];

    test('publishes a version and a `live` alias on it; no permission on the function itself', () => {
      const versions = resourcesOfType(json, 'AWS::Lambda::Version');
      expect(versions).toHaveLength(1);
      expect(versions[0][1].Properties.FunctionName).toEqual({ Ref: fnId() });
      const aliases = resourcesOfType(json, 'AWS::Lambda::Alias');
      expect(aliases).toHaveLength(1);
      expect(aliases[0][1].Properties).toMatchObject({
        Name: 'live',
        FunctionName: { Ref: fnId() },
        FunctionVersion: { 'Fn::GetAtt': [versions[0][0], 'Version'] },
      });
      for (const [, permission] of resourcesOfType(json, 'AWS::Lambda::Permission')) {
        expect(permission.Properties.FunctionName).toEqual({ Ref: aliasId() });
      }
    });

    test('the function has a fixed name, the one the dashboard uses', () => {
      t.hasResourceProperties('AWS::Lambda::Function', { FunctionName: functionStackName(binary) });
    });

    test('one arm64 provided.al2023 function, memory from the power-tuning table, 10 s timeout (< the HTTP API\'s 30 s)', () => {
      // Besides it, only the deploy-time SDK-call provider (its routes' throttles: see below).
      const functions = resourcesOfType(json, 'AWS::Lambda::Function');
      expect(functions).toHaveLength(2);
      expect(functions[1][0]).toBe(SDK_CALL_PROVIDER_ID);
      const [[, fn]] = functions;
      expect(fn.Properties).toMatchObject({
        Architectures: ['arm64'],
        Runtime: 'provided.al2023',
        Handler: 'bootstrap',
        // BENCHMARKS.md, "Power tuning": the reader gets twice the CPU share; the others the cheapest.
        MemorySize: binary === 'get-messages' ? 256 : 128,
      });
      expect(fn.Properties.Timeout).toBeLessThan(30);
      expect(fn.Properties.Timeout).toBe(10);
    });

    test('code comes from an S3 asset (bundling skipped in tests)', () => {
      const [[, fn]] = resourcesOfType(json, 'AWS::Lambda::Function');
      expect(fn.Properties.Code).toEqual({
        S3Bucket: { 'Fn::Sub': 'cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}' },
        S3Key: expect.stringMatching(/^[0-9a-f]{64}\.zip$/),
      });
    });

    test('the contract\'s environment and the shared access point mounted at /mnt/msg', () => {
      const [[, fn]] = resourcesOfType(json, 'AWS::Lambda::Function');
      // Exactly these: never LOCAL_CREATE_MESSAGES_DIR, the local-only setting (Cargo.toml's watch
      // env) that creates a missing messages directory; in the cloud a missing mount must be 503.
      expect(fn.Properties.Environment.Variables).toEqual({
        MESSAGES_DIR: '/mnt/msg',
        MAX_MESSAGE_BYTES: '262144',
        MESSAGE_RETENTION_DAYS: '30',
        // The EMF Deployment dimension: the stack prefix.
        DEPLOYMENT: 'EfsMessages',
      });
      expect(fn.Properties.Environment.Variables).not.toHaveProperty('LOCAL_CREATE_MESSAGES_DIR');
      expect(fn.Properties.FileSystemConfigs).toHaveLength(1);
      expect(fn.Properties.FileSystemConfigs[0].LocalMountPath).toBe('/mnt/msg');
      expect(fn.Properties.FileSystemConfigs[0].Arn).toEqual(baseOutputRef(baseValueOutput(templates[BASE_STACK], 'AccessPointArn')));
    });

    test('in both isolated subnets, with the functions\' security group only', () => {
      const [[, fn]] = resourcesOfType(json, 'AWS::Lambda::Function');
      const vpc = JSON.stringify(fn.Properties.VpcConfig);
      expect(fn.Properties.VpcConfig.SubnetIds).toHaveLength(2);
      const base = templates[BASE_STACK];
      expect(fn.Properties.VpcConfig.SubnetIds).toEqual(['Subnet1Id', 'Subnet2Id'].map((n) => baseOutputRef(baseValueOutput(base, n))));
      const subnets = resourcesOfType(base, 'AWS::EC2::Subnet').map(([id]) => ({ Ref: id }));
      expect(['Subnet1Id', 'Subnet2Id'].map((n) => base.Outputs[baseValueOutput(base, n)].Value)).toEqual(subnets);
      expect(fn.Properties.VpcConfig.SecurityGroupIds).toEqual([baseOutputRef(baseValueOutput(base, 'FunctionSecurityGroupId'))]);
      expect(vpc).not.toMatch(/FileSystemSecurityGroup/);
      t.resourceCountIs('AWS::EC2::SecurityGroup', 0);
      t.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
      t.resourceCountIs('AWS::EC2::SecurityGroupEgress', 0);
    });

    test('JSON logs at INFO into its own log group with a retention period', () => {
      const [[logGroupId, logGroup]] = resourcesOfType(json, 'AWS::Logs::LogGroup');
      expect(logGroup.Properties.RetentionInDays).toBe(7);
      expect(logGroup.DeletionPolicy).toBe('Delete');
      t.hasResourceProperties('AWS::Lambda::Function', {
        LoggingConfig: { LogFormat: 'JSON', ApplicationLogLevel: 'INFO', SystemLogLevel: 'INFO', LogGroup: { Ref: logGroupId } },
      });
    });

    test('no reserved concurrency by default (any reservation fails on an account with a low quota)', () => {
      t.hasResourceProperties('AWS::Lambda::Function', { FunctionName: functionStackName(binary), ReservedConcurrentExecutions: Match.absent() });
    });

    test('its own role: no managed policies, logs to its own group only', () => {
      // Three roles: the function's, CodeDeploy's (see the deployment tests) and the deploy-time
      // SDK calls' (see the route throttle tests).
      t.resourceCountIs('AWS::IAM::Role', 3);
      t.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
      const [[, fn]] = resourcesOfType(json, 'AWS::Lambda::Function');
      const roleId = fn.Properties.Role['Fn::GetAtt'][0];
      expect(fn.Properties.Role).toEqual({ 'Fn::GetAtt': [roleId, 'Arn'] });
      const role = json.Resources[roleId];
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
      ]);
      const [[logGroupId]] = resourcesOfType(json, 'AWS::Logs::LogGroup');
      const logs = allStatements(json).find((s) => asList<string>(s.Action).includes('logs:PutLogEvents'));
      expect(logs).toEqual({
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] },
      });
    });

    const efsGrants = () =>
      allStatements(json).filter((s) => asList<string>(s.Action).some((a) => a.startsWith('elasticfilesystem:')));

    test(`EFS: ${WRITERS.includes(binary) ? 'ClientMount + ClientWrite' : 'ClientMount only (read-only)'}, on the file system, through the access point`, () => {
      const grants = efsGrants();
      expect(grants).toHaveLength(1);
      const [grant] = grants;
      expect(grant.Effect).toBe('Allow');
      const expected = WRITERS.includes(binary)
        ? ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite']
        : ['elasticfilesystem:ClientMount'];
      expect(asList(grant.Action).sort()).toEqual(expected);
      expect(grant.Resource).toEqual(baseOutputRef(baseValueOutput(templates[BASE_STACK], 'FileSystemArn')));
      const apCondition = grant.Condition?.StringEquals?.['elasticfilesystem:AccessPointArn'];
      expect(apCondition).toEqual(baseOutputRef(baseValueOutput(templates[BASE_STACK], 'AccessPointArn')));
      // The same access point the function mounts.
      const [[, fn]] = resourcesOfType(json, 'AWS::Lambda::Function');
      expect(apCondition).toEqual(fn.Properties.FileSystemConfigs[0].Arn);
    });

    if (!WRITERS.includes(binary)) {
      test('the read-only function has no ClientWrite anywhere', () => {
        expect(JSON.stringify(json)).not.toContain('elasticfilesystem:ClientWrite');
      });
    }

    test('the VPC interface actions are the only grant on resource *', () => {
      const star = allStatements(json).filter((s) => s.Effect === 'Allow' && asList(s.Resource).includes('*'));
      expect(star).toHaveLength(1);
      expect(asList(star[0].Action).sort()).toEqual([
        'ec2:AssignPrivateIpAddresses',
        'ec2:CreateNetworkInterface',
        'ec2:DeleteNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeSubnets',
        'ec2:UnassignPrivateIpAddresses',
      ]);
    });

    test('the function is created after its role policy (ENI and EFS rights in place)', () => {
      const [[policyId]] = resourcesOfType(json, 'AWS::IAM::Policy');
      const [[, fn]] = resourcesOfType(json, 'AWS::Lambda::Function');
      expect(asList(fn.DependsOn)).toContain(policyId);
    });

    test('its routes, bound to its own function\'s live alias through one payload-2.0 proxy integration', () => {
      const integrations = resourcesOfType(json, 'AWS::ApiGatewayV2::Integration');
      expect(integrations).toHaveLength(1);
      const [[integrationId, integration]] = integrations;
      expect(integration.Properties).toMatchObject({
        IntegrationType: 'AWS_PROXY',
        PayloadFormatVersion: '2.0',
        IntegrationUri: { Ref: aliasId() },
      });
      const expected = CONTRACT_ROUTES.filter(([, , f]) => f === binary).map(([m, p]) => `${m} ${p}`);
      const routes = resourcesOfType(json, 'AWS::ApiGatewayV2::Route');
      expect(routes.map(([, r]) => r.Properties.RouteKey).sort()).toEqual(expected.sort());
      for (const [, route] of routes) {
        expect(route.Properties.Target).toEqual({ 'Fn::Join': ['', ['integrations/', { Ref: integrationId }]] });
        expect(route.Properties.AuthorizationType).toBe('AWS_IAM'); // the default: access=iam
        expect(route.Properties.ApiId).toEqual(baseOutputRef(baseValueOutput(templates[BASE_STACK], 'ApiId')));
      }
    });

    test('one invoke permission per route, for API Gateway, on the live alias, scoped to the route\'s path', () => {
      // (The delete function's schedule has a permission of its own, for EventBridge: reclaim.test.ts.)
      const permissions = resourcesOfType(json, 'AWS::Lambda::Permission').filter(
        ([, p]) => p.Properties.Principal !== 'events.amazonaws.com',
      );
      const paths = CONTRACT_ROUTES.filter(([, , f]) => f === binary).map(([, p]) => p);
      expect(permissions).toHaveLength(paths.length);
      const suffixes: string[] = [];
      for (const [, permission] of permissions) {
        expect(permission.Properties).toMatchObject({
          Action: 'lambda:InvokeFunction',
          Principal: 'apigateway.amazonaws.com',
          FunctionName: { Ref: aliasId() },
        });
        const parts = permission.Properties.SourceArn['Fn::Join'][1];
        suffixes.push(parts[parts.length - 1]);
      }
      expect(suffixes.sort()).toEqual(paths.map((p) => `/*/*${p}`).sort());
    });

    test('deployed after the base stack, and independent of the other function stacks', () => {
      const stack = assembly.getStackByName(functionStackName(binary));
      const deps = stack.dependencies.map((d) => d.id).filter((id) => !id.endsWith('.assets'));
      expect(deps).toEqual([BASE_STACK]);
      const text = JSON.stringify(json);
      for (const other of FUNCTION_NAMES.filter((f) => f !== binary)) {
        expect(text).not.toContain(functionStackName(other));
      }
    });
  });

  test('all function stacks together serve exactly the contract\'s routes, each with its function', () => {
    const served: string[] = [];
    for (const binary of FUNCTION_NAMES) {
      for (const [, route] of resourcesOfType(template(binary), 'AWS::ApiGatewayV2::Route')) {
        served.push(`${route.Properties.RouteKey} -> ${binary}`);
      }
    }
    expect(served.sort()).toEqual(CONTRACT_ROUTES.map(([m, p, f]) => `${m} ${p} -> ${f}`).sort());
  });

  test('no $default (catch-all) route and no ANY route anywhere', () => {
    for (const json of Object.values(templates)) {
      for (const [, route] of resourcesOfType(json, 'AWS::ApiGatewayV2::Route')) {
        expect(route.Properties.RouteKey).not.toBe('$default');
        expect(route.Properties.RouteKey).not.toMatch(/^ANY /);
      }
      for (const [, api] of resourcesOfType(json, 'AWS::ApiGatewayV2::Api')) {
        expect(api.Properties.Target).toBeUndefined();
      }
    }
  });

  test('no wildcard actions in any policy of any stack (but the two documented ones of the alarm key)', () => {
    let count = 0;
    let keyExceptions = 0;
    for (const json of Object.values(templates)) {
      for (const statement of allStatements(json)) {
        if (isKeyAdminDelegation(json, statement) || isCloudWatchKeyUse(json, statement)) {
          keyExceptions++;
          continue;
        }
        expect(statement.NotAction).toBeUndefined();
        for (const action of asList<string>(statement.Action)) {
          count++;
          expect(action).not.toContain('*');
        }
      }
    }
    expect(count).toBeGreaterThan(10);
    expect(keyExceptions).toBe(2);
  });

  test('ClientRootAccess is allowed nowhere', () => {
    for (const json of Object.values(templates)) {
      for (const statement of allStatements(json)) {
        if (statement.Effect === 'Allow') {
          expect(asList(statement.Action)).not.toContain('elasticfilesystem:ClientRootAccess');
        }
      }
    }
  });

  test('the only cross-stack references are to the base stack\'s outputs', () => {
    const baseOutputs = Object.keys(templates[BASE_STACK].Outputs);
    const collect = (node: unknown, out: any[]): any[] => {
      if (Array.isArray(node)) {
        node.forEach((n) => collect(n, out));
      } else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if (key === 'Fn::GetStackOutput' || key === 'Fn::ImportValue') {
            out.push({ [key]: value });
          } else {
            collect(value, out);
          }
        }
      }
      return out;
    };
    for (const binary of FUNCTION_NAMES) {
      const refs = collect(template(binary), []);
      expect(refs.length).toBeGreaterThan(0);
      for (const ref of refs) {
        // Weak references (cdk.json's @aws-cdk/core:defaultCrossStackReferences = weak).
        expect(ref['Fn::ImportValue']).toBeUndefined();
        expect(ref['Fn::GetStackOutput']).toEqual({
          StackName: BASE_STACK,
          Region: { Ref: 'AWS::Region' },
          OutputName: expect.any(String),
        });
        expect(baseOutputs).toContain(ref['Fn::GetStackOutput'].OutputName);
      }
    }
  });
});

/**
 * The KMS key policy's standard statement that lets the account's IAM policies manage the key
 * (`kms:*` for the account root): without it nobody could administer or delete the key.
 */
function isKeyAdminDelegation(json: any, statement: any): boolean {
  const keyPolicies = resourcesOfType(json, 'AWS::KMS::Key').map(([, k]) => k.Properties.KeyPolicy.Statement);
  return (
    keyPolicies.some((statements: any[]) => statements.includes(statement)) &&
    statement.Action === 'kms:*' &&
    JSON.stringify(statement.Principal).includes(':root') &&
    statement.Resource === '*'
  );
}

/** The key policy's statement for CloudWatch alarms publishing to the encrypted topic (AWS's documented one). */
function isCloudWatchKeyUse(json: any, statement: any): boolean {
  const keyPolicies = resourcesOfType(json, 'AWS::KMS::Key').map(([, k]) => k.Properties.KeyPolicy.Statement);
  return (
    keyPolicies.some((statements: any[]) => statements.includes(statement)) &&
    JSON.stringify(statement.Principal) === JSON.stringify({ Service: 'cloudwatch.amazonaws.com' }) &&
    JSON.stringify(asList(statement.Action).sort()) === JSON.stringify(['kms:Decrypt', 'kms:GenerateDataKey*'])
  );
}

describe('function settings from context', () => {
  test('reservedConcurrency is opt-in: a whole number of at least 1 reserves it, `none` reserves nothing', () => {
    const one = synth({ context: { reservedConcurrency: '1' } });
    const five = synth({ context: { reservedConcurrency: '5' } });
    const none = synth({ context: { reservedConcurrency: 'none' } });
    for (const binary of FUNCTION_NAMES) {
      Template.fromJSON(one.templates[functionStackName(binary)]).hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: functionStackName(binary),
        ReservedConcurrentExecutions: 1,
      });
      Template.fromJSON(five.templates[functionStackName(binary)]).hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: functionStackName(binary),
        ReservedConcurrentExecutions: 5,
      });
      Template.fromJSON(none.templates[functionStackName(binary)]).hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: functionStackName(binary),
        ReservedConcurrentExecutions: Match.absent(),
      });
    }
  });

  test.each(['0', '-1', '1.5', 'lots', ''])('reservedConcurrency=%j is rejected (0 would refuse every request)', (value) => {
    expect(() => synth({ context: { reservedConcurrency: value } })).toThrow(
      /context 'reservedConcurrency' must be 'none' or a whole number of at least 1/,
    );
  });
});
