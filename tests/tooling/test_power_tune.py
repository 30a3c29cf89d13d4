"""scripts/power-tune, offline: a stand-in AWS that answers with recorded CLI output."""

from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).resolve().parent / "recorded" / "power-tune"
FUNCTIONS = ["get-messages", "post-message", "delete-messages"]
CASE_FILES = ["get-page", "get-read", "post", "delete"]


def load_script():
    loader = importlib.machinery.SourceFileLoader("power_tune", str(REPO / "scripts" / "power-tune"))
    spec = importlib.util.spec_from_loader("power_tune", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["power_tune"] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


pt = load_script()


def recorded(name: str) -> dict:
    return json.loads((RECORDED / f"{name}.json").read_text())


class RecordedAws:
    """The two methods of AwsCli, answering from the recorded files; keeps every call."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.invokes: list[tuple[str, str, dict]] = []
        self.executions = [recorded(f"describe-execution-{c}") for c in CASE_FILES]
        self.running_first = 0  # how many RUNNING answers before each execution's result
        self._polls = 0
        self.overrides: dict[tuple, dict] = {}

    def call(self, service: str, operation: str, *args: str) -> dict:
        self.calls.append((service, operation, *args))
        if (service, operation) in self.overrides:
            return copy.deepcopy(self.overrides[(service, operation)])
        if (service, operation) == ("cloudformation", "describe-stacks"):
            return recorded("describe-stacks")
        function = args[args.index("--function-name") + 1].removeprefix("EfsMessages-") if "--function-name" in args else None
        if (service, operation) == ("lambda", "get-alias"):
            return recorded(f"get-alias-{function}")
        if (service, operation) == ("lambda", "get-function-configuration"):
            return recorded(f"get-function-configuration-{function}-{'live' if '--qualifier' in args else 'latest'}")
        if (service, operation) == ("stepfunctions", "start-execution"):
            n = sum(1 for c in self.calls if c[1] == "start-execution") - 1
            return {"executionArn": self.executions[n]["executionArn"], "startDate": "2026-12-03T18:00:00Z"}
        if (service, operation) == ("stepfunctions", "describe-execution"):
            arn = args[args.index("--execution-arn") + 1]
            answer = next(e for e in self.executions if e["executionArn"] == arn)
            if self._polls < self.running_first:
                self._polls += 1
                return {**answer, "status": "RUNNING", "output": None}
            self._polls = 0
            return answer
        raise AssertionError(f"unexpected call {service} {operation} {args}")

    def invoke(self, function: str, qualifier: str, payload: dict) -> dict:
        self.invokes.append((function, qualifier, payload))
        return recorded(f"invoke-{function.removeprefix('EfsMessages-')}")

    def inputs(self) -> list[dict]:
        return [json.loads(c[c.index("--input") + 1]) for c in self.calls if c[1] == "start-execution"]


@pytest.fixture
def function_ts(tmp_path, monkeypatch):
    """A function.ts with a known table (the real one may change)."""
    file = tmp_path / "function.ts"
    file.write_text("export const FUNCTION_MEMORY_MB: Readonly<Record<string, number>> = {\n"
                    "  'get-messages': 256,\n  'post-message': 128,\n  'delete-messages': 128,\n};\n")
    monkeypatch.setattr(pt, "FUNCTION_TS", file)
    return file


def run(aws, *args: str) -> tuple[int, list[str], list[float]]:
    lines, sleeps = [], []
    rc = pt.main(list(args), aws=aws, out=lines.append, sleep=sleeps.append)
    return rc, "\n".join(lines).splitlines(), sleeps


def test_a_run_prints_each_table_and_which_entry_to_change(function_ts):
    rc, lines, _ = run(RecordedAws())
    assert rc == 0
    text = "\n".join(lines)
    for title in ("get-messages, a page of 100", "get-messages, a read by id", "post-message, a POST of 256 bytes",
                  "delete-messages, a DELETE by id (404)"):
        assert title in text
    title = next(i for i, l in enumerate(lines) if l.startswith("get-messages, a page of 100 (Power Tuning's pick"))
    page_rows = lines[title + 2:title + 7]
    assert [int(re.match(r"\s*(\d+) MB", r).group(1)) for r in page_rows] == [128, 256, 512, 1024, 1769]
    assert "212.40 ms" in page_rows[0] and page_rows[2].endswith("<-")
    assert ("=> get-messages (cost): 512 MB" in text
            and "change FUNCTION_MEMORY_MB['get-messages'] in infra/lib/function.ts from 256 to 512" in text)
    assert "=> post-message (cost): 128 MB" in text and "keep 128 MB" in text
    assert "=> delete-messages (cost): 128 MB" in text
    assert re.search(r"this run's cost: \$0\.00\d\d", text)
    assert "the store holds 1 message(s)" in text  # the recorded page held one message


def test_each_execution_gets_the_benchmarks_event_and_the_unqualified_function(function_ts):
    aws = RecordedAws()
    run(aws, "--powers", "128,256,512", "--num", "5")
    page, read, post, delete = aws.inputs()
    for given, fn in zip((page, read, post, delete), ["get-messages", "get-messages", "post-message", "delete-messages"]):
        assert given["lambdaARN"] == f"arn:aws:lambda:eu-west-1:123456789012:function:EfsMessages-{fn}"
        assert given["powerValues"] == [128, 256, 512] and given["num"] == 5
        assert given["includeOutputResults"] is True and given["parallelInvocation"] is False
    assert page["payload"]["rawQueryString"] == "limit=100"
    assert page["payload"]["requestContext"]["http"]["method"] == "GET"
    posted_id = json.loads(recorded("invoke-post-message")["body"])["id"]
    assert read["payload"]["pathParameters"] == {"id": posted_id}
    assert post["payload"]["requestContext"]["http"]["method"] == "POST" and len(post["payload"]["body"]) == 256
    delete_id = delete["payload"]["pathParameters"]["id"]
    assert delete["payload"]["requestContext"]["http"]["method"] == "DELETE"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", delete_id)
    assert delete_id != posted_id
    # Nothing ever deletes everything: no DELETE event without an id.
    assert all(p["requestContext"]["http"]["method"] != "DELETE" for _, _, p in aws.invokes)
    assert [(f, q) for f, q, _ in aws.invokes] == [("EfsMessages-post-message", "live"), ("EfsMessages-get-messages", "live")]


def test_the_state_machine_comes_from_the_power_tuning_stack_or_the_flag(function_ts):
    aws = RecordedAws()
    run(aws)
    assert aws.calls[0] == ("cloudformation", "describe-stacks", "--stack-name", "serverlessrepo-lambda-power-tuning")
    machine = recorded("describe-stacks")["Stacks"][0]["Outputs"][0]["OutputValue"]
    assert all(c[c.index("--state-machine-arn") + 1] == machine for c in aws.calls if c[1] == "start-execution")
    aws = RecordedAws()
    run(aws, "--state-machine-arn", "arn:aws:states:eu-west-1:1:stateMachine:mine")
    assert not any(c[1] == "describe-stacks" for c in aws.calls)


def test_seed_posts_first(function_ts):
    aws = RecordedAws()
    run(aws, "--seed", "3")
    assert [f for f, _, _ in aws.invokes].count("EfsMessages-post-message") == 4


def test_waits_while_an_execution_runs(function_ts):
    aws = RecordedAws()
    aws.running_first = 2
    rc, _, sleeps = run(aws)
    assert rc == 0 and sleeps == [10.0] * 8


def test_refuses_when_live_is_not_the_latest_code(function_ts, capsys):
    aws = RecordedAws()
    live = recorded("get-function-configuration-post-message-live")
    aws.overrides[("lambda", "get-function-configuration")] = live
    latest = {**live, "CodeSha256": "other="}
    original = aws.call

    def call(service, operation, *args):
        if operation == "get-function-configuration" and "--qualifier" not in args:
            aws.calls.append((service, operation, *args))
            return latest
        return original(service, operation, *args)

    aws.call = call
    rc, _, _ = run(aws)
    assert rc == 1
    assert "whose code differs from $LATEST" in capsys.readouterr().err
    assert not any(c[1] == "start-execution" for c in aws.calls)


def test_refuses_during_a_canary(function_ts, capsys):
    aws = RecordedAws()
    alias = {**recorded("get-alias-get-messages"), "RoutingConfig": {"AdditionalVersionWeights": {"8": 0.1}}}
    aws.overrides[("lambda", "get-alias")] = alias
    assert run(aws)[0] == 1
    assert "canary in progress" in capsys.readouterr().err


def test_a_failed_execution_is_reported_with_its_cause(function_ts, capsys):
    aws = RecordedAws()
    aws.executions[0] = {**aws.executions[0], "status": "FAILED", "output": None, "error": "Lambda.Unknown",
                         "cause": "The function timed out"}
    assert run(aws)[0] == 1
    err = capsys.readouterr().err
    assert "a page of 100" in err and "FAILED" in err and "The function timed out" in err


def test_an_execution_that_cleaned_up_on_error_is_not_a_result(function_ts, capsys):
    aws = RecordedAws()
    aws.executions[2] = {**aws.executions[2], "output": "{}"}
    assert run(aws)[0] == 1
    assert "no statistics" in capsys.readouterr().err


def test_the_results_wrapper_of_the_readme_is_read_too():
    case = pt.Case("post-message", "a POST", {})
    description = recorded("describe-execution-post")
    wrapped = {**description, "output": json.dumps({"results": json.loads(description["output"])})}
    assert pt.parse_output(case, wrapped).stats == pt.parse_output(case, description).stats


def test_choice_follows_power_tunings_strategies():
    stats = [pt.Stat(128, 100.0, 2.0e-7), pt.Stat(512, 20.0, 1.5e-7), pt.Stat(1024, 10.0, 2.5e-7)]
    assert pt.choose(stats, "cost").power == 512
    assert pt.choose(stats, "speed").power == 1024
    assert pt.choose(stats, "balanced", 0.0).power == 1024
    assert pt.choose(stats, "balanced", 1.0).power == 512


def test_reads_the_real_memory_table():
    memory = pt.current_memory()
    assert set(memory) == set(FUNCTIONS)
    assert all(128 <= mb <= 10240 for mb in memory.values())


def test_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exit_:
        pt.main(["--help"])
    assert exit_.value.code == 0 and "Power Tuning" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        pt.main(["--powers", "64,128"])
    assert exit_.value.code == 2


def test_the_cli_runner_calls_aws_with_json_output_and_reads_invoke_answers(tmp_path, monkeypatch):
    """AwsCli against a stand-in `aws` executable that logs its arguments."""
    log = tmp_path / "args.jsonl"
    fake = tmp_path / "aws"
    fake.write_text(f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
open({str(log)!r}, "a").write(json.dumps(args) + "\\n")
if "invoke" in args:
    open(args[-1], "w").write(json.dumps({{"statusCode": 201, "body": "{{}}"}}))
    print(json.dumps({{"StatusCode": 200, "ExecutedVersion": "7"}}))
elif "fail" in args:
    sys.stderr.write("An error occurred (AccessDenied)")
    sys.exit(254)
else:
    print(json.dumps({{"ok": True}}))
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    aws = pt.AwsCli(region="eu-west-1")
    assert aws.call("lambda", "get-alias", "--name", "live") == {"ok": True}
    assert aws.invoke("EfsMessages-post-message", "live", {"a": 1}) == {"statusCode": 201, "body": "{}"}
    with pytest.raises(pt.PowerTuneError, match="AccessDenied"):
        aws.call("lambda", "fail")
    first, second = [json.loads(l) for l in log.read_text().splitlines()[:2]]
    assert first == ["--output", "json", "--region", "eu-west-1", "lambda", "get-alias", "--name", "live"]
    assert second[4:12] == ["lambda", "invoke", "--function-name", "EfsMessages-post-message", "--qualifier", "live",
                            "--cli-binary-format", "raw-in-base64-out"]
    assert json.loads(second[13]) == {"a": 1}
