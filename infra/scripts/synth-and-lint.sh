#!/usr/bin/env bash
# `npm run synth`: synthesise every stack through the cdk CLI WITHOUT building the Rust code
# (-c skipBundling=true), once per storage kind and access mode (six combinations), then lint
# every template of all six with cfn-lint, in one run (its start-up is a third of its time).
#  - cdk-nag's AwsSolutionsChecks runs during synthesis: any unacknowledged finding makes
#    `cdk synth` exit non-zero, and so this script.
#  - cfn-lint must report no error. W3005 (a DependsOn that a GetAtt already implies) is ignored:
#    CDK always makes a function depend on its role and its role's policy, on purpose.
# Needs: npm ci (in infra/) and cfn-lint on PATH (pip install cfn-lint).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cfn-lint >/dev/null 2>&1; then
  echo "synth-and-lint: cfn-lint is not on PATH (python3 -m venv .venv && .venv/bin/pip install cfn-lint)" >&2
  exit 1
fi

# Every access mode (issue 10): the default (iam), jwt (with an example issuer and audience) and
# public. Each is synthesised (cdk-nag) and linted on its own. The public one also has the optional
# cost budget (issue 16), so its AWS::Budgets::Budget and policies are linted too, and the
# GitHub deploy-role stack (issue 19).
# The iam mode is the recorded deployment (deployments.json) as it is; the others change its
# settings on purpose (-c changeSettings=true, which synth then warns about).
MODES=(
  "iam"
  "jwt -c changeSettings=true -c jwtIssuer=https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE -c jwtAudience=example-client-id"
  "public -c changeSettings=true -c monthlyBudgetUsd=20 -c githubRepository=octo-org/octo-repo"
)

# Both storage kinds (issue 18): EFS (the default) and S3 Files with its bucket.
STORAGES=(efs s3files)

root="$(mktemp -d "${TMPDIR:-/tmp}/efs-messages-synth.XXXXXX")"
trap 'rm -rf "$root"' EXIT

# Type checking already ran (npm run typecheck): ts-node only transpiles here.
export TS_NODE_TRANSPILE_ONLY=true CDK_DISABLE_CLI_TELEMETRY=true
lint_version=$(cfn-lint --version | awk '{print $2}')
all_templates=()
for storage in "${STORAGES[@]}"; do
for spec in "${MODES[@]}"; do
  read -r -a args <<<"$spec"
  mode=${args[0]}
  combination="storage=$storage access=$mode"
  out="$root/$storage-$mode"
  start=$SECONDS
  # storage=s3files differs from the recorded deployment (efs): a deliberate change, like jwt's.
  change=()
  [[ $storage == efs ]] || change=(-c changeSettings=true)
  npx cdk synth --quiet --no-notices -c skipBundling=true -c "storage=$storage" -c "access=$mode" "${change[@]}" "${args[@]:1}" -o "$out"

  shopt -s nullglob
  templates=("$out"/*.template.json)
  expected=$(node -e '
    const m = require(process.argv[1]);
    console.log(Object.values(m.artifacts).filter((a) => a.type === "aws:cloudformation:stack").length);
  ' "$out/manifest.json")
  if (( ${#templates[@]} == 0 || ${#templates[@]} != expected )); then
    echo "synth-and-lint: $combination: expected $expected templates, found ${#templates[@]}" >&2
    exit 1
  fi
  echo "$combination: cdk synth + cdk-nag (AwsSolutions): ${#templates[@]} stacks, no unacknowledged finding ($((SECONDS - start)) s)"
  all_templates+=("${templates[@]}")
done
done

start=$SECONDS
set +e
cfn-lint --ignore-checks W3005 -- "${all_templates[@]}"
rc=$?
set -e
# cfn-lint's exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational; 1 = it failed.
if (( rc & 3 )); then
  echo "cfn-lint: errors in the synthesised templates (exit $rc; each file's directory names its storage and access mode)" >&2
  exit 1
fi
echo "cfn-lint $lint_version: ${#all_templates[@]} templates of ${#STORAGES[@]} storage kinds x ${#MODES[@]} access modes, no errors ($((SECONDS - start)) s)"
