import { Template } from 'aws-cdk-lib/assertions';
import { DEFAULT_ROUTE_THROTTLES } from '../lib/api';
import {
  ACCESS_CONTEXT,
  asList,
  BASE_STACK,
  baseValueOutput,
  CONTRACT_ROUTES,
  expectSdkCallProvider,
  FUNCTION_NAMES,
  functionStackName,
  renderIntrinsics,
  resourcesOfType,
  SDK_CALL_PROVIDER_ID,
  sdkCall,
  synth,
} from './helpers';

type Mode = keyof typeof ACCESS_CONTEXT;
const MODES = Object.keys(ACCESS_CONTEXT) as Mode[];

/** The message function of a function stack (the other Lambda function is the SDK-call provider). */
const messageFunction = (json: any) => resourcesOfType(json, 'AWS::Lambda::Function').find(([id]) => id !== SDK_CALL_PROVIDER_ID)![1];

/** Route key -> [its Custom::RouteThrottle id, resource], across the function stacks. */
function throttlesOf(templates: Record<string, any>): Map<string, [string, string, any]> {
  const out = new Map<string, [string, string, any]>();
  for (const binary of FUNCTION_NAMES) {
    for (const [id, resource] of resourcesOfType(templates[functionStackName(binary)], 'Custom::RouteThrottle')) {
      const call = sdkCall(resource, 'Create');
      const keys = Object.keys(call.parameters.RouteSettings);
      expect(keys).toHaveLength(1);
      expect(out.has(keys[0])).toBe(false);
      out.set(keys[0], [binary, id, resource]);
    }
  }
  return out;
}

