import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLING_STACKS, buildMessagesApp } from '../lib/app';
import { CDK_BOOTSTRAP_ROLES, deployRoleStackName, GitHubDeployRoleStack } from '../lib/github-deploy-role';
import { allStatements, cdkJsonContext, resourcesOfType, synth } from './helpers';

const REPOSITORY = 'octo-org/octo-repo';
const ROLE_STACK = deployRoleStackName('EfsMessages');
const PROVIDER_ARN = 'arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com';

/** The role stack alone, in an app of its own (fast: no workspace, no function stacks). */
function roleStack(props: Partial<ConstructorParameters<typeof GitHubDeployRoleStack>[2]> = {}, context = {}) {
  const app = new App({ context: { ...cdkJsonContext(), ...context } });
  const stack = new GitHubDeployRoleStack(app, 'Role', { repository: REPOSITORY, ...props });
  return { stack, template: Template.fromStack(stack).toJSON() };
}

function trust(template: any): any {
  const [[, role]] = resourcesOfType(template, 'AWS::IAM::Role');
  return role.Properties.AssumeRolePolicyDocument.Statement;
}

const bootstrapRoleArn = (name: string, qualifier = 'hnb659fds') => ({
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':iam::',
      { Ref: 'AWS::AccountId' },
      `:role/cdk-${qualifier}-${name}-role-`,
      { Ref: 'AWS::AccountId' },
      '-',
      { Ref: 'AWS::Region' },
    ],
  ],
});

describe('the GitHub deploy-role stack in the app (-c githubRepository)', () => {
  const result = synth({ context: { githubRepository: REPOSITORY } });
  const template = result.templates[ROLE_STACK];

  test('is synthesised, cdk-nag (AwsSolutions) clean, beside the app stacks', () => {
    expect(template).toBeDefined();
    const report = JSON.parse(readFileSync(join(result.outdir, 'validation-report.json'), 'utf8'));
    const findings = (report.pluginReports ?? [])
      .flatMap((r: any) => r.violations ?? [])
      .filter((v: any) => !v.ruleName.startsWith('Annotation::'));
    expect(findings).toEqual([]);
    expect(Object.keys(result.templates).sort()).toEqual(
      ['EfsMessages-base', 'EfsMessages-delete-messages', 'EfsMessages-get-messages', 'EfsMessages-post-message', ROLE_STACK].sort(),
    );
  });

  test('creates the GitHub OIDC provider for the STS audience', () => {
    const providers = resourcesOfType(template, 'AWS::IAM::OIDCProvider');
    expect(providers).toHaveLength(1);
    expect(providers[0][1].Properties).toMatchObject({
      Url: 'https://token.actions.githubusercontent.com',
      ClientIdList: ['sts.amazonaws.com'],
    });
  });

  test("trusts only the repository's main branch and its production environment, through that provider", () => {
    const statements = trust(template);
    expect(statements).toHaveLength(1);
    expect(statements[0]).toEqual({
      Effect: 'Allow',
      Action: 'sts:AssumeRoleWithWebIdentity',
      Principal: { Federated: { Ref: resourcesOfType(template, 'AWS::IAM::OIDCProvider')[0][0] } },
      Condition: {
        StringEquals: {
          'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
          'token.actions.githubusercontent.com:sub': [
            `repo:${REPOSITORY}:environment:production`,
            `repo:${REPOSITORY}:ref:refs/heads/main`,
          ],
        },
      },
    });
    // No pattern anywhere in the trust: StringLike would admit other repositories or branches.
    expect(JSON.stringify(statements)).not.toMatch(/StringLike|\*/);
  });

  test('may do nothing but assume the four CDK bootstrap roles of its account and region', () => {
    const statements = allStatements(template).filter((s) => s.Action !== 'sts:AssumeRoleWithWebIdentity');
    expect(statements).toEqual([
      {
        Effect: 'Allow',
        Action: 'sts:AssumeRole',
        Resource: CDK_BOOTSTRAP_ROLES.map((name) => bootstrapRoleArn(name)),
      },
    ]);
    expect(resourcesOfType(template, 'AWS::IAM::ManagedPolicy')).toEqual([]);
    const [[, role]] = resourcesOfType(template, 'AWS::IAM::Role');
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  test('outputs the role ARN for the repository variable', () => {
    expect(template.Outputs.RoleArn.Value).toEqual({ 'Fn::GetAtt': [resourcesOfType(template, 'AWS::IAM::Role')[0][0], 'Arn'] });
  });

  test('leaves the app stacks exactly as without it', () => {
    const plain = synth();
    for (const [name, text] of Object.entries(plain.templateText)) {
      expect(result.templateText[name]).toEqual(text);
    }
  });
});

test('without -c githubRepository the app has no deploy-role stack', () => {
  for (const context of [{}, { githubRepository: '' }]) {
    const app = new App({ context: { ...cdkJsonContext(), [BUNDLING_STACKS]: [], ...context } });
    buildMessagesApp(app);
    expect(app.node.tryFindChild(ROLE_STACK)).toBeUndefined();
    expect(app.node.children.length).toBe(4);
  }
});

test('an existing OIDC provider is used by ARN, not created', () => {
  const { template } = roleStack({ oidcProviderArn: PROVIDER_ARN });
  expect(resourcesOfType(template, 'AWS::IAM::OIDCProvider')).toEqual([]);
  expect(trust(template)[0].Principal).toEqual({ Federated: PROVIDER_ARN });
});

test('the environment, the branch and the bootstrap qualifier can be named', () => {
  const { template } = roleStack({ environment: 'staging', branch: 'release' }, { '@aws-cdk/core:bootstrapQualifier': 'abc123xyz' });
  expect(trust(template)[0].Condition.StringEquals['token.actions.githubusercontent.com:sub']).toEqual([
    `repo:${REPOSITORY}:environment:staging`,
    `repo:${REPOSITORY}:ref:refs/heads/release`,
  ]);
  const [assume] = allStatements(template).filter((s) => s.Action === 'sts:AssumeRole');
  expect(assume.Resource).toEqual(CDK_BOOTSTRAP_ROLES.map((name) => bootstrapRoleArn(name, 'abc123xyz')));
});

test.each([
  ['a repository without an owner', { repository: 'octo-repo' }, /githubRepository/],
  ['a wildcard repository', { repository: 'octo-org/*' }, /githubRepository/],
  ['a wildcard environment', { environment: 'prod*' }, /githubEnvironment/],
  ['a branch with a colon', { branch: 'main:x' }, /githubBranch/],
  ['a provider of another issuer', { oidcProviderArn: 'arn:aws:iam::123456789012:oidc-provider/example.com' }, /githubOidcProviderArn/],
])('refuses %s', (_what, props, message) => {
  expect(() => roleStack(props)).toThrow(message);
});

test('cdk-nag finds nothing in the stack with an existing provider either', () => {
  const app = new App({ context: cdkJsonContext() });
  new GitHubDeployRoleStack(app, 'Role', { repository: REPOSITORY, oidcProviderArn: PROVIDER_ARN });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  expect(() => app.synth()).not.toThrow();
});
