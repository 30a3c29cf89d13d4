import { Template } from 'aws-cdk-lib/assertions';
import { ACCESS_CONTEXT, asList, BASE_STACK, baseOutputRef, baseValueOutput, FUNCTION_NAMES, functionStackName, renderJoin, resourcesOfType, synth } from './helpers';

/** An `Fn::Join` of literals and intrinsics as one string (other intrinsics as placeholders). */
const render = (value: any): string => renderJoin(value, false);

const alarmsOf = (json: any): Record<string, any> =>
  Object.fromEntries(resourcesOfType(json, 'AWS::CloudWatch::Alarm').map(([id, r]) => [id, r.Properties]));
const alarmNamed = (json: any, prefix: string): [string, any] => {
  const found = Object.entries(alarmsOf(json)).filter(([id]) => id.startsWith(prefix));
  expect(found).toHaveLength(1);
  return found[0];
};

describe('operations: per-function alarms, safe deploys, platform alarms, dashboard', () => {
  const { templates } = synth();
  const base = templates[BASE_STACK];
  const [[topicId]] = resourcesOfType(base, 'AWS::SNS::Topic');
  const [[apiId]] = resourcesOfType(base, 'AWS::ApiGatewayV2::Api');
  const [[fileSystemId]] = resourcesOfType(base, 'AWS::EFS::FileSystem');

  describe.each(FUNCTION_NAMES)('%s', (binary) => {
    const json = templates[functionStackName(binary)];
    const [[fnId, fn]] = resourcesOfType(json, 'AWS::Lambda::Function');
    const [[aliasId]] = resourcesOfType(json, 'AWS::Lambda::Alias');

    test('four alarms, each notifying the base stack\'s alarm topic, each saying what to look at first', () => {
      const alarms = alarmsOf(json);
      expect(Object.keys(alarms)).toHaveLength(4);
      for (const alarm of Object.values(alarms)) {
        expect(alarm.AlarmActions).toHaveLength(1);
        const topicOutput = baseValueOutput(base, 'AlarmTopicArn');
        expect(alarm.AlarmActions).toEqual([baseOutputRef(topicOutput)]);
        expect(base.Outputs[topicOutput].Value).toEqual({ Ref: topicId });
        expect(render(alarm.AlarmDescription)).toMatch(new RegExp(`^${binary}: .*Look first at `));
      }
    });

    test('errors: any unhandled error, in a minute, of the version this stack deploys, served through live', () => {
      const [, alarm] = alarmNamed(json, 'AlarmsErrors');
      expect(alarm).toMatchObject({
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Statistic: 'Sum',
        Period: 60,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
      });
      const [[versionId]] = resourcesOfType(json, 'AWS::Lambda::Version');
      expect(alarm.Dimensions).toEqual([
        { Name: 'ExecutedVersion', Value: { 'Fn::GetAtt': [versionId, 'Version'] } },
        { Name: 'FunctionName', Value: { Ref: fnId } },
        { Name: 'Resource', Value: { 'Fn::Join': ['', [{ Ref: fnId }, ':live']] } },
      ]);
      // Named after the function and the version: a new version gets a new alarm.
      expect(alarm.AlarmName).toMatch(new RegExp(`^EfsMessages-${binary}-errors-[0-9a-f]{16}$`));
    });

    test('throttles: any throttled invocation', () => {
      const [, alarm] = alarmNamed(json, 'AlarmsThrottles');
      expect(alarm).toMatchObject({ MetricName: 'Throttles', Statistic: 'Sum', Threshold: 1, Dimensions: [{ Name: 'FunctionName', Value: { Ref: fnId } }] });
    });

    test('duration: p99 above 80 % of the function\'s timeout', () => {
      const [, alarm] = alarmNamed(json, 'AlarmsDurationP99');
      expect(alarm).toMatchObject({
        MetricName: 'Duration',
        ExtendedStatistic: 'p99',
        ComparisonOperator: 'GreaterThanThreshold',
        Threshold: fn.Properties.Timeout * 1000 * 0.8,
      });
      expect(alarm.Threshold).toBe(8000);
    });

    test('storage errors: Error_storage_unavailable + Error_storage_full of this function (EMF)', () => {
      const [, alarm] = alarmNamed(json, 'AlarmsStorageErrors');
      expect(alarm).toMatchObject({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' });
      const expression = alarm.Metrics.find((m: any) => m.Expression);
      expect(expression).toMatchObject({ Expression: 'FILL(unavailable, 0) + FILL(full, 0)', ReturnData: true });
      const inputs = alarm.Metrics.filter((m: any) => m.MetricStat).map((m: any) => [m.Id, m.MetricStat, m.ReturnData]);
      expect(inputs).toEqual(
        expect.arrayContaining([
          ['unavailable', expect.objectContaining({ Stat: 'Sum' }), false],
          ['full', expect.objectContaining({ Stat: 'Sum' }), false],
        ]),
      );
      expect(inputs).toHaveLength(2);
      const metric = (id: string) => alarm.Metrics.find((m: any) => m.Id === id).MetricStat.Metric;
      // This deployment's metrics only (the functions write [Deployment, Function]).
      const dimensions = [
        { Name: 'Deployment', Value: 'EfsMessages' },
        { Name: 'Function', Value: binary },
      ];
      expect(metric('unavailable')).toEqual({ Namespace: 'EfsMessages', MetricName: 'Error_storage_unavailable', Dimensions: dimensions });
      expect(metric('full')).toEqual({ Namespace: 'EfsMessages', MetricName: 'Error_storage_full', Dimensions: dimensions });
    });

    test('CodeDeploy: canary 10 % for 5 minutes on the live alias, rolled back by the new version\'s error alarm', () => {
      const groups = resourcesOfType(json, 'AWS::CodeDeploy::DeploymentGroup');
      expect(groups).toHaveLength(1);
      const [[groupId, group]] = groups;
      const [errorsId] = alarmNamed(json, 'AlarmsErrors');
      expect(group.Properties).toMatchObject({
        DeploymentConfigName: 'CodeDeployDefault.LambdaCanary10Percent5Minutes',
        DeploymentStyle: { DeploymentOption: 'WITH_TRAFFIC_CONTROL', DeploymentType: 'BLUE_GREEN' },
        AlarmConfiguration: { Enabled: true, Alarms: [{ Name: { Ref: errorsId } }] },
        AutoRollbackConfiguration: { Enabled: true },
      });
      expect(group.Properties.AutoRollbackConfiguration.Events).toEqual(
        expect.arrayContaining(['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_ALARM']),
      );
      const alias = json.Resources[aliasId];
      expect(alias.UpdatePolicy.CodeDeployLambdaAliasUpdate.DeploymentGroupName).toEqual({ Ref: groupId });
      // The group (and so the new version's alarm) is updated before the alias moves.
      expect(asList(alias.DependsOn)).toContain(groupId);
      // CodeDeploy's own role, trusted by CodeDeploy only.
      const roleId = group.Properties.ServiceRoleArn['Fn::GetAtt'][0];
      expect(json.Resources[roleId].Properties.AssumeRolePolicyDocument.Statement).toEqual([
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'codedeploy.amazonaws.com' } },
      ]);
      expect(JSON.stringify(json.Resources[roleId].Properties.ManagedPolicyArns)).toContain('AWSCodeDeployRoleForLambdaLimited');
    });
  });

  describe('base stack', () => {
    const alarms = alarmsOf(base);

    test('six alarms (API and EFS), each notifying the topic and saying what to look at first', () => {
      expect(Object.keys(alarms)).toHaveLength(6);
      for (const alarm of Object.values(alarms)) {
        expect(alarm.AlarmActions).toEqual([{ Ref: topicId }]);
        expect(render(alarm.AlarmDescription)).toMatch(/^(API|EFS): .*Look first at /);
      }
    });

    test('API 5xx rate: the 5xx metric\'s Average (a 0-1 ratio) above 5 %', () => {
      const [, alarm] = alarmNamed(base, 'AlarmsApi5xxRate');
      expect(alarm).toMatchObject({
        Namespace: 'AWS/ApiGateway',
        MetricName: '5xx',
        Statistic: 'Average',
        Threshold: 0.05,
        ComparisonOperator: 'GreaterThanThreshold',
        Dimensions: [
          { Name: 'ApiId', Value: { Ref: apiId } },
          { Name: 'Stage', Value: '$default' },
        ],
      });
    });

    test('API p99 latency above 2 s for 15 minutes', () => {
      const [, alarm] = alarmNamed(base, 'AlarmsApiLatencyP99');
      expect(alarm).toMatchObject({ MetricName: 'Latency', ExtendedStatistic: 'p99', Threshold: 2000, EvaluationPeriods: 3, Period: 300 });
    });

    test('EFS client connections above 80 % of the 25,000 limit', () => {
      const [, alarm] = alarmNamed(base, 'AlarmsEfsClientConnections');
      expect(alarm).toMatchObject({
        Namespace: 'AWS/EFS',
        MetricName: 'ClientConnections',
        Statistic: 'Sum',
        Period: 60,
        Threshold: 20000,
        Dimensions: [{ Name: 'FileSystemId', Value: { Ref: fileSystemId } }],
      });
    });

    test('EFS PercentIOLimit above 80 % (a General Purpose file system: the metric exists)', () => {
      Template.fromJSON(base).hasResourceProperties('AWS::EFS::FileSystem', { PerformanceMode: 'generalPurpose' });
      const [, alarm] = alarmNamed(base, 'AlarmsEfsIoLimit');
      expect(alarm).toMatchObject({ MetricName: 'PercentIOLimit', Statistic: 'Average', Threshold: 80 });
    });

    test('EFS throughput: metered bytes per second above 80 % of PermittedThroughput', () => {
      const [, alarm] = alarmNamed(base, 'AlarmsEfsThroughput');
      expect(alarm.Threshold).toBe(80);
      expect(alarm.Metrics.find((m: any) => m.Expression).Expression).toBe('100 * (metered / PERIOD(metered)) / permitted');
      const metric = (id: string) => alarm.Metrics.find((m: any) => m.Id === id).MetricStat;
      expect(metric('metered')).toMatchObject({ Stat: 'Sum', Metric: { Namespace: 'AWS/EFS', MetricName: 'MeteredIOBytes' } });
      expect(metric('permitted')).toMatchObject({ Stat: 'Average', Metric: { Namespace: 'AWS/EFS', MetricName: 'PermittedThroughput' } });
    });

    test('EFS storage above 10 GiB by default (StorageBytes, Total)', () => {
      const [, alarm] = alarmNamed(base, 'AlarmsEfsStorage');
      expect(alarm).toMatchObject({ MetricName: 'StorageBytes', Statistic: 'Maximum', Threshold: 10 * 1024 ** 3 });
      expect(alarm.Dimensions).toEqual(
        expect.arrayContaining([
          { Name: 'FileSystemId', Value: { Ref: fileSystemId } },
          { Name: 'StorageClass', Value: 'Total' },
        ]),
      );
    });

    test('one SNS topic: encrypted with a rotated customer-managed key, TLS only, CloudWatch may publish', () => {
      const topics = resourcesOfType(base, 'AWS::SNS::Topic');
      expect(topics).toHaveLength(1);
      const [[keyId, key]] = resourcesOfType(base, 'AWS::KMS::Key');
      expect(topics[0][1].Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
      expect(key.Properties.EnableKeyRotation).toBe(true);
      const cloudwatch = key.Properties.KeyPolicy.Statement.find((s: any) => s.Principal?.Service === 'cloudwatch.amazonaws.com');
      expect(asList(cloudwatch.Action).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
      const [[, policy]] = resourcesOfType(base, 'AWS::SNS::TopicPolicy');
      const statements = policy.Properties.PolicyDocument.Statement;
      expect(statements).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          expect.objectContaining({ Effect: 'Allow', Action: 'sns:Publish', Principal: { Service: 'cloudwatch.amazonaws.com' } }),
        ]),
      );
      expect(resourcesOfType(base, 'AWS::SNS::Subscription')).toEqual([]);
      Template.fromJSON(base).hasOutput('AlarmTopicArn', { Value: { Ref: topicId } });
    });

    describe('dashboard', () => {
      const dashboards = resourcesOfType(base, 'AWS::CloudWatch::Dashboard');
      const body = () => JSON.parse(render(dashboards[0][1].Properties.DashboardBody));
      const widgets = () => body().widgets.filter((w: any) => w.type === 'metric');
      const metricNames = (w: any) => w.properties.metrics.flatMap((m: any[]) => m.filter((x) => typeof x === 'string'));

      test('one dashboard, named after the app; its URL is a stack output', () => {
        expect(dashboards).toHaveLength(1);
        expect(dashboards[0][1].Properties.DashboardName).toBe('EfsMessages-operations');
        const url = render(base.Outputs.DashboardUrl.Value);
        expect(url).toBe(
          'https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=EfsMessages-operations',
        );
      });

      test.each([
        ['invocations and errors', ['Invocations', 'Errors', 'Throttles']],
        ['duration p50 / p99 (ms)', ['Duration']],
        ['concurrency and init (cold starts)', ['ConcurrentExecutions', 'InitTime']],
        ['StoreTime p50 / p99 (ms)', ['StoreTime']],
        ['messages and bytes', ['MessagesReturned', 'MessagesStored', 'MessagesDeleted', 'BytesReturned', 'BytesStored']],
        ['error responses', ['Errors', 'Error_storage_unavailable', 'Error_storage_full']],
      ])('the three functions side by side: %s', (title, metrics) => {
        const row = FUNCTION_NAMES.map((binary) => widgets().find((w: any) => w.properties.title === `${binary}: ${title}`));
        row.forEach((w) => expect(w).toBeDefined());
        // Same row, one column per function.
        expect(new Set(row.map((w: any) => w.y)).size).toBe(1);
        expect(row.map((w: any) => w.x)).toEqual([0, 8, 16]);
        row.forEach((w: any, i: number) => {
          expect(metricNames(w)).toEqual(expect.arrayContaining(metrics));
          const text = JSON.stringify(w.properties.metrics);
          expect(text).toMatch(new RegExp(`"(EfsMessages-${FUNCTION_NAMES[i]}|${FUNCTION_NAMES[i]})"`));
          for (const other of FUNCTION_NAMES.filter((_, j) => j !== i)) {
            expect(text).not.toContain(`"${other}"`);
          }
        });
      });

      test('the duration graphs show p50 and p99', () => {
        for (const binary of FUNCTION_NAMES) {
          const w = widgets().find((x: any) => x.properties.title === `${binary}: duration p50 / p99 (ms)`);
          const stats = w.properties.metrics.map((m: any[]) => m[m.length - 1].stat);
          expect(stats).toEqual(['p50', 'p99']);
        }
      });

      test('the API: requests, 4xx, 5xx, latency; EFS: connections, throughput, storage', () => {
        const all = widgets();
        const byTitle = (title: string) => {
          const w = all.find((x: any) => x.properties.title === title);
          expect(w).toBeDefined();
          return metricNames(w);
        };
        expect(byTitle('API: requests')).toContain('Count');
        expect(byTitle('API: 4xx and 5xx')).toEqual(expect.arrayContaining(['4xx', '5xx']));
        expect(byTitle('API: latency (ms)')).toEqual(expect.arrayContaining(['Latency', 'IntegrationLatency']));
        expect(byTitle('EFS: client connections')).toContain('ClientConnections');
        expect(byTitle('EFS: throughput (bytes per period)')).toEqual(
          expect.arrayContaining(['DataReadIOBytes', 'DataWriteIOBytes', 'MetadataIOBytes']),
        );
        expect(byTitle('EFS: % of limits')).toEqual(expect.arrayContaining(['MeteredIOBytes', 'PermittedThroughput', 'PercentIOLimit']));
        expect(byTitle('EFS: storage (bytes)')).toContain('StorageBytes');
      });
    });
  });
});

