import { Template } from 'aws-cdk-lib/assertions';
import {
  ACCESS_CONTEXT,
  allStatements,
  asList,
  BASE_STACK,
  baseOutputRef,
  baseValueOutput,
  CONTRACT_ROUTES,
  FUNCTION_NAMES,
  functionStackName,
  resourcesOfType,
  renderJoin,
  synth,
} from './helpers';

/** Every route of every function stack, as [binary, route resource]. */
const routesOf = (templates: Record<string, any>): Array<[string, any]> =>
  FUNCTION_NAMES.flatMap((binary) =>
    resourcesOfType(templates[functionStackName(binary)], 'AWS::ApiGatewayV2::Route').map(([, r]) => [binary, r] as [string, any]),
  );

/** An `Fn::Join` of literals and `{Ref}`s as one string; anything else is a test failure. */
const render = (value: any): string => renderJoin(value, true);

describe('access=iam (the default): every route requires SigV4', () => {
  const { templates } = synth();
  const base = templates[BASE_STACK];
  const [[apiId]] = resourcesOfType(base, 'AWS::ApiGatewayV2::Api');

  test('all 8 routes have AuthorizationType AWS_IAM, no authorizer resource, and an explicitly empty list of scopes', () => {
    const routes = routesOf(templates);
    expect(routes).toHaveLength(CONTRACT_ROUTES.length);
    for (const [, route] of routes) {
      expect(route.Properties.AuthorizationType).toBe('AWS_IAM');
      expect(route.Properties.AuthorizerId).toBeUndefined();
      expect(route.Properties.AuthorizationScopes).toEqual([]);
    }
    for (const json of Object.values(templates)) {
      expect(resourcesOfType(json, 'AWS::ApiGatewayV2::Authorizer')).toEqual([]);
    }
  });

  const routeArn = (method: string, path: string) =>
    `arn:\${AWS::Partition}:execute-api:\${AWS::Region}:\${AWS::AccountId}:\${${apiId}}/$default/${method}/` +
    path.replace(/^\//, '').replace(/\{[^}]+\}/g, '*');
  const expectedArns = (methods: string[]) =>
    CONTRACT_ROUTES.filter(([m]) => methods.includes(m)).map(([m, p]) => routeArn(m, p)).sort();

  test.each([
    ['reader', 'ReaderPolicyArn', ['GET']],
    ['writer', 'WriterPolicyArn', ['GET', 'POST']],
    ['admin', 'AdminPolicyArn', ['GET', 'POST', 'DELETE']],
  ])('the %s policy allows execute-api:Invoke on exactly its routes of this API, and its ARN is output %s', (tier, output, methods) => {
    const policies = resourcesOfType(base, 'AWS::IAM::ManagedPolicy');
    const found = policies.find(([id]) => id.startsWith(`Access${tier}`));
    expect(found).toBeDefined();
    const [policyId, policy] = found!;
    // Customer-managed and attached to nothing: an operator attaches it to a role or user.
    expect(policy.Properties.Roles ?? policy.Properties.Users ?? policy.Properties.Groups).toBeUndefined();
    const statements = policy.Properties.PolicyDocument.Statement;
    expect(statements).toHaveLength(1);
    const [statement] = statements;
    expect(Object.keys(statement).sort()).toEqual(['Action', 'Effect', 'Resource']);
    expect(statement.Effect).toBe('Allow');
    expect(statement.Action).toBe('execute-api:Invoke');
    const arns = asList(statement.Resource).map(render).sort();
    expect(arns).toEqual(expectedArns(methods));
    // Only the path parameter is a wildcard.
    for (const arn of arns) {
      expect(arn.replace(/\/messages\/\*$/, '')).not.toContain('*');
    }
    Template.fromJSON(base).hasOutput(output, { Value: { Ref: policyId } });
  });

  test('exactly three managed policies, and they are the only execute-api grants', () => {
    expect(resourcesOfType(base, 'AWS::IAM::ManagedPolicy')).toHaveLength(3);
    const invokeGrants = Object.values(templates)
      .flatMap((json) => allStatements(json))
      .filter((s) => asList<string>(s.Action).some((a) => a.startsWith('execute-api:')));
    expect(invokeGrants).toHaveLength(3);
  });
});

describe('access=jwt: every route requires a JWT with the method\'s scope', () => {
  const { templates } = synth({ context: ACCESS_CONTEXT.jwt });

  test.each(FUNCTION_NAMES)('%s: one JWT authorizer with the configured issuer and audience', (binary) => {
    const json = templates[functionStackName(binary)];
    const authorizers = resourcesOfType(json, 'AWS::ApiGatewayV2::Authorizer');
    expect(authorizers).toHaveLength(1);
    const [[authorizerId, authorizer]] = authorizers;
    expect(authorizer.Properties).toMatchObject({
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: { Issuer: ACCESS_CONTEXT.jwt.jwtIssuer, Audience: [ACCESS_CONTEXT.jwt.jwtAudience] },
    });
    expect(authorizer.Properties.ApiId).toEqual(baseOutputRef(baseValueOutput(templates[BASE_STACK], 'ApiId')));
    for (const [, route] of resourcesOfType(json, 'AWS::ApiGatewayV2::Route')) {
      expect(route.Properties.AuthorizerId).toEqual({ Ref: authorizerId });
    }
  });

  test('all 8 routes: JWT, with messages/read for GET, messages/write for POST, messages/delete for DELETE', () => {
    const scopes: Record<string, string> = { GET: 'messages/read', POST: 'messages/write', DELETE: 'messages/delete' };
    const routes = routesOf(templates);
    expect(routes).toHaveLength(CONTRACT_ROUTES.length);
    for (const [, route] of routes) {
      const method = route.Properties.RouteKey.split(' ')[0];
      expect(route.Properties.AuthorizationType).toBe('JWT');
      expect(route.Properties.AuthorizationScopes).toEqual([scopes[method]]);
    }
  });

  test('no IAM policies or their outputs in the base stack', () => {
    expect(resourcesOfType(templates[BASE_STACK], 'AWS::IAM::ManagedPolicy')).toEqual([]);
    expect(Object.keys(templates[BASE_STACK].Outputs)).not.toContain('ReaderPolicyArn');
  });

  test('several audiences, comma-separated', () => {
    const many = synth({ context: { ...ACCESS_CONTEXT.jwt, jwtAudience: 'web, cli' } });
    const [[, authorizer]] = resourcesOfType(many.templates[functionStackName('get-messages')], 'AWS::ApiGatewayV2::Authorizer');
    expect(authorizer.Properties.JwtConfiguration.Audience).toEqual(['web', 'cli']);
  });
});

describe('access=public: an explicit choice', () => {
  const { templates } = synth({ context: ACCESS_CONTEXT.public });

  test('all 8 routes have AuthorizationType NONE and an explicitly empty list of scopes; no authorizer, no policies', () => {
    const routes = routesOf(templates);
    expect(routes).toHaveLength(CONTRACT_ROUTES.length);
    for (const [, route] of routes) {
      expect(route.Properties.AuthorizationType).toBe('NONE');
      expect(route.Properties.AuthorizerId).toBeUndefined();
      expect(route.Properties.AuthorizationScopes).toEqual([]);
    }
    for (const json of Object.values(templates)) {
      expect(resourcesOfType(json, 'AWS::ApiGatewayV2::Authorizer')).toEqual([]);
      expect(resourcesOfType(json, 'AWS::IAM::ManagedPolicy')).toEqual([]);
    }
  });
});

describe('access settings are validated at synth', () => {
  test.each([
    [{ access: 'open' }, /context 'access' must be one of iam, jwt, public/],
    [{ access: 'jwt' }, /needs both context 'jwtIssuer'/],
    [{ access: 'jwt', jwtIssuer: 'https://issuer.example.com' }, /needs both/],
    [{ access: 'jwt', jwtAudience: 'client' }, /needs both/],
    [{ access: 'jwt', jwtIssuer: 'http://issuer.example.com', jwtAudience: 'client' }, /https URL/],
    [{ access: 'jwt', jwtIssuer: 'not a url', jwtAudience: 'client' }, /https URL/],
    [{ access: 'jwt', jwtIssuer: 'https://issuer.example.com/?x=1', jwtAudience: 'client' }, /without query/],
    [{ access: 'jwt', jwtIssuer: 'https://issuer.example.com', jwtAudience: 'a,,b' }, /jwtAudience/],
    [{ jwtIssuer: 'https://issuer.example.com', jwtAudience: 'client' }, /only apply with access=jwt/],
    [{ access: 'public', jwtAudience: 'client' }, /only apply with access=jwt/],
  ])('%j is rejected', (context, message) => {
    expect(() => synth({ context })).toThrow(message);
  });

  test('the mode is case-insensitive', () => {
    const { templates } = synth({ context: { access: 'PUBLIC' } });
    expect(routesOf(templates).every(([, r]) => r.Properties.AuthorizationType === 'NONE')).toBe(true);
  });
});

describe('switching access modes leaves nothing of the previous mode on a route', () => {
  // CloudFormation updates a route with UpdateRoute, which keeps any field the template no longer
  // has (lib/access.ts, pinRouteAuthorization): every field one mode sets, every other mode must
  // set too. The one exception is AuthorizerId, which a non-JWT AuthorizationType detaches.
  const modes = Object.fromEntries(
    (Object.keys(ACCESS_CONTEXT) as Array<keyof typeof ACCESS_CONTEXT>).map((mode) => [mode, synth({ context: ACCESS_CONTEXT[mode] }).templates]),
  );
  const routeProperties = (templates: Record<string, any>) =>
    new Map(
      FUNCTION_NAMES.flatMap((binary) =>
        resourcesOfType(templates[functionStackName(binary)], 'AWS::ApiGatewayV2::Route').map(([id, r]) => [`${binary}/${id}`, r.Properties]),
      ),
    );

  test.each([
    ['jwt', 'iam'],
    ['jwt', 'public'],
    ['iam', 'jwt'],
    ['iam', 'public'],
    ['public', 'jwt'],
    ['public', 'iam'],
  ] as const)('%s -> %s: the same routes (same logical ids), each setting every field the old mode set', (from, to) => {
    const before = routeProperties(modes[from]);
    const after = routeProperties(modes[to]);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    expect(after.size).toBe(CONTRACT_ROUTES.length);
    for (const [id, old] of before) {
      const next = after.get(id);
      const dropped = Object.keys(old).filter((key) => !(key in next) && !(key === 'AuthorizerId' && next.AuthorizationType !== 'JWT'));
      expect([id, dropped]).toEqual([id, []]);
      expect(next.AuthorizationType).toEqual(expect.any(String));
      // Scopes only where JWT allows them; an empty list elsewhere clears what jwt set.
      expect([id, next.AuthorizationScopes.length > 0]).toEqual([id, to === 'jwt']);
    }
  });
});
