"""A step's files as Bitbucket gives them: a fresh clone of the commit for every step, only declared
artifacts carried to later steps, caches kept between runs, `condition: changesets` from git,
`parallel:` steps at once (bounded) with `fail-fast`. Real git, real bash; no AWS (no step asks
for a token)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keyless.ci.base import JobClaims, RawToken, TokenEndpoint
from keyless.local import worktree
from keyless.local.pipeline import PipelineError, PipelineResult, StepStatus, plan_pipeline
from keyless.local.pipeline import files as pipeline_files
from keyless.local.pipeline import run as pipeline_run
from keyless.local.pipeline.execute import run_pipeline
from keyless.local.pipeline.source import git_checkout
from keyless.local.served import StackInfo


class _NoTokens:
    def sign(self, claims: JobClaims) -> RawToken:
        raise AssertionError("no step here asks for a token")

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        raise AssertionError("no step here asks for a token")


def _stack(tmp_path: Path) -> StackInfo:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    return StackInfo(
        state_dir=tmp_path / "state",
        pid=0,
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        account_id="123456789012",
        ca_bundle=ca,
        ca_thumbprint="",
        moto_pid=0,
        servers={},
        issuers={},
        control_secret="",
    )


def _git(repo: Path, *argv: str) -> str:
    done = subprocess.run(  # noqa: S603 - fixed git arguments
        ["git", "-C", str(repo), *argv],  # noqa: S607 - git from PATH
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        },
    )
    return done.stdout


def _repo(tmp_path: Path, pipeline: str, files: dict[str, str] | None = None) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "bitbucket-pipelines.yml").write_text(pipeline)
    for name, text in (files or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _commit(repo, "first")
    return repo


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "--message", message)


def _run(
    repo: Path, tmp_path: Path, *, max_concurrent: int = 2, **options: object
) -> tuple[PipelineResult, str]:
    plan = plan_pipeline(
        repo / "bitbucket-pipelines.yml",
        identities=tmp_path / "ids.json",
        checkout=git_checkout,
        **options,  # type: ignore[arg-type]
    )
    log = io.StringIO()
    result = run_pipeline(
        plan,
        stack=_stack(tmp_path),
        base_env={"PATH": os.environ["PATH"], "OUT": str(tmp_path / "out")},
        log=log,
        tokens_for=lambda scope: _NoTokens(),
        cache_dir=tmp_path / "caches",
        max_concurrent=max_concurrent,
    )
    return result, log.getvalue()


def _statuses(result: PipelineResult) -> dict[str, StepStatus]:
    return {step.name: step.status for step in result.steps}


FRESH = """\
pipelines:
  default:
    - step:
        name: Build
        script:
          - test "$(cat app.txt)" = committed
          - test ! -e untracked.txt
          - echo scratch > junk.txt
          - mkdir -p dist/sub && echo built > dist/sub/app.js && echo map > dist/app.map
        artifacts:
          - dist/**/*.js
    - step:
        name: Use
        script:
          - test "$(cat dist/sub/app.js)" = built
          - test ! -e dist/app.map
          - test ! -e junk.txt
          - test "$BITBUCKET_CLONE_DIR" = "$PWD"
          - test "$(git rev-parse --abbrev-ref HEAD)" = main
    - step:
        name: No download
        artifacts:
          download: false
        script:
          - test ! -e dist
