"""Run a task's expectations on its manifest with Great Expectations 1.x, and say which rows
failed and why, by their ``path``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from zooflow.errors import UserError

ID_COLUMN = "path"  # every manifest names its rows by the file they come from


@dataclass
class ValidationReport:
    """The outcome of one validation: passed, one line per failure, and GX's full result."""

    success: bool
    rows: int
    expectations: int
    failures: list[str] = field(default_factory=list)
    result: dict = field(default_factory=dict)

    def summary(self) -> str:
        """A line for the console, the run's tags and the model card."""
        passed = self.expectations - len({f.split(":", 1)[0] for f in self.failures})
        head = "passed" if self.success else "FAILED"
        return f"{head}: {passed}/{self.expectations} expectations met on {self.rows} rows"


class ValidationFailed(UserError, RuntimeError):
    """Validation failed: the flow stops before training; the message names the bad rows."""

    def __init__(self, report: ValidationReport, limit: int = 20):
        self.report = report
        shown = report.failures[:limit]
        more = len(report.failures) - len(shown)
        lines = [report.summary(), *(f"  - {line}" for line in shown)]
        if more:
            lines.append(f"  ... and {more} more (see the validation artifact)")
        super().__init__("\n".join(lines))


def _describe(config: dict, result: dict, table: pd.DataFrame) -> list[str]:
    """Human lines for one failed expectation: the rows (by path) and the offending values."""
    kind = config["type"]
    column = config["kwargs"].get("column", "")
    name = f"{kind}({column})"
    details = result.get("result", {})
    if "unexpected_index_list" in details and details["unexpected_index_list"]:
        lines = []
        for item in details["unexpected_index_list"]:
            path = item.get(ID_COLUMN, "?")
            value = item.get(column)
            row = table.loc[table[ID_COLUMN] == path]
            why = f" ({row['error'].iloc[0]})" if "error" in table and len(row) and row["error"].iloc[0] else ""
            lines.append(f"{name}: {path}: {column}={value!r}{why}")
        return lines
    if details.get("partial_missing_list"):
        # A value the suite requires has no row at all (e.g. an empty class folder).
        return [f"{name}: no rows with {column}={value!r}" for value in details["partial_missing_list"]]
    return [f"{name}: observed {details.get('observed_value')!r}"]


def validate(table: pd.DataFrame, expectations: list, suite_name: str) -> ValidationReport:
    """Validate ``table`` against ``expectations`` (GX expectation objects)."""
    import great_expectations as gx  # ~10 s import: only when validating

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas(name=f"{suite_name}-source")
             .add_dataframe_asset(name="manifest")
             .add_batch_definition_whole_dataframe("whole manifest"))
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}-validation", data=batch, suite=suite))
    result = definition.run(
        batch_parameters={"dataframe": table},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ID_COLUMN]},
    ).to_json_dict()
    failures = []
    for item in result["results"]:
        if not item["success"]:
            failures += _describe(item["expectation_config"], item, table)
    return ValidationReport(success=bool(result["success"]), rows=len(table),
                            expectations=len(result["results"]), failures=failures, result=result)
