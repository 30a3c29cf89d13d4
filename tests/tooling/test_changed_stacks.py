"""scripts/changed-stacks over real diffs: small git repositories with this workspace's manifests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "changed-stacks"
MEMBERS = ["functions/get", "functions/post", "functions/delete", "shared", "test-support",
           "conformance", "efs-model"]
BASE = "EfsMessages-base"
GET, POST, DELETE = "EfsMessages-get-messages", "EfsMessages-post-message", "EfsMessages-delete-messages"
FUNCTIONS = [GET, POST, DELETE]
EVERYTHING = [BASE, *FUNCTIONS]


class Repo:
    """A git repository holding this workspace's manifests and a few sources, commit by commit."""

    def __init__(self, root: Path):
        self.root = root

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.root), *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    def write(self, path: str, text: str = "x\n") -> None:
        file = self.root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def stacks(self, *args: str, expect_rc: int = 0) -> tuple[list[str], str]:
        done = subprocess.run([str(SCRIPT), "--repo", str(self.root), "--format", "json", *args],
                              capture_output=True, text=True)
        assert done.returncode == expect_rc, done.stderr
        return (json.loads(done.stdout) if expect_rc == 0 else []), done.stderr

    def diff(self, base: str, head: str = "HEAD") -> list[str]:
        return self.stacks(base, head)[0]


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "repo")
    r.root.mkdir()
    r.git("init", "-q", "-b", "main")
    r.git("config", "user.email", "test@example.com")
    r.git("config", "user.name", "test")
    shutil.copy(REPO / "Cargo.toml", r.root / "Cargo.toml")
    r.write("Cargo.lock", "# lock\n")
    for member in MEMBERS:
        r.write(f"{member}/Cargo.toml", (REPO / member / "Cargo.toml").read_text())
        r.write(f"{member}/src/lib.rs", "// code\n")
    for lib in ("app.ts", "function.ts", "stacks.ts", "deployment.ts", "dashboard.ts"):
        r.write(f"infra/lib/{lib}", "// infra\n")
    r.write("infra/test/app.test.ts", "// test\n")
    r.write("README.md", "# readme\n")
    r.commit("initial")
    return r


def test_a_function_crate_touches_that_function_alone(repo: Repo):
    start = repo.git("rev-parse", "HEAD")
    repo.write("functions/get/src/page.rs", "// new\n")
    repo.commit()
    assert repo.diff(start) == [GET]


def test_each_function_crate_maps_to_its_own_stack(repo: Repo):
    for crate, stack in (("functions/post", POST), ("functions/delete", DELETE)):
        start = repo.git("rev-parse", "HEAD")
        repo.write(f"{crate}/src/main.rs", f"// {crate}\n")
        repo.commit()
        assert repo.diff(start) == [stack]


def test_a_crates_tests_benches_examples_and_build_output_touch_nothing(repo: Repo):
    start = repo.git("rev-parse", "HEAD")
    for path in ("functions/get/tests/api.rs", "functions/post/benches/b.rs",
                 "functions/delete/examples/e.rs", "shared/tests/store.rs",
                 "functions/get/target/debug/x", "shared/.hidden/x"):
        repo.write(path)
    repo.commit()
    assert repo.diff(start) == []


def test_a_nested_tests_directory_is_source(repo: Repo):
    # Only a crate's top-level tests/ is a separate target (workspace.ts hashes src/tests/).
    start = repo.git("rev-parse", "HEAD")
    repo.write("functions/get/src/tests/mod.rs")
    repo.commit()
    assert repo.diff(start) == [GET]


def test_shared_touches_every_function_and_the_test_only_crates_nothing(repo: Repo):
    start = repo.git("rev-parse", "HEAD")
    repo.write("shared/src/store/mod.rs", "// store\n")
    repo.commit()
    assert repo.diff(start) == FUNCTIONS
    start = repo.git("rev-parse", "HEAD")
    for path in ("test-support/src/lib.rs", "efs-model/src/main.rs", "conformance/src/lib.rs"):
        repo.write(path, f"// {path}\n")
    repo.commit()
    assert repo.diff(start) == []


