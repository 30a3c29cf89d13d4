import { CfnOutput, RemovalPolicy } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface MessagesApiProps {
  /** The API's name in the console. @default 'EfsMessages-api' */
  readonly apiName?: string;
  /**
   * Steady-state requests per second for the whole API (default stage).
   * @default 50
   */
  readonly throttleRateLimit?: number;
  /**
   * Burst bucket size for the whole API (default stage).
   * @default 100
   */
  readonly throttleBurstLimit?: number;
  /** How long access logs are kept. @default ONE_WEEK */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to the access log group on stack deletion. @default DESTROY */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The HTTP API with its `$default` stage (throttled, access-logged) but without routes: each
 * function stack adds its own routes and integration, so one function deploys without the others.
 */
export class MessagesApi extends Construct {
  readonly httpApi: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;
  readonly accessLogGroup: logs.LogGroup;
  /** The API's base URL (`https://{id}.execute-api.{region}.amazonaws.com/`). */
  readonly url: string;

  constructor(scope: Construct, id: string, props: MessagesApiProps = {}) {
    super(scope, id);

    this.httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
      apiName: props.apiName ?? 'EfsMessages-api',
      description: 'Messages stored on EFS: one Lambda function per HTTP method',
      // The stage is created below so that it can carry throttling and access logging. No
      // default integration: only the routes of the contract's table reach a function
      // (no `$default` catch-all route).
      createDefaultStage: false,
    });

    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_WEEK,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
    });

    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      // Routes live in the function stacks: auto-deploy publishes each stack's route changes
      // without a deployment resource that would tie the stacks together.
      autoDeploy: true,
      // Cost and abuse guard for a public demo API: excess requests get 429 before any Lambda
      // invocation is billed.
      throttle: {
        rateLimit: props.throttleRateLimit ?? 50,
        burstLimit: props.throttleBurstLimit ?? 100,
      },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogGroup),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            ip: '$context.identity.sourceIp',
            requestTime: '$context.requestTime',
            httpMethod: '$context.httpMethod',
            routeKey: '$context.routeKey',
            path: '$context.path',
            status: '$context.status',
            protocol: '$context.protocol',
            responseLength: '$context.responseLength',
            responseLatency: '$context.responseLatency',
            integrationStatus: '$context.integrationStatus',
            integrationLatency: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
            error: '$context.error.message',
          }),
        ),
      },
    });

    this.url = this.stage.url;
    new CfnOutput(this, 'Url', {
      key: 'ApiUrl',
      description: 'Base URL of the messages API; try: curl <ApiUrl>messages',
      value: this.url,
    });
  }
}