describe.each(MODES)('access=%s: retention, route throttles, the caller in the access log', (mode) => {
  const { templates } = synth({ context: ACCESS_CONTEXT[mode] });
  const base = templates[BASE_STACK];
  /** The API id in a function stack: the base stack's output (renderIntrinsics' placeholder). */
  const API_OUTPUT = `\${Output:${baseValueOutput(base, 'ApiId')}}`;

  test('no reserved concurrency by default: each function\'s concurrency is bounded by its routes\' throttles instead', () => {
    for (const binary of FUNCTION_NAMES) {
      const fn = messageFunction(templates[functionStackName(binary)]);
      expect(fn.Properties.FunctionName).toBe(functionStackName(binary));
      expect(fn.Properties).not.toHaveProperty('ReservedConcurrentExecutions');
      // Each of its routes has a throttle of its own (the test above checks their values).
      expect(resourcesOfType(templates[functionStackName(binary)], 'Custom::RouteThrottle').length).toBeGreaterThan(0);
    }
  });

  test('MESSAGE_RETENTION_DAYS is 30 in all three functions by default', () => {
    for (const binary of FUNCTION_NAMES) {
      expect(messageFunction(templates[functionStackName(binary)]).Properties.Environment.Variables.MESSAGE_RETENTION_DAYS).toBe('30');
    }
  });

  test('every route of the contract has exactly one throttle of its own, by method: GET 10/20, POST 1/10, DELETE 1/5', () => {
    const throttles = throttlesOf(templates);
    expect([...throttles.keys()].sort()).toEqual(CONTRACT_ROUTES.map(([m, p]) => `${m} ${p}`).sort());
    const expected: Record<string, [number, number]> = { GET: [10, 20], POST: [1, 10], DELETE: [1, 5] };
    for (const [method, path, binary] of CONTRACT_ROUTES) {
      const key = `${method} ${path}`;
      const [owner, , resource] = throttles.get(key)!;
      expect(owner).toBe(binary); // in the stack that owns the route
      for (const which of ['Create', 'Update'] as const) {
        expect(sdkCall(resource, which)).toEqual({
          service: 'ApiGatewayV2',
          action: 'updateStage',
          parameters: {
            ApiId: API_OUTPUT,
            StageName: '$default',
            RouteSettings: { [key]: { ThrottlingRateLimit: expected[method][0], ThrottlingBurstLimit: expected[method][1] } },
          },
          physicalResourceId: { id: `${API_OUTPUT}/$default/${key}` },
        });
      }
      expect(sdkCall(resource, 'Delete')).toEqual({
        service: 'ApiGatewayV2',
        action: 'deleteRouteSettings',
        parameters: { ApiId: API_OUTPUT, StageName: '$default', RouteKey: key },
        ignoreErrorCodesMatching: 'NotFoundException',
      });
    }
    // POST and DELETE far below GET.
    expect(DEFAULT_ROUTE_THROTTLES.POST.rateLimit * 10).toBeLessThanOrEqual(DEFAULT_ROUTE_THROTTLES.GET.rateLimit);
    expect(DEFAULT_ROUTE_THROTTLES.DELETE.rateLimit * 10).toBeLessThanOrEqual(DEFAULT_ROUTE_THROTTLES.GET.rateLimit);
  });

  test('a throttle is set after its route exists (and so removed before it), one at a time per stack', () => {
    for (const binary of FUNCTION_NAMES) {
      const json = templates[functionStackName(binary)];
      const routeIds = new Map(
        resourcesOfType(json, 'AWS::ApiGatewayV2::Route').map(([id, r]) => [r.Properties.RouteKey as string, id]),
      );
      const throttles = resourcesOfType(json, 'Custom::RouteThrottle');
      expect(throttles).toHaveLength(routeIds.size);
      throttles.forEach(([, resource], i) => {
        const key = Object.keys(sdkCall(resource, 'Create').parameters.RouteSettings)[0];
        expect(asList(resource.DependsOn)).toContain(routeIds.get(key));
        if (i > 0) {
          expect(asList(resource.DependsOn)).toContain(throttles[i - 1][0]);
        }
      });
    }
  });

  test('each throttle may update this API\'s stage and delete its route settings, nothing else; the provider is least privilege', () => {
    for (const binary of FUNCTION_NAMES) {
      const json = templates[functionStackName(binary)];
      expectSdkCallProvider(json);
      for (const [id, resource] of resourcesOfType(json, 'Custom::RouteThrottle')) {
        expect(resource.Properties.ServiceToken).toEqual({ 'Fn::GetAtt': [SDK_CALL_PROVIDER_ID, 'Arn'] });
        const policies = resourcesOfType(json, 'AWS::IAM::Policy').filter(([pid]) => pid.startsWith(`${id.replace(/[0-9A-F]{8}$/, '')}CustomResourcePolicy`));
        expect(policies).toHaveLength(1);
        const [[policyId, policy]] = policies;
        expect(asList(resource.DependsOn)).toContain(policyId);
        const stage = `arn:\${AWS::Partition}:apigateway:\${AWS::Region}::/apis/${API_OUTPUT}/stages/$default`;
        expect(
          policy.Properties.PolicyDocument.Statement.map((s: any) => [s.Effect, s.Action, renderIntrinsics(s.Resource)]),
        ).toEqual([
          ['Allow', 'apigateway:PATCH', stage],
          ['Allow', 'apigateway:DELETE', `${stage}/routesettings/*`],
        ]);
      }
    }
  });

  test('the stage keeps its default route throttle (50/100), the ceiling of every route\'s own', () => {
    const [[, stage]] = resourcesOfType(base, 'AWS::ApiGatewayV2::Stage');
    expect(stage.Properties.DefaultRouteSettings).toEqual({ ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 });
    // No route settings in the template: they name routes the base stack does not have.
    expect(stage.Properties.RouteSettings).toBeUndefined();
  });

  test(`the access log records ${mode === 'iam' ? 'the IAM principal' : mode === 'jwt' ? 'the JWT sub' : 'no caller (public)'}, never a token`, () => {
    const [[, stage]] = resourcesOfType(base, 'AWS::ApiGatewayV2::Stage');
    const format = JSON.parse(stage.Properties.AccessLogSettings.Format);
    const expected: Record<Mode, string | undefined> = {
      iam: '$context.identity.userArn',
      jwt: '$context.authorizer.claims.sub',
      public: undefined,
    };
    expect(format.caller).toBe(expected[mode]);
    expect(format).toMatchObject({ requestId: '$context.requestId', ip: '$context.identity.sourceIp' });
    for (const value of Object.values(format) as string[]) {
      expect(value).not.toMatch(/authorization|token|apikey|signature|\$request\.header|credential/i);
      // Only single claims, never the whole claims object.
      expect(value).not.toBe('$context.authorizer.claims');
    }
  });

  test('no budget unless asked for; the alarm topic admits CloudWatch only', () => {
    expect(resourcesOfType(base, 'AWS::Budgets::Budget')).toEqual([]);
    expect(JSON.stringify(base)).not.toContain('budgets.amazonaws.com');
  });
});