def test_a_new_build_dependency_between_crates_counts(repo: Repo):
    # post-message starts depending on efs-model: efs-model's code now counts for post alone.
    start = repo.git("rev-parse", "HEAD")
    manifest = (repo.root / "functions/post/Cargo.toml").read_text()
    repo.write("functions/post/Cargo.toml", manifest.replace("[dependencies]\n", '[dependencies]\nefs-model = { path = "../../efs-model" }\n', 1))
    repo.commit()
    start = repo.git("rev-parse", "HEAD")
    repo.write("efs-model/src/main.rs", "// now built into post\n")
    repo.commit()
    assert repo.diff(start) == [POST]


def test_workspace_build_files_touch_every_function_not_the_base(repo: Repo):
    for path in ("Cargo.lock", ".cargo/config.toml", "rust-toolchain.toml"):
        start = repo.git("rev-parse", "HEAD")
        repo.write(path, f"# {path}\n")
        repo.commit()
        assert repo.diff(start) == FUNCTIONS, path


def test_cargo_toml_counts_by_what_changed_in_it(repo: Repo):
    start = repo.git("rev-parse", "HEAD")
    manifest = (repo.root / "Cargo.toml").read_text()
    repo.write("Cargo.toml", manifest.replace('opt-level = "s"', 'opt-level = 3'))
    repo.commit("release profile")
    assert repo.diff(start) == FUNCTIONS

    start = repo.git("rev-parse", "HEAD")
    manifest = (repo.root / "Cargo.toml").read_text()
    routed = manifest.replace('"/messages/{id}" = [',
                              '"/messages/{id}" = [\n  { method = "POST", function = "post-message" },')
    assert routed != manifest
    repo.write("Cargo.toml", routed)
    repo.commit("a route")
    assert repo.diff(start) == EVERYTHING  # the base stack's policies and the function stacks' routes

    start = repo.git("rev-parse", "HEAD")
    repo.write("Cargo.toml", (repo.root / "Cargo.toml").read_text() + "\n# a comment\n")
    repo.commit("a comment")
    assert repo.diff(start) == []
    assert repo.stacks("--files", "Cargo.toml")[0] == EVERYTHING  # without a diff: unknown, so all


def test_infra_files_touch_what_they_build(repo: Repo):
    cases = {
        "infra/lib/function.ts": EVERYTHING,
        "infra/lib/stacks.ts": EVERYTHING,
        "infra/lib/dashboard.ts": EVERYTHING,
        "infra/lib/deployment.ts": FUNCTIONS,
        "infra/lib/brand-new.ts": EVERYTHING,
        "infra/bin/app.ts": EVERYTHING,
        "infra/package-lock.json": EVERYTHING,
        "infra/cdk.json": EVERYTHING,
        "infra/somewhere/else.txt": EVERYTHING,
        "infra/test/app.test.ts": [],
        "infra/scripts/synth-and-lint.sh": [],
        "infra/README.md": [],
    }
    for path, expected in cases.items():
        assert repo.stacks("--files", path)[0] == expected, path
    # and one of them as a real diff
    start = repo.git("rev-parse", "HEAD")
    repo.write("infra/lib/deployment.ts", "// changed\n")
    repo.commit()
    assert repo.diff(start) == FUNCTIONS


def test_the_deploy_role_stack_is_left_to_a_person(repo: Repo):
    start = repo.git("rev-parse", "HEAD")
    repo.write("infra/lib/github-deploy-role.ts", "// role\n")
    repo.commit()
    stacks, stderr = repo.stacks(start, "HEAD")
    assert stacks == []
    assert "deploy the GitHub deploy-role stack by hand" in stderr