"""


def test_each_step_starts_from_a_fresh_clone_with_only_declared_artifacts(tmp_path: Path) -> None:
    repo = _repo(tmp_path, FRESH, {"app.txt": "committed\n"})
    (repo / "app.txt").write_text("uncommitted\n")
    (repo / "untracked.txt").write_text("new\n")
    result, log = _run(repo, tmp_path)
    assert result.passed, log
    assert "uncommitted changes are not in the steps' clones" in log
    assert "cloned commit" in log
    # Kept at the end of Build, put in Use's clone (not in No download's).
    assert log.count("artifact dist/**/*.js: 1 files") == 2
    assert not (repo / "junk.txt").exists()  # the step's clone was not the working tree
    assert not (repo / "dist").exists()


def test_working_tree_starts_each_step_from_the_uncommitted_files(tmp_path: Path) -> None:
    pipeline = "pipelines:\n  default:\n    - step:\n        script:\n          - cat app.txt\n"
    repo = _repo(tmp_path, pipeline, {"app.txt": "committed\n"})
    (repo / "app.txt").write_text("uncommitted\n")
    result, log = _run(repo, tmp_path, working_tree=True)
    assert result.passed, log
    assert "--working-tree: each step starts from a copy of the working tree" in log
    assert "\nuncommitted\n" in log


def test_outside_git_each_step_gets_a_copy_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "bitbucket-pipelines.yml").write_text(
        "pipelines:\n  default:\n    - step:\n        script:\n          - test -f site.html\n"
        "          - touch made.txt\n"
    )
    (folder / "site.html").write_text("<p>")
    result, log = _run(folder, tmp_path)
    assert result.passed, log
    assert "is not a git repository with a commit: each step starts from a copy" in log
    assert not (folder / "made.txt").exists()


CHANGESETS = """\
pipelines:
  default: &steps
    - step:
        name: Source
        condition:
          changesets:
            includePaths: ["src/**"]
        script: [echo source]
    - step:
        name: Docs
        condition:
          changesets:
            includePaths: ["docs/**"]
        script: [echo docs]
    - step:
        name: Not docs
        condition:
          changesets:
            excludePaths: ["docs/**"]
        script: [echo not-docs]
  pull-requests:
    '**': *steps
"""


def test_changesets_look_at_the_last_commit_of_a_branch(tmp_path: Path) -> None:
    repo = _repo(tmp_path, CHANGESETS, {"src/app.py": "1\n", "docs/a.md": "1\n"})
    (repo / "docs/a.md").write_text("2\n")
    _commit(repo, "docs only")
    result, log = _run(repo, tmp_path)
    assert _statuses(result) == {
        "Source": StepStatus.SKIPPED,
        "Docs": StepStatus.PASSED,
        "Not docs": StepStatus.SKIPPED,
    }
    assert result.passed
    assert result.exit_code == 0
    assert "Step 'Source' SKIPPED: no changed file matches condition.changesets" in log
    assert "Pipeline PASSED: 1 of 3 steps, 2 skipped" in log


def test_changesets_of_a_pull_request_look_at_all_its_commits(tmp_path: Path) -> None:
    repo = _repo(tmp_path, CHANGESETS, {"src/app.py": "1\n", "docs/a.md": "1\n"})
    _git(repo, "checkout", "--quiet", "-b", "feature/x")
    (repo / "src/app.py").write_text("2\n")
    _commit(repo, "code")
    (repo / "docs/a.md").write_text("2\n")
    _commit(repo, "docs")
    result, log = _run(repo, tmp_path, pull_request="feature/x:main")
    assert _statuses(result) == {
        "Source": StepStatus.PASSED,  # changed by the PR's first commit, not its last
        "Docs": StepStatus.PASSED,
        "Not docs": StepStatus.PASSED,
    }, log


def test_changesets_of_a_pull_request_need_its_destination(tmp_path: Path) -> None:
    repo = _repo(tmp_path, CHANGESETS, {"src/app.py": "1\n"})
    with pytest.raises(PipelineError, match="destination branch 'release' is not in the"):
        _run(repo, tmp_path, pull_request="main:release")


PARALLEL = """\
pipelines:
  default:
    - parallel:
        - step:
            name: A
            script:
              - touch "$OUT/a"
              - for i in $(seq 600); do [ -e "$OUT/b" ] && exit 0; sleep 0.1; done; exit 1
        - step:
            name: B
            script:
              - touch "$OUT/b"
              - for i in $(seq 600); do [ -e "$OUT/a" ] && exit 0; sleep 0.1; done; exit 1
    - step:
        name: After
        script: [echo after]
"""


def test_parallel_steps_run_at_once(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    # Each step waits for the other to have started: run one after another, both would fail.
    repo = _repo(tmp_path, PARALLEL)
    result, log = _run(repo, tmp_path, max_concurrent=2)
    assert result.passed, log
    assert "Parallel: 2 steps, 2 at once" in log
    assert [step.name for step in result.steps] == ["A", "B", "After"]


BOUNDED = """\
pipelines:
  default:
    - parallel:
        steps:
