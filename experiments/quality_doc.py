"""Assemble docs/quality.md: the summary and ablation block (hand-written text in
experiments/quality_summary.md, with the ablation table rendered from docs/quality/ablation/)
after the header, then the evaluation runner's sections. Sections for JSON reports produced on
another machine (the H200) are rendered from their JSON with the runner's own writer."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ablation_table  # noqa: E402

from cprs_cli.evaluation import report as R  # noqa: E402

DOC = Path("docs/quality.md")


def main(*json_reports: str) -> None:
    for path in json_reports:  # e.g. the needle run on the H200
        rep = json.loads(Path(path).read_text())
        rep["out"] = path
        R.update_section(DOC, f"{rep['model']}:{rep['mode']}", R.quality_section(rep))
    text = DOC.read_text()
    block = Path("experiments/quality_summary.md").read_text().replace("ABLATION_TABLE", ablation_table.main().rstrip())
    if "<!-- summary -->" in text:
        a, b = text.index("<!-- summary -->"), text.index("<!-- /summary -->") + len("<!-- /summary -->\n")
        text = text[:a] + text[b:]
    head_end = text.index("<!-- quality:")
    DOC.write_text(text[:head_end].rstrip() + "\n\n" + block.rstrip() + "\n\n" + text[head_end:])


if __name__ == "__main__":
    main(*sys.argv[1:])
