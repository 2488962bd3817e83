"""What HDR evaluation writes and prints: a report per dataset by default, and each method's
per-scene lines under its name."""

import json
import shutil

from tests.helpers import run_cli


def test_eval_of_a_run_labels_each_method_and_names_the_report_after_the_dataset(tiny_hdr, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_hdr.float_run, run_dir)
    result = run_cli("eval", "--run", run_dir, "--data", tiny_hdr.data)
    assert result.exit_code == 0, result.output
    [report_path] = (run_dir / "eval").glob("*.json")
    reports = json.loads(report_path.read_text())
    dataset = reports[0]["dataset"]  # the photos folder's name, marked synthetic
    assert "data" in dataset and report_path.name == f"{dataset}.json"
    assert [r["model"] for r in reports] == ["hdr_unet", "debevec", "robertson", "reference exposure"]
    assert f"wrote {report_path} and {dataset}_" in result.output
    lines = result.output.splitlines()
    headers = [index for index, line in enumerate(lines) if line.endswith(f" on {dataset}:")]
    assert [lines[index] for index in headers] == [f"{method} on {dataset}:" for method in
                                                   ("hdr_unet", "debevec", "robertson", "reference exposure")]
    # each block: its header, then its scenes' lines
    scenes = headers[1] - headers[0] - 1
    assert scenes > 0 and all(lines[index + 1 + scene].startswith("  [") for index in headers for scene in range(scenes))