def test_docs_tests_scripts_and_workflows_touch_nothing(repo: Repo):
    start = repo.git("rev-parse", "HEAD")
    for path in ("README.md", "docs/openapi.yaml", "tests/e2e/test_x.py", "scripts/local",
                 ".github/workflows/ci.yml", "bench/run.sh", "fuzz/src/x.rs"):
        repo.write(path, "changed\n")
    repo.commit()
    assert repo.diff(start) == []


def test_several_commits_add_up_in_deploy_order(repo: Repo):
    start = repo.git("rev-parse", "HEAD")
    repo.write("functions/delete/src/lib.rs", "// 1\n")
    repo.commit()
    repo.write("infra/lib/dashboard.ts", "// 2\n")
    repo.commit()
    assert repo.diff(start) == EVERYTHING
    assert repo.diff(start, "HEAD~1") == [DELETE]


def test_a_file_moved_out_of_the_build_still_counts_where_it_was(repo: Repo):
    repo.write("functions/post/src/util.rs", "// util\n")
    start = repo.commit()
    (repo.root / "functions/post/tests").mkdir()
    repo.git("mv", "functions/post/src/util.rs", "functions/post/tests/util.rs")
    repo.commit("move")
    assert repo.diff(start) == [POST]


def test_a_new_function_in_the_route_table_is_a_new_stack(repo: Repo):
    start = repo.git("rev-parse", "HEAD")
    manifest = (repo.root / "Cargo.toml").read_text()
    manifest = manifest.replace('  "efs-model",\n', '  "efs-model",\n  "functions/head",\n')
    manifest = manifest.replace('"/messages/{id}" = [',
                                '"/messages/{id}" = [\n  { method = "HEAD", function = "head-messages" },')
    repo.write("Cargo.toml", manifest)
    repo.write("functions/head/Cargo.toml", '[package]\nname = "head-messages"\n')
    repo.write("functions/head/src/main.rs")
    repo.commit()
    assert repo.diff(start) == [*EVERYTHING, "EfsMessages-head-messages"]
    start = repo.git("rev-parse", "HEAD")
    repo.write("functions/head/src/main.rs", "// changed\n")
    repo.commit()
    assert repo.diff(start) == ["EfsMessages-head-messages"]


def test_a_function_removed_from_the_app_is_reported(repo: Repo):
    start = repo.git("rev-parse", "HEAD")
    manifest = (repo.root / "Cargo.toml").read_text()
    repo.write("Cargo.toml", manifest.replace('  { method = "POST", function = "post-message" },\n', ""))
    repo.commit()
    stacks, stderr = repo.stacks(start, "HEAD")
    assert stacks == [BASE, GET, DELETE]
    assert "no longer in the app: EfsMessages-post-message" in stderr


def test_all_lists_every_stack_and_the_prefix_names_them(repo: Repo):
    assert repo.stacks("--all")[0] == EVERYTHING
    assert repo.stacks("--all", "--prefix", "Demo")[0] == ["Demo-base", "Demo-get-messages",
                                                           "Demo-post-message", "Demo-delete-messages"]


def test_files_mode_reads_the_working_tree(repo: Repo):
    assert repo.stacks("--files", "functions/get/src/lib.rs", "README.md")[0] == [GET]


def test_an_unknown_revision_is_an_error(repo: Repo):
    _, stderr = repo.stacks("no-such-rev", "HEAD", expect_rc=2)
    assert "no-such-rev" in stderr


def test_a_real_commit_of_this_repository():
    """953db7c changed infra/lib (app, api, function, stacks...), infra tests and docs."""
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", "953db7c^{commit}"],
                      capture_output=True).returncode != 0:
        pytest.skip("history not cloned")
    done = subprocess.run([str(SCRIPT), "--format", "json", "953db7c~1", "953db7c"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == EVERYTHING
    done = subprocess.run([str(SCRIPT), "--format", "json", "ef62c3a~1", "ef62c3a"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []  # infra/README.md only
