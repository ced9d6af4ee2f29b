"""Shared by the API boundary tests: the dataset they run, and what failing clearly looks like.

A plain module (not conftest). A run against a misbehaving server may end in
one way besides converging: the script fails with exactly one printable
`error:` line naming the dataset and the cause, and no traceback.
"""

DATASET = "life_expectancy_at_birth"
INDICATOR = "WHOSIS_000001"


def one_error_line(result, *parts):
    """The script failed with exactly one `error:` line that names each of `parts`, and nothing unprintable."""
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for part in parts:
        assert part in errors[0], errors[0]
    assert errors[0].isprintable(), repr(errors[0])
    assert "Traceback" not in result.stderr + result.stdout
    return errors[0]
