import { App, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { routeSettingsFinding } from '../lib/api';
import { ACCESS_CONTEXT, BASE_STACK, baseOutputRef, baseValueOutput, FUNCTION_NAMES, functionStackName, synth } from './helpers';

const ROUTES = [
  ['get-messages', 'RouteGET'],
  ['get-messages', 'RouteGETmessages'],
  ['get-messages', 'RouteGETmessagesid'],
  ['post-message', 'RoutePOST'],
  ['post-message', 'RoutePOSTmessages'],
  ['delete-messages', 'RouteDELETE'],
  ['delete-messages', 'RouteDELETEmessages'],
  ['delete-messages', 'RouteDELETEmessagesid'],
].map(([f, route]) => `${functionStackName(f)}/Handler/${route}/Resource`);

/** Each route's throttle (a custom resource in its function's stack, see api.ts RouteThrottle). */
const ROUTE_THROTTLE_POLICIES = ROUTES.map((route) => route.replace(/\/Route(\w+)\/Resource$/, '/Throttle$1/Resource/CustomResourcePolicy/Resource'));

/** The API id as cdk-nag renders it in a function stack: the base stack's output (BaseValueOutputs). */
const renderedApiId = (baseTemplate: any) => JSON.stringify(baseOutputRef(baseValueOutput(baseTemplate, 'ApiId')));

/** cdk-nag's name for a wildcard route ARN of the iam-mode policies. */
const routeArnFinding = (method: string, path: string) =>
  `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<ApiHttpApi4C294DC0>/$default/${method}/${path}]`;

/**
 * Every AwsSolutions finding of the app, and so every acknowledgement in lib/ (each carries its
 * reason in code), per access mode. A new finding fails synthesis; a finding that disappears fails
 * this list, so no acknowledgement outlives its reason.
 */
const commonFindings = (apiId: string): Record<string, string[]> => ({
  'AwsSolutions-VPC7': [`${BASE_STACK}/Storage/Vpc/Resource`],
  'AwsSolutions-IAM5[Resource::*]': FUNCTION_NAMES.map((f) => `${functionStackName(f)}/Handler/Role/DefaultPolicy/Resource`),
  // CodeDeploy's service role per function (CDK always attaches this AWS-managed policy).
  'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]': FUNCTION_NAMES.map(
    (f) => `${functionStackName(f)}/Deployment/Group/ServiceRole/Resource`,
  ),
  // DeleteRouteSettings on the route settings of this API's $default stage (route keys have spaces and braces).
  [routeSettingsFinding(apiId, '$default')]: ROUTE_THROTTLE_POLICIES,
});
const expectedAcknowledgedFindings = (mode: keyof typeof ACCESS_CONTEXT, apiId: string): Record<string, string[]> =>
  ({
    // The policies' only wildcard is the {id} of GET and DELETE /messages/{id}.
    iam: {
      ...commonFindings(apiId),
      [routeArnFinding('GET', 'messages/*')]: ['reader', 'writer', 'admin'].map((t) => `${BASE_STACK}/Access/${t}/Resource`),
      [routeArnFinding('DELETE', 'messages/*')]: [`${BASE_STACK}/Access/admin/Resource`],
    },
    jwt: commonFindings(apiId),
    // Only an explicitly public API leaves its routes without authorization.
    public: { ...commonFindings(apiId), 'AwsSolutions-APIG4': ROUTES },
  })[mode];

describe.each(Object.keys(ACCESS_CONTEXT) as Array<keyof typeof ACCESS_CONTEXT>)('cdk-nag AwsSolutionsChecks, access=%s', (mode) => {
  const result = synth({ context: ACCESS_CONTEXT[mode] });
  const reportedViolations = (): any[] => {
    const report = JSON.parse(readFileSync(join(result.outdir, 'validation-report.json'), 'utf8'));
    return (report.pluginReports ?? []).flatMap((r: any) => r.violations ?? []);
  };

  test('synthesis (which runs the checks over every stack) leaves no unacknowledged finding', () => {
    const violations = reportedViolations().filter((v: any) => !v.ruleName.startsWith('Annotation::'));
    expect(violations).toEqual([]);
    expect(Object.keys(result.templates)).toHaveLength(1 + FUNCTION_NAMES.length);
  });

  test(`synthesis ${mode === 'public' ? 'warns' : 'does not warn'} that the API is open to the internet`, () => {
    const warnings = reportedViolations().filter((v: any) => v.ruleName === 'Annotation::@efs-messages:publicApi');
    if (mode === 'public') {
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ severity: 'warning', description: expect.stringMatching(/OPEN TO THE INTERNET/) });
    } else {
      expect(warnings).toEqual([]);
    }
  });

  test('the acknowledged findings are exactly the documented ones', () => {
    const pack = new AwsSolutionsChecks(result.app);
    // Report acknowledged findings too (cdk-nag 3.x keeps this check in a private method).
    (pack as any).isAcknowledged = () => false;
    const raw = pack.validateScope(result.app);
    const found: Record<string, string[]> = {};
    for (const violation of raw.violations) {
      found[violation.ruleName] = violation.violatingResources.map((r: any) => r.constructPath).sort();
    }
    const expected = Object.fromEntries(
      Object.entries(expectedAcknowledgedFindings(mode, renderedApiId(result.templates[BASE_STACK]))).map(([k, v]) => [k, [...v].sort()]),
    );
    expect(found).toEqual(expected);
  });
});

describe('cdk-nag AwsSolutionsChecks', () => {
  test('an unacknowledged finding fails synthesis', () => {
    const app = new App();
    const stack = new Stack(app, 'Bad');
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'i', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const group = new ec2.SecurityGroup(stack, 'Open', { vpc });
    group.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(22));
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions-EC23/);
  });
});