describe('operations settings from context', () => {
  test.each([
    ['linear', 'CodeDeployDefault.LambdaLinear10PercentEvery1Minute'],
    ['allAtOnce', 'CodeDeployDefault.LambdaAllAtOnce'],
    ['canary', 'CodeDeployDefault.LambdaCanary10Percent5Minutes'],
  ])('deployment=%s -> %s in every function stack', (deployment, config) => {
    const { templates } = synth({ context: { deployment } });
    for (const binary of FUNCTION_NAMES) {
      Template.fromJSON(templates[functionStackName(binary)]).hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
        DeploymentConfigName: config,
      });
    }
  });

  test('alarmEmail subscribes exactly that address to the topic; storageAlarmGiB sets the threshold', () => {
    const { templates } = synth({ context: { alarmEmail: 'ops@example.com', storageAlarmGiB: '3' } });
    const base = templates[BASE_STACK];
    const [[topicId]] = resourcesOfType(base, 'AWS::SNS::Topic');
    const subscriptions = resourcesOfType(base, 'AWS::SNS::Subscription');
    expect(subscriptions).toHaveLength(1);
    expect(subscriptions[0][1].Properties).toEqual({ Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: { Ref: topicId } });
    const [, storage] = alarmNamed(base, 'AlarmsEfsStorage');
    expect(storage.Threshold).toBe(3 * 1024 ** 3);
  });

  test.each([
    [{ deployment: 'bluegreen' }, /context 'deployment' must be one of canary, linear, allAtOnce/],
    [{ skipCanary: 'yes' }, /context 'skipCanary' must be true or false/],
    [{ alarmEmail: 'not-an-address' }, /alarmEmail/],
    [{ alarmEmail: 'a@b.com,c@d.com' }, /alarmEmail/],
    [{ alarmEmail: 'Ops <ops@example.com>' }, /alarmEmail/],
    [{ storageAlarmGiB: '0' }, /storageAlarmGiB/],
    [{ storageAlarmGiB: 'lots' }, /storageAlarmGiB/],
  ])('%j is rejected', (context, message) => {
    expect(() => synth({ context })).toThrow(message);
  });
});