""" + "".join(
    f"""\
          - step:
              name: S{n}
              script:
                - flock "$OUT/lock" sh -c 'echo start >> "$OUT/events"'
                - sleep 0.2
                - flock "$OUT/lock" sh -c 'echo end >> "$OUT/events"'
"""
    for n in range(5)
)


def test_parallel_steps_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    repo = _repo(tmp_path, BOUNDED)
    result, log = _run(repo, tmp_path, max_concurrent=2)
    assert result.passed, log
    assert "Parallel: 5 steps, 2 at once" in log
    running = most = 0
    for event in (tmp_path / "out" / "events").read_text().split():
        running += 1 if event == "start" else -1
        most = max(most, running)
    assert most <= 2
    assert running == 0


FAIL_FAST = """\
pipelines:
  default:
    - parallel:
        fail-fast: true
        steps:
          - step:
              name: Fails
              script: [exit 3]
          - step:
              name: Waits
              script: ["sleep 600"]
    - step:
        name: Later
        script: [echo later]
"""


def test_fail_fast_stops_the_rest_of_the_group(tmp_path: Path) -> None:
    repo = _repo(tmp_path, FAIL_FAST)
    result, log = _run(repo, tmp_path, max_concurrent=2)
    assert _statuses(result) == {
        "Fails": StepStatus.FAILED,
        "Waits": StepStatus.STOPPED,
        "Later": StepStatus.NOT_RUN,
    }, log
    assert result.exit_code == 3
    assert "Step 'Waits' STOPPED" in log
    assert "step 'Fails' of this fail-fast parallel group failed" in log


def test_a_step_with_fail_fast_false_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    text = FAIL_FAST.replace(
        "              name: Fails\n              script: [exit 3]\n",
        "              name: Fails\n              fail-fast: false\n"
        "              script: ['touch \"$OUT/failed\"', exit 3]\n",
    ).replace(
        '["sleep 600"]',
        "['for i in $(seq 600); do [ -e \"$OUT/failed\" ] && exit 0; sleep 0.1; done; exit 1']",
    )
    repo = _repo(tmp_path, text)
    result, log = _run(repo, tmp_path, max_concurrent=2)
    assert _statuses(result) == {
        "Fails": StepStatus.FAILED,
        "Waits": StepStatus.PASSED,
        "Later": StepStatus.NOT_RUN,
    }, log


CACHES = """\
definitions:
  caches:
    deps:
      key:
        files: [requirements.txt]
      path: vendor
    system: /usr/local/lib/keyless-test-cache
pipelines:
  default:
    - step:
        caches: [pip, deps, system]
        script:
          - ls ~/.cache/pip vendor 2>/dev/null || true
          - mkdir -p ~/.cache/pip vendor && touch ~/.cache/pip/wheel-$BITBUCKET_BUILD_NUMBER
          - touch vendor/lib-$BITBUCKET_BUILD_NUMBER