describe.each(MODES)('access=%s: settings from context', (mode) => {
  const context = (extra: Record<string, string>) => ({ ...ACCESS_CONTEXT[mode], ...extra });

  test('retentionDays sets MESSAGE_RETENTION_DAYS in all three functions; 0 keeps everything', () => {
    for (const days of ['0', '7', '36500']) {
      const { templates } = synth({ context: context({ retentionDays: days }) });
      for (const binary of FUNCTION_NAMES) {
        expect(messageFunction(templates[functionStackName(binary)]).Properties.Environment.Variables.MESSAGE_RETENTION_DAYS).toBe(days);
      }
    }
  });

  test('each method\'s route throttle is set by its own context keys', () => {
    const { templates } = synth({
      context: context({
        getRateLimit: '40',
        getBurstLimit: '80',
        postRateLimit: '2',
        postBurstLimit: '3',
        deleteRateLimit: '4',
        deleteBurstLimit: '6',
      }),
    });
    const expected: Record<string, object> = {
      GET: { ThrottlingRateLimit: 40, ThrottlingBurstLimit: 80 },
      POST: { ThrottlingRateLimit: 2, ThrottlingBurstLimit: 3 },
      DELETE: { ThrottlingRateLimit: 4, ThrottlingBurstLimit: 6 },
    };
    for (const [key, [, , resource]] of throttlesOf(templates)) {
      expect(sdkCall(resource, 'Create').parameters.RouteSettings[key]).toEqual(expected[key.split(' ')[0]]);
    }
  });

  test('a stage default below a route\'s default lowers that route to it', () => {
    const { templates } = synth({ context: context({ throttleRateLimit: '5', throttleBurstLimit: '7' }) });
    const [[, stage]] = resourcesOfType(templates[BASE_STACK], 'AWS::ApiGatewayV2::Stage');
    expect(stage.Properties.DefaultRouteSettings).toEqual({ ThrottlingRateLimit: 5, ThrottlingBurstLimit: 7 });
    for (const [key, [, , resource]] of throttlesOf(templates)) {
      const settings = sdkCall(resource, 'Create').parameters.RouteSettings[key];
      expect(settings).toEqual(
        key.startsWith('GET ')
          ? { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 7 }
          : key.startsWith('POST ')
            ? { ThrottlingRateLimit: 1, ThrottlingBurstLimit: 7 }
            : { ThrottlingRateLimit: 1, ThrottlingBurstLimit: 5 },
      );
    }
  });

  test('monthlyBudgetUsd: a monthly cost budget notifying the alarm topic on actual and forecast spend', () => {
    const { templates } = synth({ context: context({ monthlyBudgetUsd: '25' }) });
    const base = templates[BASE_STACK];
    const [[topicId]] = resourcesOfType(base, 'AWS::SNS::Topic');
    const budgets = resourcesOfType(base, 'AWS::Budgets::Budget');
    expect(budgets).toHaveLength(1);
    const [[, budget]] = budgets;
    expect(budget.Properties.Budget).toEqual({
      BudgetName: 'EfsMessages-monthly',
      BudgetType: 'COST',
      TimeUnit: 'MONTHLY',
      BudgetLimit: { Amount: 25, Unit: 'USD' },
    });
    const notifications = budget.Properties.NotificationsWithSubscribers.map((n: any) => {
      expect(n.Subscribers).toEqual([{ SubscriptionType: 'SNS', Address: { Ref: topicId } }]);
      expect(n.Notification).toMatchObject({ ComparisonOperator: 'GREATER_THAN', ThresholdType: 'PERCENTAGE' });
      return `${n.Notification.NotificationType} ${n.Notification.Threshold}`;
    });
    expect(notifications).toEqual(['ACTUAL 80', 'ACTUAL 100', 'FORECASTED 100']);

    // The topic's policy lets Budgets publish for this account's budgets only.
    const [[topicPolicyId, topicPolicy]] = resourcesOfType(base, 'AWS::SNS::TopicPolicy');
    const publish = topicPolicy.Properties.PolicyDocument.Statement.find((s: any) => s.Principal?.Service === 'budgets.amazonaws.com');
    expect(publish).toEqual({
      Sid: 'BudgetsPublish',
      Effect: 'Allow',
      Principal: { Service: 'budgets.amazonaws.com' },
      Action: 'sns:Publish',
      Resource: { Ref: topicId },
      Condition: {
        StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
        ArnLike: { 'aws:SourceArn': { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':budgets::', { Ref: 'AWS::AccountId' }, ':*']] } },
      },
    });
    // The topic is encrypted with its own key: Budgets may use it to publish, exactly as CloudWatch may.
    const [[keyId, key]] = resourcesOfType(base, 'AWS::KMS::Key');
    const keyUse = key.Properties.KeyPolicy.Statement.find((s: any) => s.Principal?.Service === 'budgets.amazonaws.com');
    expect(keyUse).toEqual({
      Sid: 'BudgetsPublish',
      Effect: 'Allow',
      Principal: { Service: 'budgets.amazonaws.com' },
      Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      Resource: '*',
    });
    // Created once both policies allow it to publish.
    expect(asList(budgets[0][1].DependsOn)).toEqual(expect.arrayContaining([topicPolicyId, keyId]));
    // Nothing else changes with a budget but the base stack.
    const without = synth({ context: ACCESS_CONTEXT[mode] });
    for (const binary of FUNCTION_NAMES) {
      const name = functionStackName(binary);
      expect(templates[name]).toEqual(without.templates[name]);
    }
    Template.fromJSON(base).resourceCountIs('AWS::Budgets::Budget', 1);
  });
});

