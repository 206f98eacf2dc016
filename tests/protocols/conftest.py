"""Prints the conformance corpus figures at the end of every test run."""

CORPUS_SUMMARIES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if CORPUS_SUMMARIES:
        terminalreporter.section("conformance corpus")
        for summary in CORPUS_SUMMARIES:
            terminalreporter.write_line(summary)
