import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { Route } from './workspace';

/**
 * How often the delete function reclaims. `DELETE /messages` only raises a cut-off and answers at
 * once; the files it condemned stay on EFS (billed per GB-month) until a scheduled run unlinks
 * them, each run bounded well inside the function's timeout (RECLAIM_BUDGET in
 * functions/delete/src/lib.rs), so a million files take a few hundred runs.
 *
 * Cost: 43,800 invocations a month; an idle run reads one file and lists one directory, a few
 * milliseconds at 128 MB: under $0.01 a month in requests and compute (arm64 list prices,
 * November 2026), and nothing else.
 */
export const RECLAIM_RATE = Duration.minutes(1);

/** Whether a function serves `DELETE` on a collection (`/` or `/messages`): it runs the schedule. */
export function deletesEverything(routes: readonly Route[]): boolean {
  return routes.some((route) => route.method === 'DELETE' && !route.path.includes('{'));
}

export interface ReclaimScheduleProps {
  /** What the schedule invokes: the function's `live` alias, like the routes. */
  readonly target: lambda.IFunction;
}

/**
 * An EventBridge rule that invokes the delete function with the standard scheduled event, which
 * its adapter routes to one bounded step of reclaiming (no HTTP route can trigger it). The
 * invoke permission is EventBridge's, for this rule only.
 */
export class ReclaimSchedule extends Construct {
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: ReclaimScheduleProps) {
    super(scope, id);
    this.rule = new events.Rule(this, 'Rule', {
      description: 'Reclaims, in bounded steps, the files that DELETE /messages condemned',
      schedule: events.Schedule.rate(RECLAIM_RATE),
      targets: [
        new targets.LambdaFunction(props.target, {
          // The next tick is a retry: a failed run leaves nothing half done.
          retryAttempts: 0,
          maxEventAge: RECLAIM_RATE,
        }),
      ],
    });
  }
}
