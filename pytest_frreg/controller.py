"""Controller-side state of a gate session: item outcomes in, verdict and summary out."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_frreg.items import NODE, strip_group

#: The verdict's own test result (see ``GateController._report_verdict_item``).
VERDICT_NODEID = f"{NODE}::verdict"

#: What a session log line starts with (``2024-05-01 12:00:00 pid 4242: ``), not shown.
_LOG_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d pid \d+: ")

if TYPE_CHECKING:
    from frreg._terminal import LogFollower
    from frreg.session import GateReport, GateSession, ItemOutcome


class GateController:
    """Registered only in the process that writes the verdict (the xdist
    controller, or the single process without xdist), so the verdict is built
    once, from the items' reports.
    """

    def __init__(self, config: pytest.Config, session: GateSession, expected: list[str]) -> None:
        self.config = config
        self.session = session
        self.expected = expected
        self.outcomes: dict[str, ItemOutcome] = {}
        self.report: GateReport | None = None
        self.verdict_path: Path | None = None
        #: ``--frreg-export``: what was exported, or why not.
        self.export_lines: list[str] = []
        #: Under xdist, the thread showing the workers' progress from the session log.
        self.follower: LogFollower | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: a baseline the controller kept a copy of (before clearing the out dir)
        is judged from that copy by every worker too."""
        from pytest_frreg.plugin import KEPT_BASELINE_KEY, KEPT_BASELINE_KEY_NAME

        kept = node.config.stash.get(KEPT_BASELINE_KEY, None)
        if kept is not None:
            node.workerinput[KEPT_BASELINE_KEY_NAME] = kept

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from frreg.session import clear_outputs

        if session.config.option.collectonly:
            return  # --co runs nothing: the verdict and its files stay as they are
        # A stale verdict must not outlive a run whose outcome is not known yet.
        clear_outputs(self.session.config.out_dir)
        self._show_progress()

    def _show_progress(self) -> None:
        """Show the session's long work (corpus production, training, the audit, the
        export) on the terminal while it runs, as ``[frreg] ...`` lines through pytest's
        terminal reporter: the session log's lines, drawn by frreg's progress display in
        plain mode (a line at the start, every ``PLAIN_INTERVAL_S`` and at the end).

        Without xdist the work runs in this process: each log line is shown as it is
        written, with capturing suspended (as pytest's live logging does). With xdist it
        runs in the workers: a daemon thread follows the log they append to, stopped at
        session end. Whole lines only, never a line rewritten in place: pytest owns the
        terminal's current line. ``-qq`` (or ``-p no:terminal``) shows nothing.
        """
        config = self.config
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is None or config.option.verbose <= -2:
            return

        def show(message: str) -> None:
            # A line of its own, also after xdist's progress dots (which leave the line open).
            if getattr(getattr(reporter, "_tw", None), "width_of_current_line", 0):
                reporter.write("\n")
            reporter.write_line(f"[frreg] {_LOG_STAMP.sub('', message, count=1)}")

        if config.pluginmanager.getplugin("dsession") is None:
            capman = config.pluginmanager.getplugin("capturemanager")

            def show_here(message: str) -> None:
                with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
                    show(message)

            self.session.also_log_to(show_here)
        else:
            from frreg._terminal import LogFollower
            from frreg.session import LOG_FILE

            self.follower = LogFollower(self.session.config.out_dir / LOG_FILE, show).start()

    def _stop_progress(self) -> None:
        if self.follower is not None:
            self.follower.stop()  # shows what the log gained since its last read
            self.follower = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.nodeid.startswith(f"{NODE}::") or report.nodeid == VERDICT_NODEID:
            return
        from frreg.session import ItemOutcome

        nodeid = strip_group(report.nodeid)
        if report.when != "call" and report.passed:
            return
        outcome = report.outcome if report.when == "call" else f"{report.outcome} in {report.when}"
        previous = self.outcomes.get(nodeid)
        if previous is None or previous.outcome == "passed":
            self.outcomes[nodeid] = ItemOutcome(nodeid, outcome, dict(report.user_properties))

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: absent without pytest-xdist
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        # A dead xdist worker can leave --dist loadgroup waiting forever for
        # its items: stop the session now; the verdict then records it as
        # interrupted (HOLD) instead of CI hanging.
        if error is None:
            return
        dsession = self.config.pluginmanager.getplugin("dsession")
        if dsession is not None and not dsession.shouldstop:
            worker = getattr(getattr(node, "gateway", None), "id", node)
            dsession.shouldstop = f"xdist worker {worker} died ({error})"

    # tryfirst: before the junitxml plugin writes its file, so the verdict is in it.
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            self._finish(session, exitstatus)
        finally:
            self._stop_progress()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._stop_progress()  # a session that never finished (an internal error)

    def _finish(self, session: pytest.Session, exitstatus: int) -> None:
        if session.config.option.collectonly:
            return
        interrupted = None
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            interrupted = "interrupted"
        elif session.shouldstop or session.shouldfail:
            interrupted = f"stopped early ({session.shouldstop or session.shouldfail})"
        elif (dsession := self.config.pluginmanager.getplugin("dsession")) and dsession.shouldstop:
            interrupted = f"stopped early ({dsession.shouldstop})"
        self.report, self.verdict_path = self.session.finalize(
            self.outcomes, self.expected, interrupted=interrupted
        )
        if not self.report.passed and session.exitstatus == pytest.ExitCode.OK:
            # Every item passed yet the verdict is HOLD: the gate still fails.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.session.config.export_dir is not None:
            self._export(session)
        self._report_verdict_item(session)

    def _report_verdict_item(self, session: pytest.Session) -> None:
        """The verdict as one more test result, ``frreg-gate::verdict``: passed on
        PROMOTE, failed on HOLD, with the verdict line, the recommendation, the
        deviations and the audit as properties -- what a JUnit consumer (a CI's test
        tab) sees, where a HOLD whose items all passed would otherwise read as green."""
        import json

        if self.report is None or self.verdict_path is None:
            return
        try:
            doc = json.loads(self.verdict_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        audit = (doc.get("verification") or {}).get("audit") or {}
        props = [
            ("verdict", doc.get("verdict", self.report.verdict)),
            ("verdict_line", doc.get("verdict_line", self.report.verdict_line)),
            ("recommendation", doc.get("recommendation", "")),
            ("deviations", "; ".join((doc.get("adr_0303") or {}).get("deviations") or [])),
            (
                "audit",
                f"requested {audit.get('requested')}, retrained {audit.get('retrained')} of "
                f"{audit.get('candidates')}, exempt seeds {audit.get('exempt_seeds')}",
            ),
            ("verdict_file", str(self.verdict_path)),
        ]
        warned = [c.message for c in self.report.warnings()]
        if warned:
            props.append(("warnings", "; ".join(warned)))
        passed = self.report.passed
        location = (NODE, None, "verdict")
        # One more result than was collected: counted, so progress reads 100 %, not 101 %.
        session.testscollected += 1
        for when in ("setup", "call", "teardown"):
            failed_call = when == "call" and not passed
            rep = pytest.TestReport(
                nodeid=VERDICT_NODEID,
                location=location,
                keywords={},
                outcome="failed" if failed_call else "passed",
                longrepr=f"{props[1][1]}: {props[2][1]}" if failed_call else None,
                when=when,
                user_properties=props,  # junitxml reads them off the teardown report
            )
            self.config.hook.pytest_runtest_logreport(report=rep)

    def _export(self, session: pytest.Session) -> None:
        """``--frreg-export``: only after this session wrote PROMOTE. A failed export
        fails the session (the gate passed, but nothing shipped)."""
        from frreg.errors import FrregError
        from frreg.schema import PROMOTE_FILE

        target = self.session.config.export_dir
        if self.report is None or self.verdict_path is None or not self.report.passed:
            self.export_lines.append(f"no export to {target}: the verdict is HOLD")
            return
        assert self.verdict_path.name == PROMOTE_FILE
        try:
            result = self.session.export(self.verdict_path)
        except FrregError as exc:
            self.export_lines.append(f"export to {target} FAILED: {exc}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        self.export_lines.append(
            f"exported {len(result.members)} members to {result.manifest.parent} "
            f"(onnxruntime within {result.max_ort_diff:.2g} of torch); manifest {result.manifest}"
        )
        if result.registry is not None:
            self.export_lines.append(f"flipped {len(result.members)} entries in {result.registry}")
        self.export_lines.extend(result.notes)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None:
            return
        from frreg.session import summary_lines

        terminalreporter.write_sep("=", "frreg ensemble gate")
        lines = summary_lines(
            self.session, self.report, self.verdict_path, self.outcomes, self.expected
        )
        # The verdict line stays the last line, where a CI log ends.
        for line in [*lines[:-1], *self.export_lines, lines[-1]]:
            terminalreporter.write_line(line)