"""


def test_caches_are_kept_between_runs_by_name_and_key(tmp_path: Path) -> None:
    repo = _repo(tmp_path, CACHES, {"requirements.txt": "one\n"})
    first, log = _run(repo, tmp_path)
    assert first.passed, log
    assert "cache pip: not found" in log
    assert "cache pip: saved 1 files of ~/.cache/pip" in log
    assert "cache deps: saved 1 files of vendor" in log
    assert "cache system: /usr/local/lib/keyless-test-cache is outside the clone and HOME" in log

    second, log = _run(repo, tmp_path)
    assert second.passed, log
    assert "cache pip: restored 1 files into ~/.cache/pip" in log
    assert "wheel-1\n" in log  # the first run's file, in the second run's fresh HOME
    assert "lib-1\n" in log
    # Bitbucket keeps a cache as it was saved until it expires.
    assert "cache pip: kept as it was" in log

    (repo / "requirements.txt").write_text("two\n")
    _commit(repo, "new requirements")
    third, log = _run(repo, tmp_path)
    assert third.passed, log
    assert "cache deps: not found" in log  # a new key is a new cache
    assert "cache pip: restored" in log

    week = 7 * 86_400 + 60
    for saved in (tmp_path / "caches").rglob("saved"):
        os.utime(saved, (time.time() - week, time.time() - week))
    fourth, log = _run(repo, tmp_path)
    assert fourth.passed, log
    assert "cache pip: not found" in log  # expired after a week


def test_unknown_caches_and_conditions_are_refused_before_anything_runs(tmp_path: Path) -> None:
    unknown = "pipelines:\n  default:\n    - step:\n        caches: [nope]\n        script: [x]\n"
    repo = _repo(tmp_path, unknown)
    with pytest.raises(PipelineError, match="uses cache 'nope', which is neither predefined"):
        _run(repo, tmp_path)


ARTIFACTS = """\
pipelines:
  default:
    - step:
        name: Make
        script:
          - mkdir out && for n in $(seq $COUNT); do echo $n > out/$n.txt; done
        artifacts: [out/*.txt]
    - step:
        name: Read
        script: [ls out]
"""


@pytest.mark.parametrize(("count", "passes"), [(3, True), (4, False)])
def test_artifacts_are_bounded_in_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, passes: bool
) -> None:
    monkeypatch.setattr(worktree, "LOCAL_TREE_MAX_FILES", 3)
    monkeypatch.setattr(pipeline_files, "LOCAL_TREE_MAX_FILES", 3)
    repo = _repo(tmp_path, ARTIFACTS.replace("$COUNT", str(count)))
    result, log = _run(repo, tmp_path)
    assert result.passed is passes, log
    if not passes:
        assert result.step("Make").status is StepStatus.FAILED
        assert "the artifacts of step 'Make' are more than 3 files" in log
        assert result.step("Read").status is StepStatus.NOT_RUN


@pytest.mark.parametrize(("size", "passes"), [(100, True), (101, False)])
def test_artifacts_are_bounded_in_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, passes: bool
) -> None:
    monkeypatch.setattr(worktree, "LOCAL_TREE_MAX_BYTES", 100)
    text = ARTIFACTS.replace(
        "for n in $(seq $COUNT); do echo $n > out/$n.txt; done",
        f"head -c {size} /dev/zero > out/big.txt",
    )
    repo = _repo(tmp_path, text)  # cloned by git: the bound is on what keyless copies
    result, log = _run(repo, tmp_path)
    assert result.passed is passes, log
    if not passes:
        assert "the artifacts of step 'Make' holds more than 100 bytes" in log


def test_a_state_condition_is_refused_naming_it(tmp_path: Path) -> None:
    text = (
        "pipelines:\n  default:\n    - step:\n        condition:\n"
        "          state: DEPLOY == true\n        script: [x]\n"
    )
    repo = _repo(tmp_path, text)
    with pytest.raises(PipelineError, match="has `condition:` state, which keyless local"):
        _run(repo, tmp_path)


def test_a_step_result_keeps_the_last_of_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = "for n in 0 1 2 3 4 5 6 7 8 9; do echo line-$n; done"
    text = f"pipelines:\n  default:\n    - step:\n        script:\n          - '{script}'\n"
    repo = _repo(tmp_path, text)
    full = _run(repo, tmp_path)[0].steps[0].output
    assert full.endswith("line-9\n")
    # At the bound the whole output is kept; one character below it, the first one goes. The log
    # has every line either way.
    for bound, kept in ((len(full), full), (len(full) - 1, full[1:])):
        monkeypatch.setattr(pipeline_run, "PIPELINE_STEP_OUTPUT_KEPT_CHARS", bound)
        result, log = _run(repo, tmp_path)
        assert result.steps[0].output == kept
        assert full in log


UPLOAD = """\
pipelines:
  default:
    - step:
        name: Make
        script:
          - mkdir -p app/deep/er reports && echo a > app/a.txt && echo b > app/deep/er/b.txt
          - echo skip > app/skip.log && echo r > reports/r.xml && echo t > app/tool.txt
        artifacts:
          upload:
            - name: App
              paths: ["app/**"]
              ignore-paths: ["**/*.log"]
              depth: 3
            - name: Reports
              type: scoped
              paths: ["reports/*.xml"]
            - name: Tool
              paths: ["app/tool.txt"]
    - step:
        name: Only app
        artifacts:
          download: [App]
        script:
          - test -f app/a.txt && test ! -e app/deep/er/b.txt && test ! -e app/skip.log
          - test ! -e reports
    - step:
        name: Everything shared
        script:
          - test -f app/a.txt && test -f app/tool.txt && test ! -e reports
    - step:
        name: Fails
        artifacts:
          upload:
            - name: Failure
              capture-on: failed
              paths: ["*.txt"]
        script:
          - echo oops > failure.txt
          - exit 1
"""


def test_named_artifacts_are_uploaded_and_downloaded_as_the_schema_describes(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path, UPLOAD)
    result, log = _run(repo, tmp_path)
    assert _statuses(result) == {
        "Make": StepStatus.PASSED,
        "Only app": StepStatus.PASSED,
        "Everything shared": StepStatus.PASSED,
        "Fails": StepStatus.FAILED,
    }, log
    assert "artifact App: 2 files" in log  # a.txt and tool.txt: b.txt is too deep, skip.log ignored
    assert "artifact Reports: 1 files, not passed on (not shared)" in log
    assert "artifact Failure: 1 files" in log  # captured on failure


def test_a_download_of_an_artifact_no_step_made_is_said(tmp_path: Path) -> None:
    text = (
        "pipelines:\n  default:\n    - step:\n        artifacts:\n          download: [Nope]\n"
        "        script: [echo hi]\n"
    )
    result, log = _run(_repo(tmp_path, text), tmp_path)
    assert result.passed, log
    assert "artifact Nope: no earlier step kept it" in log


INTERRUPTED = """\
pipelines:
  default:
    - parallel:
        - step:
            name: One
            script: ['sleep 600 & echo $! > "$OUT/one"; wait']
        - step:
            name: Two
            script: ['sleep 600 & echo $! > "$OUT/two"; wait']
"""


def _wait_for(paths: list[Path], child: subprocess.Popen[bytes]) -> None:
    for _ in range(600):  # a hang guard, not a measure: the steps start in well under a minute
        if all(p.is_file() and p.read_text().strip() for p in paths) or child.poll() is not None:
            return
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_every_running_parallel_step(
    tmp_path: Path, signum: signal.Signals
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    repo = _repo(tmp_path, INTERRUPTED)
    child = subprocess.Popen(  # noqa: S603 - this keyless
        [
            sys.executable,
            "-m",
            "keyless",
            "local",
            "pipeline",
            str(repo / "bitbucket-pipelines.yml"),
            "--state",
            str(tmp_path / "state"),
        ],
        env={**os.environ, "OUT": str(out)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    markers = [out / "one", out / "two"]
    pids: list[int] = []
    try:
        _wait_for(markers, child)
        pids = [int(p.read_text()) for p in markers]
        child.send_signal(signum)
        assert child.wait(timeout=120) != 0
        assert [_running(pid) for pid in pids] == [False, False]
    finally:  # nothing of a failed run is left behind
        child.kill()
        child.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie nobody reaped yet is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


STAGE = """\
pipelines:
  default:
    - stage:
        name: Source only
        condition:
          changesets:
            includePaths: ["src/**"]
        steps:
          - step: {name: Build, script: [echo build]}
          - step: {name: Test, script: [echo test]}
    - step: {name: Always, script: [echo always]}
"""


def test_a_stage_condition_skips_all_of_its_steps(tmp_path: Path) -> None:
    repo = _repo(tmp_path, STAGE, {"src/app.py": "1\n", "docs/a.md": "1\n"})
    (repo / "docs/a.md").write_text("2\n")
    _commit(repo, "docs only")
    result, log = _run(repo, tmp_path)
    assert _statuses(result) == {
        "Build": StepStatus.SKIPPED,
        "Test": StepStatus.SKIPPED,
        "Always": StepStatus.PASSED,
    }, log


@pytest.mark.parametrize(("count", "saved"), [(2, True), (3, False)])
def test_a_cache_is_bounded_and_one_too_large_is_not_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, saved: bool
) -> None:
    monkeypatch.setattr(worktree, "LOCAL_TREE_MAX_FILES", 2)
    text = (
        "pipelines:\n  default:\n    - step:\n        caches: [node]\n        script:\n"
        f"          - mkdir node_modules && cd node_modules && touch $(seq {count})\n"
    )
    result, log = _run(_repo(tmp_path, text), tmp_path)
    assert result.passed, log  # a cache that cannot be kept does not fail the step
    if saved:
        assert "cache node: saved 2 files of node_modules" in log
    else:
        assert "cache node: not saved (cache node has more than 2 files" in log
        assert not any((tmp_path / "caches").rglob("saved"))
