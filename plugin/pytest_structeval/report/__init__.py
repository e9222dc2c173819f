"""What a run produces from its scored tasks: the report value and the files made from it
(report.json, inference.json, report.html, snapshots), the baseline gate and run comparison."""