/** Every metric an alarm or a dashboard widget of a template reads, as [namespace, name, dimensions]. */
function metricsRead(template: any): Array<{ where: string; namespace: string; name: string; dimensions: Record<string, unknown> }> {
  const out: Array<{ where: string; namespace: string; name: string; dimensions: Record<string, unknown> }> = [];
  const dims = (list: any[] | undefined) => Object.fromEntries((list ?? []).map((d: any) => [d.Name, d.Value]));
  for (const [id, alarm] of resourcesOfType(template, 'AWS::CloudWatch::Alarm')) {
    const p = alarm.Properties;
    if (p.MetricName) {
      out.push({ where: id, namespace: p.Namespace, name: p.MetricName, dimensions: dims(p.Dimensions) });
    }
    for (const m of p.Metrics ?? []) {
      if (m.MetricStat) {
        const metric = m.MetricStat.Metric;
        out.push({ where: id, namespace: metric.Namespace, name: metric.MetricName, dimensions: dims(metric.Dimensions) });
      }
    }
  }
  for (const [id, dashboard] of resourcesOfType(template, 'AWS::CloudWatch::Dashboard')) {
    const body = JSON.parse(render(dashboard.Properties.DashboardBody));
    for (const widget of body.widgets.filter((w: any) => w.type === 'metric')) {
      for (const row of widget.properties.metrics as any[][]) {
        // [namespace, name, dim, value, ..., {options}] (math expressions are [{expression}]).
        const plain = row.filter((x) => typeof x === 'string');
        if (plain.length < 2) {
          continue;
        }
        const [namespace, name, ...rest] = plain;
        const dimensions: Record<string, unknown> = {};
        for (let i = 0; i + 1 < rest.length; i += 2) {
          dimensions[rest[i]] = rest[i + 1];
        }
        out.push({ where: `${id}: ${widget.properties.title}`, namespace, name, dimensions });
      }
    }
  }
  return out;
}

