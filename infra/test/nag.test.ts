import { App, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_STACK, FUNCTION_NAMES, functionStackName, synth } from './helpers';

/**
 * Every AwsSolutions finding of the app, and so every acknowledgement in lib/ (each carries its
 * reason in code). A new finding fails synthesis; a finding that disappears fails this list, so
 * no acknowledgement outlives its reason.
 */
const EXPECTED_ACKNOWLEDGED_FINDINGS: Record<string, string[]> = {
  'AwsSolutions-VPC7': [`${BASE_STACK}/Storage/Vpc/Resource`],
  'AwsSolutions-IAM5[Resource::*]': FUNCTION_NAMES.map((f) => `${functionStackName(f)}/Handler/Role/DefaultPolicy/Resource`),
  'AwsSolutions-APIG4': [
    ['get-messages', 'RouteGET'],
    ['get-messages', 'RouteGETmessages'],
    ['get-messages', 'RouteGETmessagesid'],
    ['post-message', 'RoutePOST'],
    ['post-message', 'RoutePOSTmessages'],
    ['delete-messages', 'RouteDELETE'],
    ['delete-messages', 'RouteDELETEmessages'],
    ['delete-messages', 'RouteDELETEmessagesid'],
  ].map(([f, route]) => `${functionStackName(f)}/Handler/${route}/Resource`),
};

describe('cdk-nag AwsSolutionsChecks', () => {
  const result = synth();

  test('synthesis (which runs the checks over every stack) leaves no unacknowledged finding', () => {
    const report = JSON.parse(readFileSync(join(result.outdir, 'validation-report.json'), 'utf8'));
    const violations = (report.pluginReports ?? []).flatMap((r: any) => r.violations ?? []);
    expect(violations).toEqual([]);
    expect(Object.keys(result.templates)).toHaveLength(1 + FUNCTION_NAMES.length);
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
    const expected = Object.fromEntries(Object.entries(EXPECTED_ACKNOWLEDGED_FINDINGS).map(([k, v]) => [k, [...v].sort()]));
    expect(found).toEqual(expected);
  });

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