describe('cost guards: invalid settings are rejected at synth', () => {
  test.each([
    [{ retentionDays: '-1' }, /'retentionDays' must be a whole number from 0 to 36500/],
    [{ retentionDays: '36501' }, /'retentionDays' must be a whole number from 0 to 36500/],
    [{ retentionDays: '1.5' }, /'retentionDays'/],
    [{ retentionDays: 'forever' }, /'retentionDays'/],
    [{ retentionDays: '' }, /'retentionDays'/],
    [{ getRateLimit: '0' }, /'getRateLimit' must be a whole number from 1 to 50/],
    [{ postBurstLimit: '0' }, /'postBurstLimit' must be a whole number from 1 to 100/],
    [{ deleteRateLimit: '2.5' }, /'deleteRateLimit'/],
    [{ getRateLimit: '51' }, /'getRateLimit' must be a whole number from 1 to 50/],
    [{ getBurstLimit: '101' }, /'getBurstLimit' must be a whole number from 1 to 100/],
    [{ throttleRateLimit: '20', postRateLimit: '21' }, /'postRateLimit' must be a whole number from 1 to 20/],
    [{ throttleRateLimit: '0' }, /'throttleRateLimit' must be a whole number from 1/],
    [{ reservedConcurrency: '0' }, /'reservedConcurrency' must be 'none' or a whole number of at least 1/],
    [{ throttleBurstLimit: '-3' }, /'throttleBurstLimit' must be a whole number from 1/],
    [{ monthlyBudgetUsd: '0' }, /'monthlyBudgetUsd' must be a positive amount/],
    [{ monthlyBudgetUsd: '-5' }, /'monthlyBudgetUsd'/],
    [{ monthlyBudgetUsd: 'lots' }, /'monthlyBudgetUsd'/],
    [{ monthlyBudgetUsd: '1.234' }, /'monthlyBudgetUsd'/],
  ])('%j is rejected', (context, message) => {
    expect(() => synth({ context })).toThrow(message);
  });

  test('a budget in dollars and cents is accepted', () => {
    const { templates } = synth({ context: { monthlyBudgetUsd: '12.50' } });
    const [[, budget]] = resourcesOfType(templates[BASE_STACK], 'AWS::Budgets::Budget');
    expect(budget.Properties.Budget.BudgetLimit).toEqual({ Amount: 12.5, Unit: 'USD' });
  });
});