describe.each(Object.keys(ACCESS_CONTEXT) as Array<keyof typeof ACCESS_CONTEXT>)(
  'access=%s: two deployments in one account and region never read each other\'s EMF metrics; canaries judge the new version',
  (mode) => {
    const deployments = ['EfsMessages', 'Staging'].map((prefix) => ({
      prefix,
      templates: synth({ context: { ...ACCESS_CONTEXT[mode], stackPrefix: prefix } }).templates,
    }));

    test.each(FUNCTION_NAMES)('%s: CodeDeploy rolls back on errors of the new version only (ExecutedVersion), not the alias\'s', (binary) => {
      for (const { prefix, templates } of deployments) {
        const json = templates[`${prefix}-${binary}`];
        const [[, group]] = resourcesOfType(json, 'AWS::CodeDeploy::DeploymentGroup');
        const alarms = group.Properties.AlarmConfiguration.Alarms;
        expect(alarms).toHaveLength(1);
        const alarm = json.Resources[alarms[0].Name.Ref].Properties;
        const [[versionId]] = resourcesOfType(json, 'AWS::Lambda::Version');
        const [[aliasId, alias]] = resourcesOfType(json, 'AWS::Lambda::Alias');
        // The version the alias is being moved to is the one the alarm judges.
        expect(alias.Properties.FunctionVersion).toEqual({ 'Fn::GetAtt': [versionId, 'Version'] });
        expect(alarm.MetricName).toBe('Errors');
        expect(alarm.Dimensions).toEqual(expect.arrayContaining([{ Name: 'ExecutedVersion', Value: { 'Fn::GetAtt': [versionId, 'Version'] } }]));
        expect(alarm.AlarmName).toMatch(new RegExp(`^${prefix}-${binary}-errors-[0-9a-f]{16}$`));
        expect(JSON.stringify(alarm)).not.toContain(aliasId);
      }
    });

    test('-c skipCanary=true: every function shifts all at once, still rolled back on the new version\'s alarm, and synth says so', () => {
      const result = synth({ context: { ...ACCESS_CONTEXT[mode], skipCanary: 'true' } });
      for (const binary of FUNCTION_NAMES) {
        const json = result.templates[functionStackName(binary)];
        const [[, group]] = resourcesOfType(json, 'AWS::CodeDeploy::DeploymentGroup');
        expect(group.Properties).toMatchObject({
          DeploymentConfigName: 'CodeDeployDefault.LambdaAllAtOnce',
          AlarmConfiguration: { Enabled: true, Alarms: [{ Name: { Ref: expect.stringMatching(/^AlarmsErrors/) } }] },
        });
        const warnings = result.assembly
          .getStackByName(functionStackName(binary))
          .messages.filter((m) => m.level === 'warning' && String(m.entry.data).includes('skipCanary=true'));
        expect(warnings).toHaveLength(1);
      }
      // Without it (the same settings), the canary is back: nothing is persisted.
      for (const binary of FUNCTION_NAMES) {
        const [[, group]] = resourcesOfType(deployments[0].templates[functionStackName(binary)], 'AWS::CodeDeploy::DeploymentGroup');
        expect(group.Properties.DeploymentConfigName).toBe('CodeDeployDefault.LambdaCanary10Percent5Minutes');
      }
    });

    test.each(['EfsMessages', 'Staging'])('%s: every function sets DEPLOYMENT to the deployment\'s name', (prefix) => {
      const { templates } = deployments.find((d) => d.prefix === prefix)!;
      for (const binary of FUNCTION_NAMES) {
        const [[, fn]] = resourcesOfType(templates[`${prefix}-${binary}`], 'AWS::Lambda::Function');
        expect(fn.Properties.Environment.Variables.DEPLOYMENT).toBe(prefix);
      }
    });

    test('every alarm and dashboard widget that reads an EMF metric selects its own Deployment and one Function', () => {
      const series = deployments.map(({ prefix, templates }) => {
        const emf = Object.values(templates).flatMap((t) => metricsRead(t)).filter((m) => m.namespace === 'EfsMessages');
        // The storage-error alarms (3) and the dashboard's EMF widgets, at least.
        expect(emf.length).toBeGreaterThan(20);
        for (const metric of emf) {
          // Exactly the dimension sets the functions write: [Deployment, Function] (shared/src/metrics.rs).
          expect([metric.where, Object.keys(metric.dimensions).sort()]).toEqual([metric.where, ['Deployment', 'Function']]);
          expect([metric.where, metric.dimensions.Deployment]).toEqual([metric.where, prefix]);
          expect(FUNCTION_NAMES).toContain(metric.dimensions.Function);
        }
        return new Set(emf.map((m) => JSON.stringify([m.name, m.dimensions])));
      });
      // No series is read by both deployments.
      expect([...series[0]].filter((s) => series[1].has(s))).toEqual([]);
    });
  },
);
